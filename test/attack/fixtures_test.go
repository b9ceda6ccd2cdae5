package attack

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/testenv"
	"github.com/jeton-dev/jeton/internal/token"
)

const waitTimeout = 45 * time.Second

// mint returns a fresh token of api from the emulator (never printed).
func mint(t *testing.T, api jetonv1alpha1.API) (tok, id string) {
	t.Helper()
	var scopes []string
	switch api {
	case jetonv1alpha1.APIEntreprise:
		scopes = []string{"unites_legales_etablissements_insee"}
	case jetonv1alpha1.APIParticulier:
		scopes = []string{"cnaf_quotient_familial"}
	case jetonv1alpha1.DemarchesNumeriques:
		scopes = []string{"4242"}
	}
	tok, id, err := emu.Mint(api, emulator.MintOptions{Scopes: scopes})
	if err != nil {
		t.Fatalf("minting a %s token: %v", api, err)
	}
	return tok, id
}

// newClient creates a PublicClient and, unless it is expected to be refused, waits until
// jeton has set up its namespace (Ready).
func newClient(t *testing.T, name string, mutate func(*jetonv1alpha1.PublicClient)) *jetonv1alpha1.PublicClient {
	t.Helper()
	pc := &jetonv1alpha1.PublicClient{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       jetonv1alpha1.PublicClientSpec{DisplayName: "Commune " + name, SIRET: testenv.RandomSIRET(rng)},
	}
	if mutate != nil {
		mutate(pc)
	}
	if err := env.Client.Create(context.Background(), pc); err != nil {
		t.Fatalf("creating PublicClient %s: %v", name, err)
	}
	return pc
}

// readyClient creates a PublicClient and waits for its namespace.
func readyClient(t *testing.T, name string) *jetonv1alpha1.PublicClient {
	t.Helper()
	pc := newClient(t, name, nil)
	waitReady(t, pc, metav1.ConditionTrue, jetonv1alpha1.ReasonReady, false)
	return pc
}

// habOptions tune newHabilitation.
type habOptions struct {
	api     jetonv1alpha1.API
	baseURL string
	// injected: the token is this client's own and expected to be injected, so its
	// injected Secret is an allowed location.
	injected bool
	// label names the token in messages; default "<client>'s token".
	label string
}

// newHabilitation creates a source Secret <name>-token holding tok and a Habilitation
// <name> of client clientName reading it. The token is registered, with its source Secret
// (and its injected Secret when opts.injected) as the places allowed to hold it.
func newHabilitation(t *testing.T, name, clientName, tok string, opts habOptions) *jetonv1alpha1.Habilitation {
	t.Helper()
	ctx := context.Background()
	if opts.api == "" {
		opts.api = jetonv1alpha1.APIEntreprise
	}
	label := opts.label
	if label == "" {
		label = "client " + clientName + "'s token"
	}
	allowed := []string{credNS + "/" + name + "-token"}
	if opts.injected {
		allowed = append(allowed, clientName+"/"+name)
	}
	registerToken(label, false, tok, allowed...)
	src, h := testenv.Habilitation(credNS, name, clientName, opts.api, tok)
	h.Spec.BaseURL = opts.baseURL
	for _, o := range []client.Object{src, h} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
	return h
}

// injectedHabilitation creates a client's Habilitation and waits until it is Injected.
func injectedHabilitation(t *testing.T, name, clientName, tok string, api jetonv1alpha1.API) *jetonv1alpha1.Habilitation {
	t.Helper()
	h := newHabilitation(t, name, clientName, tok, habOptions{api: api, injected: true})
	waitReady(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected, false)
	waitInjected(t, clientName, name, tok)
	return h
}

