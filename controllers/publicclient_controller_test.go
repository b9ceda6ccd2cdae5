package controllers

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/isolation"
)

const (
	pcTimeout = 30 * time.Second
	// validSIRET passes the Luhn checksum.
	validSIRET = "73282932000074"
)

// newPublicClient creates a PublicClient with a unique name and returns it; mutate adjusts
// the spec before creation. The client is deleted when the test ends.
func newPublicClient(t *testing.T, prefix string, mutate func(*jetonv1alpha1.PublicClient)) *jetonv1alpha1.PublicClient {
	t.Helper()
	pc := &jetonv1alpha1.PublicClient{
		ObjectMeta: metav1.ObjectMeta{Name: uniqueName(prefix)},
		Spec:       jetonv1alpha1.PublicClientSpec{DisplayName: "Commune de " + prefix, SIRET: validSIRET},
	}
	if mutate != nil {
		mutate(pc)
	}
	if err := k8sClient.Create(context.Background(), pc); err != nil {
		t.Fatalf("creating PublicClient: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), pc) })
	return pc
}

// waitClientCondition waits until the client's Ready condition has the given status and
// reason, for the client's current generation, and returns the client.
func waitClientCondition(t *testing.T, name string, status metav1.ConditionStatus, reason string) *jetonv1alpha1.PublicClient {
	t.Helper()
	pc := &jetonv1alpha1.PublicClient{}
	waitFor(t, pcTimeout, fmt.Sprintf("PublicClient %s Ready=%s/%s", name, status, reason), func(ctx context.Context) error {
		if err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, pc); err != nil {
			return err
		}
		return readyIs(pc.Status.Conditions, pc.Generation, pc.Status.ObservedGeneration, status, reason)
	})
	return pc
}

func getNamespace(t *testing.T, name string) *corev1.Namespace {
	t.Helper()
	ns := &corev1.Namespace{}
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Name: name}, ns); err != nil {
		t.Fatalf("getting namespace %s: %v", name, err)
	}
	return ns
}

func createNamespace(t *testing.T, name string, labels map[string]string) *corev1.Namespace {
	t.Helper()
	ns := namespaceObject(name)
	ns.Labels = labels
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	return ns
}

func getIsolationPolicy(ctx context.Context, namespace string) (*networkingv1.NetworkPolicy, error) {
	np := &networkingv1.NetworkPolicy{}
	err := k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: isolation.NetworkPolicyName}, np)
	return np, err
}

func waitPolicyGone(t *testing.T, namespace string) {
	t.Helper()
	waitFor(t, pcTimeout, "NetworkPolicy removed from "+namespace, func(ctx context.Context) error {
		if _, err := getIsolationPolicy(ctx, namespace); !apierrors.IsNotFound(err) {
			return fmt.Errorf("policy still there (err %v)", err)
		}
		return nil
	})
}

// assertNoNamespaceFinalizer checks that jeton never puts a finalizer on a Namespace.
func assertNoNamespaceFinalizer(t *testing.T, ns *corev1.Namespace) {
	t.Helper()
	if len(ns.Finalizers) != 0 {
		t.Errorf("namespace %s has finalizers %v; jeton must never put one on a Namespace", ns.Name, ns.Finalizers)
	}
}

// waitClientEvent waits for an event of the given type and reason about the PublicClient
// and returns its note.
func waitClientEvent(t *testing.T, pcName, eventType, reason string) string {
	t.Helper()
	pc := &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: pcName}}
	return waitEvent(t, pcTimeout, "PublicClient", pc, eventType, reason)
}

