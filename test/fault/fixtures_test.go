package fault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/testenv"
	"github.com/jeton-dev/jeton/internal/token"
)

// tenant is one public client with one habilitation, as a test sets them up.
type tenant struct {
	client    string // PublicClient name, also its namespace
	siret     string
	credNS    string // where the Habilitation and its token Secret live
	hab       string // Habilitation name, also the target Secret name
	api       jetonv1alpha1.API
	tokenID   string   // emulator id of the current token
	token     string   // current token
	rotations int      // how many times the token was replaced
	retired   []string // the tokens it replaced
}

func (tn *tenant) sourceSecret() string { return tn.hab + "-token" }

// newCredentialsNamespace creates a credentials namespace for one test.
func newCredentialsNamespace(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

// createTenant creates, in this order, the client namespace (which the PublicClient adopts:
// spec.adoptNamespace) with a Deployment using the target Secret, the PublicClient,
// the token Secret and the Habilitation. Tokens are minted by the emulator.
func createTenant(t *testing.T, ctx context.Context, r *rand.Rand, emu *emulator.Server, credNS, name string) *tenant {
	t.Helper()
	api := jetonv1alpha1.APIEntreprise
	if r.IntN(2) == 1 {
		api = jetonv1alpha1.APIParticulier
	}
	tn := &tenant{client: name, siret: testenv.RandomSIRET(r), credNS: credNS, hab: name + "-hab", api: api}
	tn.token, tn.tokenID = mint(t, emu, api)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tn.client, Labels: map[string]string{jetonv1alpha1.LabelClient: tn.client}}}
	// testenv.Habilitation names its token Secret <hab>-token, as tn.sourceSecret() does.
	src, hab := testenv.Habilitation(credNS, tn.hab, tn.client, api, tn.token)
	objs := []client.Object{
		ns,
		testenv.Workload(tn.client, "teleservice", tn.hab),
		&jetonv1alpha1.PublicClient{
			ObjectMeta: metav1.ObjectMeta{Name: tn.client},
			// The namespace exists first (with its workload): adopted on request.
			Spec: jetonv1alpha1.PublicClientSpec{DisplayName: "Commune " + tn.client, SIRET: tn.siret, AdoptNamespace: true},
		},
		src,
		hab,
	}
	for _, o := range objs {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
	return tn
}

func mint(t *testing.T, emu *emulator.Server, api jetonv1alpha1.API) (tok, id string) {
	t.Helper()
	scopes := []string{"unites_legales_etablissements_insee"}
	if api == jetonv1alpha1.APIParticulier {
		scopes = []string{"cnaf_quotient_familial"}
	}
	tok, id, err := emu.Mint(api, emulator.MintOptions{Scopes: scopes})
	if err != nil {
		t.Fatalf("minting a %s token: %v", api, err)
	}
	return tok, id
}

// rotate replaces the tenant's token with a freshly minted one (a regeneration).
func rotate(t *testing.T, ctx context.Context, emu *emulator.Server, tn *tenant) {
	t.Helper()
	tn.retired = append(tn.retired, tn.token)
	tn.token, tn.tokenID = mint(t, emu, tn.api)
	tn.rotations++
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tn.credNS, Name: tn.sourceSecret()},
		Data: map[string][]byte{"token": []byte(tn.token)}}
	if err := env.Client.Update(ctx, s); err != nil {
		t.Fatalf("rotating the token of %s: %v", tn.hab, err)
	}
}

// ready checks a kstatus-style Ready condition: True and about the current generation.
func ready(conds []metav1.Condition, generation, observed int64) error {
	c := meta.FindStatusCondition(conds, jetonv1alpha1.ConditionReady)
	switch {
	case c == nil:
		return errors.New("no Ready condition yet")
	case c.Status != metav1.ConditionTrue:
		return fmt.Errorf("Ready=%s %s: %s", c.Status, c.Reason, c.Message)
	case observed != generation || c.ObservedGeneration != generation:
		return fmt.Errorf("generation %d not observed yet (status %d, Ready %d)", generation, observed, c.ObservedGeneration)
	}
	return nil
}