// newTechnicalToken creates a TechnicalToken reading Secret secretName (which the caller
// creates, or which already exists).
func newTechnicalToken(t *testing.T, name, secretName string, api jetonv1alpha1.API, baseURL string) *jetonv1alpha1.TechnicalToken {
	t.Helper()
	tt := &jetonv1alpha1.TechnicalToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: name},
		Spec: jetonv1alpha1.TechnicalTokenSpec{
			API:            api,
			BaseURL:        baseURL,
			TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: secretName, Key: "token"},
		},
	}
	if api == jetonv1alpha1.DemarchesNumeriques {
		tt.Spec.DemarcheNumber = ptr.To[int64](4242)
	}
	if err := env.Client.Create(context.Background(), tt); err != nil {
		t.Fatalf("creating TechnicalToken %s: %v", name, err)
	}
	return tt
}

// vendorTechnicalToken creates a Secret holding a fresh vendor technical token and a
// TechnicalToken probing it at baseURL.
func vendorTechnicalToken(t *testing.T, name string, api jetonv1alpha1.API, baseURL string) (*jetonv1alpha1.TechnicalToken, string) {
	t.Helper()
	tok, _ := mint(t, api)
	registerToken("the vendor's technical token "+name, true, tok, credNS+"/"+name+"-token")
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: name + "-token"}, Data: map[string][]byte{"token": []byte(tok)}}
	if err := env.Client.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return newTechnicalToken(t, name, s.Name, api, baseURL), tok
}

// statusOf returns the conditions and observedGeneration of a jeton resource.
func statusOf(obj client.Object) ([]metav1.Condition, int64) {
	switch o := obj.(type) {
	case *jetonv1alpha1.PublicClient:
		return o.Status.Conditions, o.Status.ObservedGeneration
	case *jetonv1alpha1.Habilitation:
		return o.Status.Conditions, o.Status.ObservedGeneration
	case *jetonv1alpha1.TechnicalToken:
		return o.Status.Conditions, o.Status.ObservedGeneration
	}
	panic(fmt.Sprintf("statusOf %T", obj))
}

// fresh reads obj again into a new object of its type.
func fresh(ctx context.Context, obj client.Object) (client.Object, error) {
	cp := obj.DeepCopyObject().(client.Object)
	return cp, env.Client.Get(ctx, client.ObjectKeyFromObject(obj), cp)
}

// readyIs checks that obj's Ready condition has status and reason for its current
// generation, and that Stalled is True when stalled (absent otherwise is not required).
func readyIs(obj client.Object, status metav1.ConditionStatus, reason string, stalled bool) error {
	conds, observed := statusOf(obj)
	c := meta.FindStatusCondition(conds, jetonv1alpha1.ConditionReady)
	switch {
	case c == nil:
		return errors.New("no Ready condition yet")
	case observed != obj.GetGeneration() || c.ObservedGeneration != obj.GetGeneration():
		return fmt.Errorf("generation %d not observed yet (status %d, Ready %d; Ready=%s %s)", obj.GetGeneration(), observed, c.ObservedGeneration, c.Status, c.Reason)
	case c.Status != status || c.Reason != reason:
		return fmt.Errorf("Ready=%s %s (%s), want %s %s", c.Status, c.Reason, c.Message, status, reason)
	}
	if stalled {
		s := meta.FindStatusCondition(conds, jetonv1alpha1.ConditionStalled)
		if s == nil || s.Status != metav1.ConditionTrue || s.Reason != reason || s.ObservedGeneration != obj.GetGeneration() {
			return fmt.Errorf("Stalled is %+v, want True %s", s, reason)
		}
	}
	return nil
}

// waitReady waits until obj's Ready condition is status/reason for its current generation
// (and Stalled=True when stalled), and returns the object as last read.
func waitReady(t *testing.T, obj client.Object, status metav1.ConditionStatus, reason string, stalled bool) client.Object {
	t.Helper()
	var got client.Object
	kind := strings.TrimPrefix(fmt.Sprintf("%T", obj), "*v1alpha1.")
	waitFor(t, waitTimeout, fmt.Sprintf("%s %s: Ready=%s %s", kind, obj.GetName(), status, reason), func(ctx context.Context) error {
		o, err := fresh(ctx, obj)
		if err != nil {
			return err
		}
		got = o
		return readyIs(o, status, reason, stalled)
	})
	return got
}