func TestPublicClientCreatesIsolatedNamespace(t *testing.T) {
	ctx := context.Background()
	pc := newPublicClient(t, "mairie", nil)
	got := waitClientCondition(t, pc.Name, metav1.ConditionTrue, jetonv1alpha1.ReasonReady)

	if got.Status.Namespace != pc.Name {
		t.Errorf("status.namespace = %q, want the client name %q", got.Status.Namespace, pc.Name)
	}
	for _, typ := range []string{jetonv1alpha1.ConditionReconciling, jetonv1alpha1.ConditionStalled} {
		if c := meta.FindStatusCondition(got.Status.Conditions, typ); c != nil {
			t.Errorf("condition %s present on a ready client: %+v", typ, c)
		}
	}
	if !strings.Contains(strings.Join(got.Finalizers, ","), jetonv1alpha1.FinalizerCleanup) {
		t.Errorf("finalizers = %v, want %s", got.Finalizers, jetonv1alpha1.FinalizerCleanup)
	}

	ns := getNamespace(t, pc.Name)
	wantLabels := map[string]string{
		"jeton.dev/client":                           pc.Name,
		"app.kubernetes.io/managed-by":               "jeton",
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
		"pod-security.kubernetes.io/audit":           "restricted",
		"pod-security.kubernetes.io/audit-version":   "latest",
		"pod-security.kubernetes.io/warn":            "restricted",
		"pod-security.kubernetes.io/warn-version":    "latest",
	}
	for k, v := range wantLabels {
		if ns.Labels[k] != v {
			t.Errorf("namespace label %s = %q, want %q", k, ns.Labels[k], v)
		}
	}
	assertNoNamespaceFinalizer(t, ns)

	np, err := getIsolationPolicy(ctx, pc.Name)
	if err != nil {
		t.Fatalf("NetworkPolicy: %v", err)
	}
	if np.Labels[jetonv1alpha1.LabelClient] != pc.Name || np.Labels[jetonv1alpha1.LabelManagedBy] != "jeton" {
		t.Errorf("NetworkPolicy labels = %v", np.Labels)
	}
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 2 {
		t.Fatalf("NetworkPolicy ingress = %+v, want one rule with two peers", np.Spec.Ingress)
	}
	nsPeer := np.Spec.Ingress[0].From[1].NamespaceSelector
	if nsPeer == nil || len(nsPeer.MatchExpressions) != 1 || nsPeer.MatchExpressions[0].Key != jetonv1alpha1.LabelClient ||
		nsPeer.MatchExpressions[0].Operator != metav1.LabelSelectorOpDoesNotExist {
		t.Errorf("NetworkPolicy does not exclude client namespaces: %+v", np.Spec.Ingress[0].From)
	}
	waitClientEvent(t, pc.Name, corev1.EventTypeNormal, EventNamespaceCreated)

	// Someone else's label on the namespace survives a change of Pod Security level.
	ns.Labels["team"] = "payments"
	if err := k8sClient.Update(ctx, ns); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(got.DeepCopy())
	got.Spec.Isolation.PodSecurity = jetonv1alpha1.PodSecurityBaseline
	if err := k8sClient.Patch(ctx, got, patch); err != nil {
		t.Fatal(err)
	}
	waitFor(t, pcTimeout, "Pod Security level baseline", func(ctx context.Context) error {
		ns := &corev1.Namespace{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Name: pc.Name}, ns); err != nil {
			return err
		}
		for _, mode := range []string{"enforce", "audit", "warn"} {
			if v := ns.Labels["pod-security.kubernetes.io/"+mode]; v != "baseline" {
				return fmt.Errorf("%s = %q", mode, v)
			}
		}
		return nil
	})
	waitClientCondition(t, pc.Name, metav1.ConditionTrue, jetonv1alpha1.ReasonReady)
	if ns := getNamespace(t, pc.Name); ns.Labels["team"] != "payments" {
		t.Errorf("label team was removed: %v", ns.Labels)
	}
}