// converged checks the end state users rely on, for live tenants and deleted ones:
//   - every PublicClient and Habilitation is Ready for its current generation, and each
//     Habilitation reports its current token's fingerprint;
//   - every live Habilitation has exactly one injected Secret, in its client's namespace,
//     with the current token, its fingerprint annotation and the client's SIRET as
//     RECIPIENT; a deleted one has none;
//   - across every Secret of the cluster, a token is only in its source Secret and in its
//     client's injected Secret: nothing landed in another namespace.
func converged(ctx context.Context, credNS string, live, deleted []*tenant) error {
	for _, tn := range live {
		pc := &jetonv1alpha1.PublicClient{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: tn.client}, pc); err != nil {
			return err
		}
		if err := ready(pc.Status.Conditions, pc.Generation, pc.Status.ObservedGeneration); err != nil {
			return fmt.Errorf("PublicClient %s: %w", tn.client, err)
		}
		h := &jetonv1alpha1.Habilitation{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: credNS, Name: tn.hab}, h); err != nil {
			return err
		}
		if err := ready(h.Status.Conditions, h.Generation, h.Status.ObservedGeneration); err != nil {
			return fmt.Errorf("Habilitation %s: %w", tn.hab, err)
		}
		if fp := token.Fingerprint(tn.token); h.Status.TokenFingerprint != fp {
			return fmt.Errorf("Habilitation %s: status fingerprint %s, want %s", tn.hab, h.Status.TokenFingerprint, fp)
		}
	}
	for _, tn := range deleted {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: credNS, Name: tn.hab}, &jetonv1alpha1.Habilitation{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleted Habilitation %s still there (finalizer not done?): %v", tn.hab, err)
		}
	}

	injected := &corev1.SecretList{}
	if err := env.Client.List(ctx, injected, client.MatchingLabels{jetonv1alpha1.LabelHabilitationNamespace: credNS}); err != nil {
		return err
	}
	byHab := map[string][]corev1.Secret{}
	for _, s := range injected.Items {
		byHab[s.Labels[jetonv1alpha1.LabelHabilitation]] = append(byHab[s.Labels[jetonv1alpha1.LabelHabilitation]], s)
	}
	for _, tn := range deleted {
		if n := len(byHab[tn.hab]); n > 0 {
			return fmt.Errorf("deleted Habilitation %s still has %d injected Secret(s)", tn.hab, n)
		}
	}
	for _, tn := range live {
		got := byHab[tn.hab]
		if len(got) != 1 {
			return fmt.Errorf("Habilitation %s has %d injected Secrets, want exactly 1", tn.hab, len(got))
		}
		s := got[0]
		tokenKey, recipientKey, _ := injection.Keys(&jetonv1alpha1.Habilitation{})
		switch {
		case s.Namespace != tn.client || s.Name != tn.hab:
			return fmt.Errorf("Habilitation %s injected %s/%s, want %s/%s", tn.hab, s.Namespace, s.Name, tn.client, tn.hab)
		case s.Labels[jetonv1alpha1.LabelManagedBy] != jetonv1alpha1.ManagedByValue || s.Labels[jetonv1alpha1.LabelClient] != tn.client:
			return fmt.Errorf("Secret %s/%s: labels %v", s.Namespace, s.Name, s.Labels)
		case s.Annotations[jetonv1alpha1.AnnotationTokenFingerprint] != token.Fingerprint(tn.token):
			return fmt.Errorf("Secret %s/%s: fingerprint annotation %q, want %s", s.Namespace, s.Name,
				s.Annotations[jetonv1alpha1.AnnotationTokenFingerprint], token.Fingerprint(tn.token))
		case string(s.Data[tokenKey]) != tn.token:
			return fmt.Errorf("Secret %s/%s does not hold the current token (fingerprint %s)", s.Namespace, s.Name, token.Fingerprint(string(s.Data[tokenKey])))
		case string(s.Data[recipientKey]) != tn.siret:
			return fmt.Errorf("Secret %s/%s: RECIPIENT %q, want the client's SIRET %s", s.Namespace, s.Name, s.Data[recipientKey], tn.siret)
		}
	}

	// Where does each token live? Only in its source and its own client's Secret.
	all := &corev1.SecretList{}
	if err := env.Client.List(ctx, all); err != nil {
		return err
	}
	for _, tn := range slices.Concat(live, deleted) {
		want := []string{tn.credNS + "/" + tn.sourceSecret()}
		if slices.Contains(live, tn) {
			want = append(want, tn.client+"/"+tn.hab)
		}
		var where []string
		for _, s := range all.Items {
			for _, v := range s.Data {
				if bytes.Contains(v, []byte(tn.token)) {
					where = append(where, s.Namespace+"/"+s.Name)
					break
				}
			}
		}
		slices.Sort(where)
		slices.Sort(want)
		if !slices.Equal(where, want) {
			return fmt.Errorf("token of %s (fingerprint %s) found in Secrets [%s], want exactly [%s]",
				tn.hab, token.Fingerprint(tn.token), strings.Join(where, " "), strings.Join(want, " "))
		}
		for _, old := range tn.retired {
			for _, s := range all.Items {
				for _, v := range s.Data {
					if bytes.Contains(v, []byte(old)) {
						return fmt.Errorf("replaced token of %s (fingerprint %s) still in Secret %s/%s", tn.hab, token.Fingerprint(old), s.Namespace, s.Name)
					}
				}
			}
		}
	}
	return nil
}