// waitInjected waits until the injected Secret <clientNS>/<name> holds tok with its
// fingerprint annotation.
func waitInjected(t *testing.T, clientNS, name, tok string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	waitFor(t, waitTimeout, fmt.Sprintf("Secret %s/%s injected", clientNS, name), func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: clientNS, Name: name}, s); err != nil {
			return err
		}
		tokenKey, _, _ := injection.Keys(&jetonv1alpha1.Habilitation{})
		if string(s.Data[tokenKey]) != tok {
			return fmt.Errorf("Secret %s/%s does not hold the expected token (fingerprint %s)", clientNS, name, token.Fingerprint(string(s.Data[tokenKey])))
		}
		if got, want := s.Annotations[jetonv1alpha1.AnnotationTokenFingerprint], token.Fingerprint(tok); got != want {
			return fmt.Errorf("fingerprint annotation %q, want %q", got, want)
		}
		return nil
	})
	return s
}

// secretGone waits until Secret ns/name does not exist.
func waitSecretGone(t *testing.T, ns, name string) {
	t.Helper()
	waitFor(t, waitTimeout, fmt.Sprintf("Secret %s/%s removed", ns, name), func(ctx context.Context) error {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &corev1.Secret{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return errors.New("still there")
	})
}

// waitDeleted deletes obj and waits until it is gone (jeton's finalizer has run).
func deleteAndWait(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Delete(context.Background(), obj); err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("deleting %s: %v", obj.GetName(), err)
	}
	waitFor(t, waitTimeout, fmt.Sprintf("%T %s deleted", obj, obj.GetName()), func(ctx context.Context) error {
		_, err := fresh(ctx, obj)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return errors.New("still there (finalizer not done)")
	})
}

// secretNames lists the Secrets of a namespace.
func secretNames(ctx context.Context, ns string) ([]string, error) {
	list := &corev1.SecretList{}
	if err := env.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	var names []string
	for _, s := range list.Items {
		names = append(names, s.Name)
	}
	return names, nil
}

// eventReasons lists the reasons of the events about one object (events.k8s.io, any
// namespace), oldest first.
func eventReasons(ctx context.Context, kind, namespace, name string) ([]string, []eventsv1.Event, error) {
	list := &eventsv1.EventList{}
	if err := env.Client.List(ctx, list); err != nil {
		return nil, nil, err
	}
	var reasons []string
	var evs []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == kind && e.Regarding.Namespace == namespace && e.Regarding.Name == name {
			evs = append(evs, e)
		}
	}
	slices.SortFunc(evs, func(a, b eventsv1.Event) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	for _, e := range evs {
		reasons = append(reasons, e.Reason)
	}
	return reasons, evs, nil
}

// heartbeat is a vendor TechnicalToken probed against the emulator every probeInterval for
// the whole package: counting its probes shows that the probe loop ran, before a test
// asserts that some other token was never probed.
var heartbeat struct {
	id string
}

// probeCycles waits until the heartbeat token has been probed n more times.
func probeCycles(t *testing.T, n int) {
	t.Helper()
	if heartbeat.id == "" {
		tok, id := mint(t, jetonv1alpha1.APIEntreprise)
		registerToken("the vendor's heartbeat technical token", true, tok, credNS+"/heartbeat-token")
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: "heartbeat-token"}, Data: map[string][]byte{"token": []byte(tok)}}
		if err := env.Client.Create(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		newTechnicalToken(t, "heartbeat", s.Name, jetonv1alpha1.APIEntreprise, emuURL)
		heartbeat.id = id
	}
	start := len(emu.Requests(heartbeat.id))
	waitFor(t, waitTimeout, fmt.Sprintf("%d probes of the heartbeat TechnicalToken", n), func(context.Context) error {
		if got := len(emu.Requests(heartbeat.id)) - start; got < n {
			return fmt.Errorf("%d probes so far", got)
		}
		return nil
	})
}