func TestPublicClientRefusesExistingNamespace(t *testing.T) {
	ctx := context.Background()
	nsName := uniqueName("existing")
	createNamespace(t, nsName, map[string]string{"team": "someone-else"})
	before := getNamespace(t, nsName)

	pc := newPublicClient(t, "ville", func(pc *jetonv1alpha1.PublicClient) { pc.Spec.Namespace = nsName })
	got := waitClientCondition(t, pc.Name, metav1.ConditionFalse, jetonv1alpha1.ReasonNamespaceOwnedElsewhere)

	stalled := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionStalled)
	if stalled == nil || stalled.Status != metav1.ConditionTrue || stalled.Reason != jetonv1alpha1.ReasonNamespaceOwnedElsewhere {
		t.Errorf("Stalled = %+v, want True/NamespaceOwnedElsewhere", stalled)
	}
	ready := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady)
	for _, hint := range []string{"spec.adoptNamespace: true", "spec.namespace"} {
		if !strings.Contains(ready.Message, hint) {
			t.Errorf("message %q does not tell how to fix it (%q)", ready.Message, hint)
		}
	}
	if strings.Contains(ready.Message, "Label it") {
		t.Errorf("message %q suggests labelling the namespace, which proves nothing", ready.Message)
	}
	if got.Status.Namespace != "" || got.Status.NamespaceUID != "" {
		t.Errorf("status records namespace %q (%q) that jeton does not manage", got.Status.Namespace, got.Status.NamespaceUID)
	}
	note := waitClientEvent(t, pc.Name, corev1.EventTypeWarning, jetonv1alpha1.ReasonNamespaceOwnedElsewhere)
	if !strings.Contains(note, nsName) {
		t.Errorf("event note %q does not name the namespace", note)
	}

	// Nothing was written there. The reconcile that set the condition ran after the checks,
	// so the absence of the policy now is meaningful.
	if _, err := getIsolationPolicy(ctx, nsName); !apierrors.IsNotFound(err) {
		t.Errorf("NetworkPolicy written into a namespace jeton does not own (err %v)", err)
	}
	after := getNamespace(t, nsName)
	if !maps.Equal(before.Labels, after.Labels) {
		t.Errorf("namespace labels changed from %v to %v", before.Labels, after.Labels)
	}
	assertNoNamespaceFinalizer(t, after)

	// A label proves nothing: whoever created the namespace can add it. The next pass (a
	// spec change) still refuses it.
	after.Labels[jetonv1alpha1.LabelClient] = pc.Name
	if err := k8sClient.Update(ctx, after); err != nil {
		t.Fatal(err)
	}
	updateClient(t, pc.Name, func(c *jetonv1alpha1.PublicClient) { c.Spec.DisplayName += " (label added)" })
	waitClientCondition(t, pc.Name, metav1.ConditionFalse, jetonv1alpha1.ReasonNamespaceOwnedElsewhere)

	// The PublicClient asking for adoption takes it, at once.
	updateClient(t, pc.Name, func(c *jetonv1alpha1.PublicClient) { c.Spec.AdoptNamespace = true })
	got = waitClientCondition(t, pc.Name, metav1.ConditionTrue, jetonv1alpha1.ReasonReady)
	if got.Status.Namespace != nsName || got.Status.NamespaceUID != after.UID || got.Status.NamespaceOrigin != jetonv1alpha1.NamespaceAdopted {
		t.Errorf("status namespace = %q, uid %q, origin %q; want %q, %q, Adopted", got.Status.Namespace, got.Status.NamespaceUID, got.Status.NamespaceOrigin, nsName, after.UID)
	}
	if meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionStalled) != nil {
		t.Errorf("Stalled still present after adoption")
	}
	waitClientEvent(t, pc.Name, corev1.EventTypeNormal, EventNamespaceAdopted)
	if ns := getNamespace(t, nsName); ns.Labels["team"] != "someone-else" || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("adopted namespace labels = %v, want team kept and Pod Security added", ns.Labels)
	}
	if _, err := getIsolationPolicy(ctx, nsName); err != nil {
		t.Errorf("NetworkPolicy in adopted namespace: %v", err)
	}
}

// updateClient applies mutate to the PublicClient name, retrying on conflicts.
func updateClient(t *testing.T, name string, mutate func(*jetonv1alpha1.PublicClient)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pc := &jetonv1alpha1.PublicClient{}
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Name: name}, pc); err != nil {
			return err
		}
		mutate(pc)
		return k8sClient.Update(context.Background(), pc)
	})
	if err != nil {
		t.Fatalf("updating PublicClient %s: %v", name, err)
	}
}