// checkRestarts checks each tenant's Deployment was restarted exactly once per rotation:
// its generation counts pod-template changes (the operator is the only writer), and the
// restarted-for annotation names the current token. A first injection restarts nothing.
func checkRestarts(t *testing.T, ctx context.Context, tenants []*tenant) {
	t.Helper()
	for _, tn := range tenants {
		d := &appsv1.Deployment{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: tn.client, Name: "teleservice"}, d); err != nil {
			t.Fatal(err)
		}
		wantGen := int64(1 + tn.rotations)
		wantAnn := ""
		if tn.rotations > 0 {
			wantAnn = injection.RestartedFor("", tn.hab, token.Fingerprint(tn.token))
		}
		if d.Generation != wantGen {
			t.Errorf("Deployment %s/teleservice: generation %d after %d rotation(s), want %d (a restart was repeated or lost)",
				tn.client, d.Generation, tn.rotations, wantGen)
		}
		if got := d.Spec.Template.Annotations[jetonv1alpha1.AnnotationRestartedFor]; got != wantAnn {
			t.Errorf("Deployment %s/teleservice: %s=%q, want %q", tn.client, jetonv1alpha1.AnnotationRestartedFor, got, wantAnn)
		}
	}
}

// injectedWith counts the tenants whose injected Secret holds the current token: the
// progress of convergence, used to pick kill points.
func injectedWith(ctx context.Context, credNS string, tenants []*tenant) (int, error) {
	list := &corev1.SecretList{}
	if err := env.Client.List(ctx, list, client.MatchingLabels{jetonv1alpha1.LabelHabilitationNamespace: credNS}); err != nil {
		return 0, err
	}
	fps := map[string]string{}
	for _, s := range list.Items {
		fps[s.Namespace+"/"+s.Name] = s.Annotations[jetonv1alpha1.AnnotationTokenFingerprint]
	}
	n := 0
	for _, tn := range tenants {
		if fps[tn.client+"/"+tn.hab] == token.Fingerprint(tn.token) {
			n++
		}
	}
	return n, nil
}

func tokensOf(tenants []*tenant) []string {
	var out []string
	for _, tn := range tenants {
		out = append(out, tn.token)
		out = append(out, tn.retired...)
	}
	return out
}