// tenantClient is a client authenticated as a tenant of namespace ns: it may read and
// write Secrets and Deployments there, and nothing else.
func tenantClient(t *testing.T, ns string) client.Client {
	t.Helper()
	ctx := context.Background()
	user := "tenant-of-" + ns
	au, err := env.Environment.AddUser(envtest.User{Name: user}, nil)
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tenant"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch"}},
		},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tenant"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "tenant"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(au.Config(), client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	// RBAC is enforced: the tenant cannot read the credentials namespace.
	waitFor(t, waitTimeout, "the tenant's role to apply", func(ctx context.Context) error {
		return c.List(ctx, &corev1.SecretList{}, client.InNamespace(ns))
	})
	if err := c.List(ctx, &corev1.SecretList{}, client.InNamespace(credNS)); !apierrors.IsForbidden(err) {
		t.Fatalf("the tenant of %s listing Secrets of the credentials namespace: %v, want Forbidden", ns, err)
	}
	return c
}

// clientStillServed checks that a client's Habilitation is still Ready/Injected and its
// injected Secret still holds its token, unchanged since before (same resourceVersion).
func clientStillServed(t *testing.T, h *jetonv1alpha1.Habilitation, tok string, before *corev1.Secret) {
	t.Helper()
	ctx := context.Background()
	o, err := fresh(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := readyIs(o, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected, false); err != nil {
		t.Errorf("client %s's Habilitation %s is no longer served: %s", h.Spec.ClientRef.Name, h.Name, redact(err.Error()))
	}
	s := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(before), s); err != nil {
		t.Errorf("client %s's injected Secret %s/%s: %v", h.Spec.ClientRef.Name, before.Namespace, before.Name, err)
		return
	}
	tokenKey, _, _ := injection.Keys(&jetonv1alpha1.Habilitation{})
	if string(s.Data[tokenKey]) != tok {
		t.Errorf("client %s's injected Secret %s/%s no longer holds its token", h.Spec.ClientRef.Name, s.Namespace, s.Name)
	}
	if s.ResourceVersion != before.ResourceVersion {
		t.Errorf("client %s's injected Secret %s/%s was rewritten (resourceVersion %s, was %s)", h.Spec.ClientRef.Name, s.Namespace, s.Name, s.ResourceVersion, before.ResourceVersion)
	}
}

// createSecret creates Secret ns/name holding tok under key "token".
func createSecret(t *testing.T, ns, name, tok string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{"token": []byte(tok)}}
	if err := env.Client.Create(context.Background(), s); err != nil {
		t.Fatalf("creating Secret %s/%s: %v", ns, name, err)
	}
	return s
}

// afterCreationSecond waits until the clock has passed the second of obj's creation
// timestamp, so that whatever is created next is younger as the API server counts
// (creation timestamps have one-second precision, and across kinds a same-second tie
// refuses both: see TestTechnicalTokenInTheSameSecond).
func afterCreationSecond(t *testing.T, obj client.Object) {
	t.Helper()
	o, err := fresh(context.Background(), obj)
	if err != nil {
		t.Fatal(err)
	}
	next := o.GetCreationTimestamp().Add(time.Second)
	waitFor(t, 5*time.Second, "the next second", func(context.Context) error {
		if !time.Now().After(next) {
			return errors.New("same second")
		}
		return nil
	})
}