// Anyone who can create namespaces may pre-create a future client's namespace, labelled
// for it: jeton must neither adopt it nor ever deliver the client's tokens there.
func TestPublicClientDoesNotAdoptPreCreatedNamespace(t *testing.T) {
	ctx := context.Background()
	name := uniqueName("future")
	createNamespace(t, name, map[string]string{jetonv1alpha1.LabelClient: name, "team": "attacker"})
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), namespaceObject(name)) })

	pc := &jetonv1alpha1.PublicClient{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: jetonv1alpha1.PublicClientSpec{DisplayName: "Région", SIRET: validSIRET,
			NamespacePolicy: jetonv1alpha1.NamespacePolicyDelete},
	}
	if err := k8sClient.Create(ctx, pc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), pc) })
	waitClientCondition(t, name, metav1.ConditionFalse, jetonv1alpha1.ReasonNamespaceOwnedElsewhere)

	h := habFor(t, credNS, name, tokenSecret(t, credNS, tokenData(validToken(t))).Name, nil)
	waitHab(t, h, metav1.ConditionFalse, jetonv1alpha1.ReasonClientNotReady)
	assertNoInjectedSecrets(t, name)
	if _, err := getIsolationPolicy(ctx, name); !apierrors.IsNotFound(err) {
		t.Errorf("NetworkPolicy written into the pre-created namespace (err %v)", err)
	}

	// Deleting the client (namespacePolicy Delete) leaves the namespace alone.
	if err := k8sClient.Delete(ctx, pc); err != nil {
		t.Fatal(err)
	}
	waitClientGone(t, name)
	if ns := getNamespace(t, name); ns.DeletionTimestamp != nil {
		t.Errorf("jeton deleted a namespace it did not create")
	}
}

// Adopting takes both sides: the PublicClient asks, and the namespace's administrator
// labels it for the client. An editor alone cannot take over another team's namespace
// (its Pod Security, its ingress). An adopted namespace is never deleted, whatever
// namespacePolicy says.
func TestPublicClientAdoptionNeedsBothSides(t *testing.T) {
	ctx := context.Background()
	name := uniqueName("adopted")
	createNamespace(t, name, map[string]string{"team": "ops", "pod-security.kubernetes.io/enforce": "restricted"})
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), namespaceObject(name)) })
	before := getNamespace(t, name)
	pc := newPublicClient(t, "adopter", func(pc *jetonv1alpha1.PublicClient) {
		pc.Spec.Namespace = name
		pc.Spec.AdoptNamespace = true
		pc.Spec.NamespacePolicy = jetonv1alpha1.NamespacePolicyDelete
		pc.Spec.Isolation.PodSecurity = jetonv1alpha1.PodSecurityPrivileged
	})
	got := waitClientCondition(t, pc.Name, metav1.ConditionFalse, jetonv1alpha1.ReasonNamespaceOwnedElsewhere)
	if msg := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady).Message; !strings.Contains(msg, "jeton.dev/client="+pc.Name) {
		t.Errorf("message %q does not say the namespace must agree", msg)
	}
	if after := getNamespace(t, name); !maps.Equal(before.Labels, after.Labels) {
		t.Errorf("the editor alone changed the namespace's labels: %v -> %v", before.Labels, after.Labels)
	}
	if _, err := getIsolationPolicy(ctx, name); !apierrors.IsNotFound(err) {
		t.Errorf("NetworkPolicy written before the namespace agreed (err %v)", err)
	}

	// The namespace's administrator agrees.
	ns := getNamespace(t, name)
	ns.Labels[jetonv1alpha1.LabelClient] = pc.Name
	if err := k8sClient.Update(ctx, ns); err != nil {
		t.Fatal(err)
	}
	got = waitClientCondition(t, pc.Name, metav1.ConditionTrue, jetonv1alpha1.ReasonReady)
	if got.Status.NamespaceOrigin != jetonv1alpha1.NamespaceAdopted {
		t.Errorf("origin %q, want Adopted", got.Status.NamespaceOrigin)
	}
	injected := injectedSecret(t, name, pc.Name)

	if err := k8sClient.Delete(ctx, pc); err != nil {
		t.Fatal(err)
	}
	waitClientGone(t, pc.Name)
	if ns := getNamespace(t, name); ns.DeletionTimestamp != nil {
		t.Errorf("jeton deleted an adopted namespace (namespacePolicy Delete)")
	}
	if secretExists(t, injected) {
		t.Errorf("the Secret jeton injected survived its client's deletion")
	}
	note := waitClientEvent(t, pc.Name, corev1.EventTypeNormal, EventNamespaceRetained)
	if !strings.Contains(note, "did not create it") {
		t.Errorf("event %q does not say why the namespace was kept", note)
	}
}

