package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/common/expfmt"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/token"
)

const habTimeout = 30 * time.Second

// testJWTKey signs the test tokens (HS256, as API Entreprise staging does). jeton never
// verifies signatures: a client cannot, it only decodes.
var testJWTKey = []byte("jeton-test-signing-key-not-a-secret")

// issuedTokens records every token the tests hand to jeton, so leak checks can look for all
// of them.
var issuedTokens struct {
	sync.Mutex
	list []string
}

func rememberToken(tok string) string {
	issuedTokens.Lock()
	defer issuedTokens.Unlock()
	issuedTokens.list = append(issuedTokens.list, tok)
	return tok
}

// issueJWT returns a fresh API Entreprise-like token (unique jti) expiring at exp with the
// given scopes.
func issueJWT(t testing.TB, exp time.Time, scopes ...string) string {
	t.Helper()
	if scopes == nil {
		scopes = []string{"unites_legales_etablissements_siege"}
	}
	claims := jwt.MapClaims{
		"uid":     rand.String(12),
		"jti":     fmt.Sprintf("%s-%s-%s", rand.String(8), rand.String(4), rand.String(12)),
		"sub":     "Habilitation de test",
		"scopes":  scopes,
		"iat":     time.Now().Add(-time.Hour).Unix(),
		"exp":     exp.Unix(),
		"version": "1.0",
		"mcp":     true, // unknown claims must be accepted
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(testJWTKey)
	if err != nil {
		t.Fatal(err)
	}
	return rememberToken(tok)
}

// validToken is a token valid for a year (well outside the 90-day renewal window).
func validToken(t *testing.T) string {
	return issueJWT(t, time.Now().Add(365*24*time.Hour))
}

// habClient creates a PublicClient and waits until its namespace is ready.
func habClient(t *testing.T, prefix string) *jetonv1alpha1.PublicClient {
	t.Helper()
	pc := newPublicClient(t, prefix, nil)
	return waitClientCondition(t, pc.Name, metav1.ConditionTrue, jetonv1alpha1.ReasonReady)
}

// tokenSecret creates a source Secret in namespace holding data. It carries GitOps tracking
// labels and annotations on purpose: they must never reach the injected Secret.
func tokenSecret(t *testing.T, namespace string, data map[string][]byte) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: uniqueName("token"),
			Labels: map[string]string{
				"argocd.argoproj.io/instance":      "credentials",
				"kustomize.toolkit.fluxcd.io/name": "credentials",
			},
			Annotations: map[string]string{"argocd.argoproj.io/tracking-id": "credentials:/Secret:jeton-system/x"},
		},
		Data: data,
	}
	if err := k8sClient.Create(context.Background(), s); err != nil {
		t.Fatalf("creating token Secret: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), s) })
	return s
}

func tokenData(tok string) map[string][]byte { return map[string][]byte{"token": []byte(tok)} }

// habFor creates a Habilitation of clientName in namespace reading Secret secretName.
func habFor(t *testing.T, namespace, clientName, secretName string, mutate func(*jetonv1alpha1.Habilitation)) *jetonv1alpha1.Habilitation {
	t.Helper()
	h := &jetonv1alpha1.Habilitation{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: uniqueName("hab")},
		Spec: jetonv1alpha1.HabilitationSpec{
			ClientRef:      jetonv1alpha1.ClientReference{Name: clientName},
			API:            jetonv1alpha1.APIEntreprise,
			TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: secretName, Key: "token"},
		},
	}
	if mutate != nil {
		mutate(h)
	}
	if err := k8sClient.Create(context.Background(), h); err != nil {
		t.Fatalf("creating Habilitation: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), h) })
	return h
}

// waitHab waits until the Habilitation's Ready condition has status and reason for its
// current generation, and returns it.
func waitHab(t *testing.T, h *jetonv1alpha1.Habilitation, status metav1.ConditionStatus, reason string) *jetonv1alpha1.Habilitation {
	t.Helper()
	got := &jetonv1alpha1.Habilitation{}
	waitFor(t, habTimeout, fmt.Sprintf("Habilitation %s Ready=%s/%s", h.Name, status, reason), func(ctx context.Context) error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(h), got); err != nil {
			return err
		}
		return readyIs(got.Status.Conditions, got.Generation, got.Status.ObservedGeneration, status, reason)
	})
	return got
}

