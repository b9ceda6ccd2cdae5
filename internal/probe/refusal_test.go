package probe

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
	"github.com/jeton-dev/jeton/internal/injection"
)

func TestNamespaceNotAllowed(t *testing.T) {
	tt := &jetonv1alpha1.TechnicalToken{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "tt"}}
	if v := NamespaceNotAllowed(tt, []string{"jeton-system", "team-a"}); v != nil {
		t.Errorf("refused in a credentials namespace: %+v", v)
	}
	v := NamespaceNotAllowed(tt, []string{"jeton-system"})
	if v == nil || v.State != conditions.Stalled || v.Reason != jetonv1alpha1.ReasonNamespaceNotAllowed || !v.Warning ||
		!strings.Contains(v.Message, "(jeton-system)") || !strings.Contains(v.Message, `add "team-a"`) {
		t.Errorf("verdict %+v, want Stalled NamespaceNotAllowed naming the credentials namespaces and this one", v)
	}
}

// TestRefuse has one row per refusal of a TechnicalToken whose token is read, in the order
// they are checked.
func TestRefuse(t *testing.T) {
	tt := &jetonv1alpha1.TechnicalToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: "jeton-system", Name: "monitoring"},
		Spec: jetonv1alpha1.TechnicalTokenSpec{API: jetonv1alpha1.APIEntreprise, Environment: jetonv1alpha1.EnvironmentStaging,
			TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: "src"}},
	}
	hab := injection.Binding{Kind: injection.KindHabilitation, Namespace: "jeton-system", Name: "hab-1", Client: "trifouilly", Created: time.Now()}
	conflict := injection.Verdict{Outcome: injection.TokenConflict, With: hab}
	allowed := Destination{Fingerprint: "0123456789abcdef", BaseURL: "https://staging.entreprise.api.gouv.fr"}
	with := func(mutate func(*Destination)) Destination {
		d := allowed
		mutate(&d)
		return d
	}
	hostRefused := errors.New(`host "attacker.example" is not an API host`)

	tests := []struct {
		name       string
		d          Destination
		wantReason string // "" when the token may be probed
		wantKeep   bool
		wantInMsg  string
	}{
		{"allowed", allowed, "", false, ""},
		{"no base URL: BaseURLMissing, a user error", with(func(d *Destination) { d.BaseURL, d.Binding = "", conflict }),
			jetonv1alpha1.ReasonBaseURLMissing, true, `API APIEntreprise in environment "staging": set spec.baseURL`},
		{"host refused: APIHostNotAllowed", with(func(d *Destination) { d.HostRefused, d.LabelledFor = hostRefused, []string{"x"} }),
			jetonv1alpha1.ReasonAPIHostNotAllowed, true, "spec.baseURL is refused: host \"attacker.example\" is not an API host. Nothing is probed."},
		{"a Secret holding the token labelled for a client: SecretClientMismatch, token status cleared",
			with(func(d *Destination) { d.LabelledFor, d.Binding = []string{"a", "b"}, conflict }),
			jetonv1alpha1.ReasonSecretClientMismatch, false, "the token in Secret jeton-system/src is labelled for client a, b (jeton.dev/client"},
		{"an older Habilitation binds the token: TokenConflict", with(func(d *Destination) { d.Binding = conflict }),
			jetonv1alpha1.ReasonTokenConflict, true, `(fingerprint 0123456789abcdef) is bound to client "trifouilly" by Habilitation jeton-system/hab-1`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Refuse(tt, tc.d)
			if tc.wantReason == "" {
				if got != nil {
					t.Fatalf("refused: %+v", got)
				}
				return
			}
			if got == nil {
				t.Fatalf("allowed, want %s", tc.wantReason)
			}
			if got.State != conditions.Stalled || got.Reason != tc.wantReason || !got.Warning || got.KeepToken != tc.wantKeep ||
				!strings.Contains(got.Message, tc.wantInMsg) {
				t.Errorf("Refuse() = %+v, want Stalled %s, a warning, keepToken %v, a message with %q", got, tc.wantReason, tc.wantKeep, tc.wantInMsg)
			}
		})
	}
}