// Reserved namespaces are never client namespaces, and the message does not suggest
// labelling them.
func TestPublicClientRefusesReservedNamespaces(t *testing.T) {
	for _, ns := range []string{credNS, "kube-system", "kube-public", "default"} {
		t.Run(ns, func(t *testing.T) {
			before := getNamespace(t, ns)
			pc := newPublicClient(t, "reserved", func(pc *jetonv1alpha1.PublicClient) {
				pc.Spec.Namespace = ns
				pc.Spec.AdoptNamespace = true
				pc.Spec.NamespacePolicy = jetonv1alpha1.NamespacePolicyDelete
			})
			got := waitClientCondition(t, pc.Name, metav1.ConditionFalse, jetonv1alpha1.ReasonNamespaceReserved)
			msg := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady).Message
			if !strings.Contains(msg, "reserved") || strings.Contains(msg, "label") {
				t.Errorf("message %q", msg)
			}
			waitClientEvent(t, pc.Name, corev1.EventTypeWarning, jetonv1alpha1.ReasonNamespaceReserved)
			if err := k8sClient.Delete(context.Background(), pc); err != nil {
				t.Fatal(err)
			}
			waitClientGone(t, pc.Name)
			after := getNamespace(t, ns)
			if after.DeletionTimestamp != nil || !maps.Equal(before.Labels, after.Labels) || !maps.Equal(before.Annotations, after.Annotations) {
				t.Errorf("reserved namespace %s touched: labels %v -> %v, deleting %v", ns, before.Labels, after.Labels, after.DeletionTimestamp != nil)
			}
		})
	}
}

func TestPublicClientTwoClientsClaimOneNamespace(t *testing.T) {
	ctx := context.Background()
	shared := uniqueName("shared")
	first := newPublicClient(t, "first", func(pc *jetonv1alpha1.PublicClient) { pc.Spec.Namespace = shared })
	waitClientCondition(t, first.Name, metav1.ConditionTrue, jetonv1alpha1.ReasonReady)

	second := newPublicClient(t, "second", func(pc *jetonv1alpha1.PublicClient) { pc.Spec.Namespace = shared })
	got := waitClientCondition(t, second.Name, metav1.ConditionFalse, jetonv1alpha1.ReasonNamespaceOwnedElsewhere)
	if msg := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady).Message; !strings.Contains(msg, first.Name) {
		t.Errorf("message %q does not name the owner %s", msg, first.Name)
	}
	ns := getNamespace(t, shared)
	if ns.Labels[jetonv1alpha1.LabelClient] != first.Name {
		t.Errorf("namespace label = %q, want the first client %s", ns.Labels[jetonv1alpha1.LabelClient], first.Name)
	}
	np, err := getIsolationPolicy(ctx, shared)
	if err != nil || np.Labels[jetonv1alpha1.LabelClient] != first.Name {
		t.Errorf("NetworkPolicy = %v (err %v), want the first client's", np.Labels, err)
	}
	// The first client stays Ready.
	waitClientCondition(t, first.Name, metav1.ConditionTrue, jetonv1alpha1.ReasonReady)
}