// waitHabEvent waits for an event of the given type and reason about the Habilitation and
// returns its note.
func waitHabEvent(t *testing.T, h *jetonv1alpha1.Habilitation, eventType, reason string) string {
	t.Helper()
	return waitEvent(t, habTimeout, "Habilitation", h, eventType, reason)
}

// waitTarget waits until the injected Secret namespace/name holds tok and returns it.
func waitTarget(t *testing.T, namespace, name, tok string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	waitFor(t, habTimeout, fmt.Sprintf("Secret %s/%s holding the expected token", namespace, name), func(ctx context.Context) error {
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
			return err
		}
		if string(s.Data["TOKEN"]) != tok {
			return fmt.Errorf("TOKEN holds a token with fingerprint %s, want %s", token.Fingerprint(string(s.Data["TOKEN"])), token.Fingerprint(tok))
		}
		return nil
	})
	return s
}

// waitGone waits until the Secret namespace/name does not exist.
func waitGone(t *testing.T, namespace, name string) {
	t.Helper()
	waitFor(t, habTimeout, fmt.Sprintf("Secret %s/%s removed", namespace, name), func(ctx context.Context) error {
		err := k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &corev1.Secret{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err %v)", err)
	})
}

// assertNoSecretsIn fails if namespace holds any Secret jeton injected.
func assertNoInjectedSecrets(t *testing.T, namespace string) {
	t.Helper()
	var list corev1.SecretList
	if err := k8sClient.List(context.Background(), &list, client.InNamespace(namespace),
		client.MatchingLabels{jetonv1alpha1.LabelManagedBy: jetonv1alpha1.ManagedByValue}); err != nil {
		t.Fatal(err)
	}
	for _, s := range list.Items {
		t.Errorf("namespace %s holds injected Secret %s; want none", namespace, s.Name)
	}
}

// assertNoTokenLeak fails if any token the tests issued (or the payload or signature of a
// JWT: either is enough to misuse or identify it) appears in the manager's logs, in any
// Event of the cluster, or in any jeton object.
func assertNoTokenLeak(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var haystacks []struct{ where, text string }
	add := func(where, text string) { haystacks = append(haystacks, struct{ where, text string }{where, text}) }
	add("manager logs", logs.String())

	var evs eventsv1.EventList
	if err := k8sClient.List(ctx, &evs); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		add("event "+e.Namespace+"/"+e.Name, e.Note+" "+e.Reason+" "+e.Action)
	}
	var coreEvs corev1.EventList
	if err := k8sClient.List(ctx, &coreEvs); err != nil {
		t.Fatal(err)
	}
	for _, e := range coreEvs.Items {
		add("core event "+e.Namespace+"/"+e.Name, e.Message)
	}
	for _, l := range []client.ObjectList{&jetonv1alpha1.HabilitationList{}, &jetonv1alpha1.TechnicalTokenList{}, &jetonv1alpha1.PublicClientList{}} {
		if err := k8sClient.List(ctx, l); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		add(fmt.Sprintf("%T", l), string(b))
	}

	// The metrics the manager serves (jeton's collector reads the same cache), as scraped.
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var exposition strings.Builder
	jetonSeries := 0
	for _, mf := range families {
		if strings.HasPrefix(mf.GetName(), "jeton_") {
			jetonSeries += len(mf.GetMetric())
		}
		if _, err := expfmt.MetricFamilyToText(&exposition, mf); err != nil {
			t.Fatal(err)
		}
	}
	if jetonSeries == 0 {
		t.Fatal("no jeton_ series gathered: the metrics leak check would prove nothing")
	}
	add("metrics", exposition.String())

	issuedTokens.Lock()
	tokens := append([]string(nil), issuedTokens.list...)
	issuedTokens.Unlock()
	if len(tokens) == 0 {
		t.Fatal("no token issued: the leak check would prove nothing")
	}
	for _, tok := range tokens {
		if fp := token.Fingerprint(tok); strings.Contains(exposition.String(), fp) {
			t.Errorf("a token fingerprint (%s) appears in the metrics: labels must never identify a token", fp)
		}
	}
	for _, tok := range tokens {
		needles := []string{tok}
		if parts := strings.Split(tok, "."); len(parts) == 3 {
			needles = append(needles, parts[1], parts[2])
		}
		for _, n := range needles {
			for _, h := range haystacks {
				if strings.Contains(h.text, n) {
					t.Errorf("a token (fingerprint %s) appears in %s", token.Fingerprint(tok), h.where)
				}
			}
		}
	}
}
