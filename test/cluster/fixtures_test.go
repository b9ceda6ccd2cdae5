package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mathrand "math/rand/v2"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/testenv"
	"github.com/jeton-dev/jeton/internal/token"
)

const (
	// waitTimeout bounds a wait on jeton or on one controller of the cluster.
	waitTimeout = 2 * time.Minute
	// rolloutTimeout bounds a wait on rollouts, which chain jeton, the Deployment and
	// ReplicaSet controllers, the scheduler and KWOK.
	rolloutTimeout = 3 * time.Minute
)

var (
	// emu mints the tokens; nothing calls it (Habilitations are not probed).
	emu = emulator.New()
	rng = mathrand.New(mathrand.NewPCG(mathrand.Uint64(), mathrand.Uint64()))
)

// suffix is a random DNS-label suffix, so that the cluster-scoped objects of one test
// never collide with another's.
func suffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// mint returns a new API Entreprise token. Tokens never appear in test output: only their
// fingerprints do.
func mint(t *testing.T) string {
	t.Helper()
	tok, _, err := emu.Mint(jetonv1alpha1.APIEntreprise, emulator.MintOptions{Scopes: []string{"unites_legales_etablissements_insee"}})
	if err != nil {
		t.Fatalf("minting a token: %v", err)
	}
	return tok
}

// readyClient creates PublicClient name (its namespace has the same name) with policy and
// waits until it is Ready: jeton created the namespace.
func readyClient(t *testing.T, name string, policy jetonv1alpha1.NamespacePolicy) *jetonv1alpha1.PublicClient {
	t.Helper()
	pc := &jetonv1alpha1.PublicClient{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: jetonv1alpha1.PublicClientSpec{
			DisplayName:     "Commune " + name,
			SIRET:           testenv.RandomSIRET(rng),
			NamespacePolicy: policy,
		},
	}
	if err := env.Client.Create(context.Background(), pc); err != nil {
		t.Fatalf("creating PublicClient %s: %v", name, err)
	}
	testenv.WaitFor(t, waitTimeout, "PublicClient "+name+" Ready", func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pc), pc); err != nil {
			return err
		}
		c := meta.FindStatusCondition(pc.Status.Conditions, jetonv1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != pc.Generation {
			return fmt.Errorf("not Ready: %+v", c)
		}
		return env.Client.Get(ctx, client.ObjectKey{Name: pc.TargetNamespace()}, &corev1.Namespace{})
	})
	return pc
}

// habilitation creates, in the credentials namespace, the token Secret <name>-token holding
// tok and Habilitation name of clientName, whose injected Secret is also called name.
func habilitation(t *testing.T, name, clientName, tok string) *jetonv1alpha1.Habilitation {
	t.Helper()
	ctx := context.Background()
	src, h := testenv.Habilitation(credNS, name, clientName, jetonv1alpha1.APIEntreprise, tok)
	for _, o := range []client.Object{src, h} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
	return h
}

// rotate puts tok into the source Secret of Habilitation h (a regeneration of its token).
func rotate(ctx context.Context, h *jetonv1alpha1.Habilitation, tok string) error {
	src := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: h.Spec.TokenSecretRef.Name},
		Data:       map[string][]byte{h.Spec.TokenSecretRef.Key: []byte(tok)},
	}
	return env.Client.Update(ctx, src)
}

// injected returns nil once the injected Secret ns/name holds the token of fingerprint fp.
func injected(ns, name, fp string) func(context.Context) error {
	return func(ctx context.Context) error {
		s := &corev1.Secret{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
			return err
		}
		if got := s.Annotations[jetonv1alpha1.AnnotationTokenFingerprint]; got != fp {
			return fmt.Errorf("Secret %s/%s has token %s, want %s", ns, name, got, fp)
		}
		if got := token.Fingerprint(string(s.Data[injection.DefaultTokenKey])); got != fp {
			return fmt.Errorf("Secret %s/%s holds a token of fingerprint %s, want %s", ns, name, got, fp)
		}
		return nil
	}
}

// recorded returns nil once Habilitation h's status holds the token of fingerprint fp:
// jeton records it after the restarts it does for it, so this rotation is done (a reconcile
// that failed and waits for a retry does not look idle otherwise).
func recorded(h *jetonv1alpha1.Habilitation, fp string) func(context.Context) error {
	return func(ctx context.Context) error {
		cur := &jetonv1alpha1.Habilitation{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(h), cur); err != nil {
			return err
		}
		if cur.Status.TokenFingerprint != fp {
			return fmt.Errorf("Habilitation %s records token %s, want %s", h.Name, cur.Status.TokenFingerprint, fp)
		}
		return nil
	}
}

// workload is a restricted Deployment in ns reading every one of secrets through envFrom
// (testenv.Workload for one Secret).
func workload(ns, name string, secrets ...string) *appsv1.Deployment {
	d := testenv.Workload(ns, name, secrets[0])
	c := &d.Spec.Template.Spec.Containers[0]
	c.EnvFrom = nil
	for i, s := range secrets {
		c.EnvFrom = append(c.EnvFrom, corev1.EnvFromSource{
			Prefix:    fmt.Sprintf("API%d_", i),
			SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: s}},
		})
	}
	return d
}

// rolledOut waits until Deployment d's latest rollout is complete (its pods Running on
// simulated nodes, older ones gone) with its pod template carrying restartedFor as
// jeton's restart annotation ("" for none), and returns its revision.
func rolledOut(t *testing.T, d *appsv1.Deployment, restartedFor string) int {
	t.Helper()
	key := client.ObjectKeyFromObject(d)
	var revision int
	testenv.WaitFor(t, rolloutTimeout, "Deployment "+key.String()+" rolled out", func(ctx context.Context) error {
		cur := &appsv1.Deployment{}
		if err := env.Client.Get(ctx, key, cur); err != nil {
			return err
		}
		if got := cur.Spec.Template.Annotations[jetonv1alpha1.AnnotationRestartedFor]; got != restartedFor {
			return fmt.Errorf("%s=%q, want %q", jetonv1alpha1.AnnotationRestartedFor, got, restartedFor)
		}
		var err error
		revision, err = testenv.RolledOut(ctx, env.Client, key)
		return err
	})
	return revision
}

// replicaSets returns the ReplicaSets of Deployment d.
func replicaSets(t *testing.T, d *appsv1.Deployment) []appsv1.ReplicaSet {
	t.Helper()
	cur := &appsv1.Deployment{}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(d), cur); err != nil {
		t.Fatal(err)
	}
	list := &appsv1.ReplicaSetList{}
	if err := env.Client.List(context.Background(), list, client.InNamespace(d.Namespace)); err != nil {
		t.Fatal(err)
	}
	var out []appsv1.ReplicaSet
	for _, rs := range list.Items {
		if metav1.IsControlledBy(&rs, cur) {
			out = append(out, rs)
		}
	}
	return out
}