func TestPublicClientNetworkPolicyFollowsSpec(t *testing.T) {
	ctx := context.Background()
	pc := newPublicClient(t, "commune", nil)
	waitClientCondition(t, pc.Name, metav1.ConditionTrue, jetonv1alpha1.ReasonReady)
	np, err := getIsolationPolicy(ctx, pc.Name)
	if err != nil {
		t.Fatal(err)
	}

	// Deleted by hand: restored.
	if err := k8sClient.Delete(ctx, np); err != nil {
		t.Fatal(err)
	}
	waitFor(t, pcTimeout, "NetworkPolicy restored", func(ctx context.Context) error {
		restored, err := getIsolationPolicy(ctx, pc.Name)
		if err != nil {
			return err
		}
		if restored.UID == np.UID {
			return fmt.Errorf("still the deleted policy")
		}
		return nil
	})

	// Disabled: removed, and the client stays Ready.
	got := &jetonv1alpha1.PublicClient{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Name: pc.Name}, got); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(got.DeepCopy())
	got.Spec.Isolation.NetworkPolicy = jetonv1alpha1.NetworkPolicyDisabled
	if err := k8sClient.Patch(ctx, got, patch); err != nil {
		t.Fatal(err)
	}
	waitPolicyGone(t, pc.Name)
	ready := waitClientCondition(t, pc.Name, metav1.ConditionTrue, jetonv1alpha1.ReasonReady)
	if ready.Generation < 2 {
		t.Errorf("generation %d: the spec change was not observed", ready.Generation)
	}
}

func waitHabilitationCount(t *testing.T, name string, want int32) {
	t.Helper()
	waitFor(t, pcTimeout, fmt.Sprintf("status.habilitations = %d", want), func(ctx context.Context) error {
		pc := &jetonv1alpha1.PublicClient{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, pc); err != nil {
			return err
		}
		if pc.Status.Habilitations != want {
			return fmt.Errorf("status.habilitations = %d", pc.Status.Habilitations)
		}
		return nil
	})
}

func TestPublicClientCountsHabilitations(t *testing.T) {
	ctx := context.Background()
	pc := newPublicClient(t, "dept", nil)
	other := newPublicClient(t, "other", nil)
	waitClientCondition(t, pc.Name, metav1.ConditionTrue, jetonv1alpha1.ReasonReady)

	h1 := habFor(t, credNS, pc.Name, uniqueName("absent"), nil)
	waitHabilitationCount(t, pc.Name, 1)
	habFor(t, credNS, pc.Name, uniqueName("absent"), nil)
	habFor(t, credNS, other.Name, uniqueName("absent"), nil) // another client's
	// Outside the credentials namespaces a Habilitation is not honoured, so not counted.
	elsewhere := uniqueName("tenant")
	createNamespace(t, elsewhere, nil)
	habFor(t, elsewhere, pc.Name, uniqueName("absent"), nil)
	waitHabilitationCount(t, pc.Name, 2)
	waitHabilitationCount(t, other.Name, 1)

	if err := k8sClient.Delete(ctx, h1); err != nil {
		t.Fatal(err)
	}
	waitHabilitationCount(t, pc.Name, 1)
}

// injectedSecret simulates a Secret the Habilitation reconciler injected for clientName.
func injectedSecret(t *testing.T, namespace, clientName string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: uniqueName("injected"), Labels: map[string]string{
			jetonv1alpha1.LabelManagedBy: jetonv1alpha1.ManagedByValue,
			jetonv1alpha1.LabelClient:    clientName,
		}},
		StringData: map[string]string{"TOKEN": "not-a-real-token"},
	}
	// Signed as jeton signs what it injects: only such Secrets are jeton's to remove.
	s.Annotations = map[string]string{jetonv1alpha1.AnnotationOwnerProof: injection.SecretProof(ownerProofKey(t), s)}
	if err := k8sClient.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s
}

// ownerProofKey reads the key jeton signs its namespaces and Secrets with (created by the
// first PublicClient reconciled).
func ownerProofKey(t *testing.T) []byte {
	t.Helper()
	var key []byte
	waitFor(t, pcTimeout, "the owner-proof key", func(ctx context.Context) error {
		s := &corev1.Secret{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: credNS, Name: ownerKeySecretName}, s); err != nil {
			return err
		}
		key = s.Data[ownerKeyDataKey]
		return nil
	})
	return key
}

