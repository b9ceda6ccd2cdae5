package gateway

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/publicapi"
	"github.com/jeton-dev/jeton/internal/token"
)

func TestBuildEntry(t *testing.T) {
	emu := emulator.New()
	mint := func() string {
		tok, _, err := emu.Mint(jetonv1alpha1.APIEntreprise, emulator.MintOptions{Scopes: []string{"a"}})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	oldTok, newTok := mint(), mint()
	policy, err := publicapi.NewHostPolicy([]string{"127.0.0.1:18080"})
	if err != nil {
		t.Fatal(err)
	}
	hab := func(mut ...func(*jetonv1alpha1.Habilitation)) *jetonv1alpha1.Habilitation {
		h := &jetonv1alpha1.Habilitation{
			ObjectMeta: metav1.ObjectMeta{Namespace: "creds", Name: "a", UID: "uid-a", Generation: 3},
			Spec: jetonv1alpha1.HabilitationSpec{ClientRef: jetonv1alpha1.ClientReference{Name: "a"}, API: jetonv1alpha1.APIEntreprise,
				TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: "a-token", Key: "token"}},
			Status: jetonv1alpha1.HabilitationStatus{Delivery: jetonv1alpha1.DeliveryGateway,
				TokenStatus: jetonv1alpha1.TokenStatus{TokenFingerprint: token.Fingerprint(oldTok)},
				Conditions:  []metav1.Condition{{Type: "Ready", Status: "True", Reason: "Injected", ObservedGeneration: 3, LastTransitionTime: metav1.NewTime(time.Now())}}},
		}
		for _, m := range mut {
			m(h)
		}
		return h
	}
	secret := func(tok string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "creds", Name: "a-token"}, Data: map[string][]byte{"token": []byte(tok)}}
	}
	pc := &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: jetonv1alpha1.PublicClientSpec{SIRET: "21750001600019"}}
	vetted := BuildEntry(hab(), secret(oldTok), pc, policy, nil)

	tests := []struct {
		name      string
		h         *jetonv1alpha1.Habilitation
		src       *corev1.Secret
		c         *jetonv1alpha1.PublicClient
		prev      *Entry
		wantToken string
		notReady  string // a part of the 503 message; "" when served
	}{
		{"Ready, gateway delivery, vetted token: served", hab(), secret(oldTok), pc, nil, oldTok, ""},
		{"direct delivery: not served", hab(func(h *jetonv1alpha1.Habilitation) { h.Status.Delivery = jetonv1alpha1.DeliveryDirect }), secret(oldTok), pc, nil, "", "delivery"},
		{"not Ready: its reason", hab(func(h *jetonv1alpha1.Habilitation) {
			h.Status.Conditions[0].Status, h.Status.Conditions[0].Reason = "False", "TokenConflict"
		}), secret(oldTok), pc, nil, "", "TokenConflict"},
		{"Ready for an older generation: not served", hab(func(h *jetonv1alpha1.Habilitation) { h.Generation = 4 }), secret(oldTok), pc, nil, "", "generation 4"},
		{"being deleted", hab(func(h *jetonv1alpha1.Habilitation) { h.DeletionTimestamp = &metav1.Time{Time: time.Now()} }), secret(oldTok), pc, nil, "", "deleted"},
		{"no PublicClient", hab(), secret(oldTok), nil, nil, "", "PublicClient"},
		{"a base URL outside the policy", hab(func(h *jetonv1alpha1.Habilitation) { h.Spec.BaseURL = "http://203.0.113.7" }), secret(oldTok), pc, nil, "", "not allowed"},
		{"the Secret holds a token the manager has not checked: the last vetted one goes on", hab(), secret(newTok), pc, vetted, oldTok, ""},
		{"...and without a vetted one: not served", hab(), secret(newTok), pc, nil, "", "not checked the new one"},
		{"the manager vetted the new token: used at once", hab(func(h *jetonv1alpha1.Habilitation) { h.Status.TokenFingerprint = token.Fingerprint(newTok) }), secret(newTok), pc, vetted, newTok, ""},
		{"a recreated Habilitation (new UID) does not inherit the old token", hab(func(h *jetonv1alpha1.Habilitation) { h.UID = "uid-other" }), secret(newTok), pc, vetted, "", "not checked"},
		{"the Secret deleted: the vetted token goes on until the manager says", hab(), nil, pc, vetted, oldTok, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := BuildEntry(tt.h, tt.src, tt.c, policy, tt.prev)
			if tt.notReady == "" && e.NotReady != "" {
				t.Fatalf("not served: %s", e.NotReady)
			}
			if tt.notReady != "" && !strings.Contains(e.NotReady, tt.notReady) {
				t.Fatalf("NotReady = %q, want it to say %q", e.NotReady, tt.notReady)
			}
			if e.Token != tt.wantToken {
				t.Errorf("token: got the %s one", map[string]string{oldTok: "old", newTok: "new", "": "empty"}[e.Token])
			}
			if strings.Contains(e.NotReady, oldTok) || strings.Contains(e.NotReady, newTok) {
				t.Errorf("the 503 message holds a token")
			}
		})
	}
	if vetted.Host != "127.0.0.1:18080" && vetted.Host != "entreprise.api.gouv.fr" {
		t.Errorf("host %q", vetted.Host)
	}
}