// operatorHasSeen returns once the operator's Secret watches have delivered, and its
// handlers processed, every Secret event that happened before the call, so that a test
// asserting that jeton left some Secret alone is not passing only because jeton had not
// seen it yet:
//   - Secrets outside the credentials namespaces (jeton watches those labelled
//     managed-by=jeton, in all namespaces) come through one watch, in order: the sentinel is
//     drift on h's real injected Secret (its token edited, as a tenant would), made now;
//     once jeton has restored it, every earlier event of that watch was handled, and the
//     cache jeton lists from holds every Secret created before. (jeton never deletes a
//     look-alike it did not write, so the removal of one cannot serve as the sign.)
//   - Secrets of the credentials namespaces come through another watch: a suspended
//     TechnicalToken reading a Secret created now records that token's fingerprint once
//     the operator's cache holds it.
//
// h must be Injected with tok; its injected Secret is rewritten by jeton on the way (its
// resourceVersion changes).
func operatorHasSeen(t *testing.T, h *jetonv1alpha1.Habilitation, tok string) {
	t.Helper()
	ctx := context.Background()
	sfx := suffix()
	driftRestored(t, h, tok, "drift sentinel "+sfx)

	tokW, _ := mint(t, jetonv1alpha1.APIEntreprise)
	name := "witness-" + sfx
	registerToken("the vendor's technical token "+name, true, tokW, credNS+"/"+name+"-token")
	createSecret(t, credNS, name+"-token", tokW)
	tt := &jetonv1alpha1.TechnicalToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: name},
		Spec: jetonv1alpha1.TechnicalTokenSpec{API: jetonv1alpha1.APIEntreprise, BaseURL: emuURL, Suspend: true,
			TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: name + "-token", Key: "token"}},
	}
	if err := env.Client.Create(ctx, tt); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitTimeout, "the witness TechnicalToken to read its Secret", func(ctx context.Context) error {
		got := &jetonv1alpha1.TechnicalToken{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tt), got); err != nil {
			return err
		}
		if got.Status.TokenFingerprint != token.Fingerprint(tokW) {
			return fmt.Errorf("fingerprint %q", got.Status.TokenFingerprint)
		}
		return nil
	})
	deleteAndWait(t, tt)
	if err := env.Client.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: name + "-token"}}); err != nil {
		t.Fatal(err)
	}
}

// driftRestored replaces the token in h's injected Secret by junk (not a token), as a
// tenant editing its Secret would, and waits until jeton has restored tok there.
func driftRestored(t *testing.T, h *jetonv1alpha1.Habilitation, tok, junk string) *corev1.Secret {
	t.Helper()
	ns, name := injectedSecretOf(t, h)
	tokenKey, _, _ := injection.Keys(h)
	waitFor(t, waitTimeout, fmt.Sprintf("the drift of Secret %s/%s written", ns, name), func(ctx context.Context) error {
		s := &corev1.Secret{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
			return err
		}
		if string(s.Data[tokenKey]) != tok {
			return fmt.Errorf("Secret %s/%s does not hold the token before the drift (fingerprint %s)", ns, name, token.Fingerprint(string(s.Data[tokenKey])))
		}
		s.Data[tokenKey] = []byte(junk)
		return env.Client.Update(ctx, s) // a conflict (jeton writing meanwhile) is retried
	})
	return waitInjected(t, ns, name, tok)
}

// injectedSecretOf returns where h's injected Secret is, as its status records it.
func injectedSecretOf(t *testing.T, h *jetonv1alpha1.Habilitation) (namespace, name string) {
	t.Helper()
	o, err := fresh(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	ts := o.(*jetonv1alpha1.Habilitation).Status.TargetSecret
	if ts == nil {
		t.Fatalf("Habilitation %s records no target Secret", h.Name)
	}
	return ts.Namespace, ts.Name
}

// neverInjected checks that Habilitation h never injected anything: no Injected, Restored,
// Rotated or Removed event about it (a Secret written then removed leaves these).
func neverInjected(t *testing.T, h *jetonv1alpha1.Habilitation) {
	t.Helper()
	reasons, _, err := eventReasons(context.Background(), "Habilitation", h.Namespace, h.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reasons {
		switch r {
		case jetonv1alpha1.ReasonInjected, "Restored", "Rotated", "Removed":
			t.Errorf("Habilitation %s has a %s event: something was injected (events %v)", h.Name, r, reasons)
		}
	}
}