func waitClientGone(t *testing.T, name string) {
	t.Helper()
	waitFor(t, pcTimeout, "PublicClient "+name+" deleted", func(ctx context.Context) error {
		err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, &jetonv1alpha1.PublicClient{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err %v)", err)
	})
}

func secretExists(t *testing.T, s *corev1.Secret) bool {
	t.Helper()
	err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(s), &corev1.Secret{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func TestPublicClientDeletionRetain(t *testing.T) {
	ctx := context.Background()
	pc := newPublicClient(t, "retain", nil)
	neighbour := newPublicClient(t, "neighbour", nil)
	waitClientCondition(t, pc.Name, metav1.ConditionTrue, jetonv1alpha1.ReasonReady)
	waitClientCondition(t, neighbour.Name, metav1.ConditionTrue, jetonv1alpha1.ReasonReady)

	injected := injectedSecret(t, pc.Name, pc.Name)
	// Same namespace, not jeton's: an application's own Secret.
	appSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: pc.Name, Name: "app-config",
		Labels: map[string]string{jetonv1alpha1.LabelClient: pc.Name}}}
	if err := k8sClient.Create(ctx, appSecret); err != nil {
		t.Fatal(err)
	}
	neighbourSecret := injectedSecret(t, neighbour.Name, neighbour.Name)

	if err := k8sClient.Delete(ctx, pc); err != nil {
		t.Fatal(err)
	}
	waitClientGone(t, pc.Name)

	if secretExists(t, injected) {
		t.Errorf("the Secret jeton injected survived its client's deletion")
	}
	if !secretExists(t, appSecret) {
		t.Errorf("an application Secret (not managed by jeton) was deleted")
	}
	if !secretExists(t, neighbourSecret) {
		t.Errorf("another client's injected Secret was deleted")
	}
	ns := getNamespace(t, pc.Name)
	if ns.DeletionTimestamp != nil {
		t.Errorf("namespace deleted despite namespacePolicy Retain")
	}
	if ns.Labels[jetonv1alpha1.LabelClient] != pc.Name {
		t.Errorf("retained namespace lost its client label (%v): re-creating the client would not adopt it", ns.Labels)
	}
	assertNoNamespaceFinalizer(t, ns)
	if _, err := getIsolationPolicy(ctx, pc.Name); !apierrors.IsNotFound(err) {
		t.Errorf("NetworkPolicy left behind (err %v)", err)
	}
	waitClientEvent(t, pc.Name, corev1.EventTypeNormal, EventNamespaceRetained)

	// The neighbour is untouched.
	if getNamespace(t, neighbour.Name).DeletionTimestamp != nil {
		t.Errorf("neighbour namespace deleted")
	}
	if _, err := getIsolationPolicy(ctx, neighbour.Name); err != nil {
		t.Errorf("neighbour NetworkPolicy: %v", err)
	}
	waitClientCondition(t, neighbour.Name, metav1.ConditionTrue, jetonv1alpha1.ReasonReady)

	// Re-creating the client adopts the retained namespace: jeton created it, and left a
	// proof of that bound to this very namespace.
	again := &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: pc.Name}, Spec: pc.Spec}
	if err := k8sClient.Create(ctx, again); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), again) })
	got := waitClientCondition(t, pc.Name, metav1.ConditionTrue, jetonv1alpha1.ReasonReady)
	if got.Status.NamespaceUID != ns.UID || got.Status.NamespaceOrigin != jetonv1alpha1.NamespaceCreated {
		t.Errorf("re-adopted namespace recorded as %q/%q, want %q/Created", got.Status.NamespaceUID, got.Status.NamespaceOrigin, ns.UID)
	}
}

func TestPublicClientDeletionDelete(t *testing.T) {
	ctx := context.Background()
	pc := newPublicClient(t, "gone", func(pc *jetonv1alpha1.PublicClient) {
		pc.Spec.NamespacePolicy = jetonv1alpha1.NamespacePolicyDelete
	})
	// A second client claims the same namespace and is refused: deleting it must not
	// delete the namespace it never owned.
	rival := newPublicClient(t, "rival", func(r *jetonv1alpha1.PublicClient) {
		r.Spec.Namespace = pc.Name
		r.Spec.NamespacePolicy = jetonv1alpha1.NamespacePolicyDelete
	})
	waitClientCondition(t, pc.Name, metav1.ConditionTrue, jetonv1alpha1.ReasonReady)
	waitClientCondition(t, rival.Name, metav1.ConditionFalse, jetonv1alpha1.ReasonNamespaceOwnedElsewhere)
	injected := injectedSecret(t, pc.Name, pc.Name)

	if err := k8sClient.Delete(ctx, rival); err != nil {
		t.Fatal(err)
	}
	waitClientGone(t, rival.Name)
	if ns := getNamespace(t, pc.Name); ns.DeletionTimestamp != nil {
		t.Fatalf("deleting a client deleted a namespace it did not own")
	}
	if !secretExists(t, injected) {
		t.Errorf("deleting a client removed another client's Secret")
	}

	if err := k8sClient.Delete(ctx, pc); err != nil {
		t.Fatal(err)
	}
	waitClientGone(t, pc.Name)
	// No namespace controller runs here, so the namespace stays Terminating.
	ns := getNamespace(t, pc.Name)
	if ns.DeletionTimestamp == nil {
		t.Errorf("namespace %s not deleted with namespacePolicy Delete", pc.Name)
	}
	assertNoNamespaceFinalizer(t, ns)
	if secretExists(t, injected) {
		t.Errorf("injected Secret not removed before the namespace")
	}
	waitClientEvent(t, pc.Name, corev1.EventTypeNormal, EventNamespaceDeleted)
}

// TestPublicClientEditorCannotDeleteTenantData: an editor switches namespacePolicy from
// Retain to Delete just before deleting the client, to have jeton delete the tenant's
// namespace and its data. jeton records when it saw Delete, warns, and on the deletion
// keeps the namespace: Delete takes effect only when it was set at the namespace's creation
// or isolation.NamespaceDeleteGrace before.
func TestPublicClientEditorCannotDeleteTenantData(t *testing.T) {
	ctx := context.Background()
	pc := newPublicClient(t, "flip", nil)
	waitClientCondition(t, pc.Name, metav1.ConditionTrue, jetonv1alpha1.ReasonReady)
	injected := injectedSecret(t, pc.Name, pc.Name)

	updateClient(t, pc.Name, func(pc *jetonv1alpha1.PublicClient) {
		pc.Spec.NamespacePolicy = jetonv1alpha1.NamespacePolicyDelete
	})
	waitFor(t, pcTimeout, "namespaceDeleteSince recorded", func(ctx context.Context) error {
		got := &jetonv1alpha1.PublicClient{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Name: pc.Name}, got); err != nil {
			return err
		}
		if got.Status.NamespaceDeleteSince == nil {
			return fmt.Errorf("status.namespaceDeleteSince not set")
		}
		return nil
	})
	if note := waitClientEvent(t, pc.Name, corev1.EventTypeWarning, EventNamespacePolicyDelete); !strings.Contains(note, "once the policy has been Delete for 24h0m0s") {
		t.Errorf("NamespacePolicyDelete note %q does not say when it takes effect", note)
	}

	if err := k8sClient.Delete(ctx, pc); err != nil {
		t.Fatal(err)
	}
	waitClientGone(t, pc.Name)
	ns := getNamespace(t, pc.Name)
	if ns.DeletionTimestamp != nil {
		t.Fatalf("namespace %s deleted: namespacePolicy Delete set just before the client's deletion took effect", pc.Name)
	}
	note := waitClientEvent(t, pc.Name, corev1.EventTypeNormal, EventNamespaceRetained)
	if !strings.Contains(note, "takes effect only after 24h0m0s") {
		t.Errorf("NamespaceRetained note %q does not say why Delete was not honoured", note)
	}
	if secretExists(t, injected) {
		t.Errorf("the injected Secret survived its client's deletion")
	}
}
