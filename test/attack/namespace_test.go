package attack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// nsSnapshot is what jeton must leave alone on a namespace it may not touch.
type nsSnapshot struct {
	exists          bool
	uid             string
	resourceVersion string
	labels          map[string]string
	annotations     map[string]string
}

func snapshotNamespace(t *testing.T, name string) nsSnapshot {
	t.Helper()
	ns := &corev1.Namespace{}
	err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, ns)
	if apierrors.IsNotFound(err) {
		return nsSnapshot{}
	}
	if err != nil {
		t.Fatal(err)
	}
	return nsSnapshot{exists: true, uid: string(ns.UID), resourceVersion: ns.ResourceVersion, labels: ns.Labels, annotations: ns.Annotations}
}

// untouched checks that namespace name is as it was: same object, same labels and
// annotations, not being deleted (or still absent); no NetworkPolicy, and no Secret jeton
// manages, in it.
func untouched(t *testing.T, name string, before nsSnapshot) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{}
	err := env.Client.Get(ctx, client.ObjectKey{Name: name}, ns)
	switch {
	case !before.exists && apierrors.IsNotFound(err):
		return
	case !before.exists && err == nil:
		t.Errorf("namespace %s was created (labels %v)", name, ns.Labels)
		return
	case err != nil:
		t.Errorf("namespace %s: %v", name, err)
		return
	}
	if string(ns.UID) != before.uid {
		t.Errorf("namespace %s was replaced (UID %s, was %s)", name, ns.UID, before.uid)
	}
	if !ns.DeletionTimestamp.IsZero() || ns.Status.Phase == corev1.NamespaceTerminating {
		t.Errorf("namespace %s is being deleted", name)
	}
	if !maps.Equal(ns.Labels, before.labels) || !maps.Equal(ns.Annotations, before.annotations) {
		t.Errorf("namespace %s changed: labels %v annotations %v, were %v and %v", name, ns.Labels, ns.Annotations, before.labels, before.annotations)
	}
	if ns.ResourceVersion != before.resourceVersion {
		t.Errorf("namespace %s was written (resourceVersion %s, was %s)", name, ns.ResourceVersion, before.resourceVersion)
	}
	nps := &networkingv1.NetworkPolicyList{}
	if err := env.Client.List(ctx, nps, client.InNamespace(name)); err != nil {
		t.Fatal(err)
	}
	for _, np := range nps.Items {
		t.Errorf("NetworkPolicy %s/%s (labels %v) in a namespace jeton may not touch", name, np.Name, np.Labels)
	}
	secrets := &corev1.SecretList{}
	if err := env.Client.List(ctx, secrets, client.InNamespace(name), client.MatchingLabels{jetonv1alpha1.LabelManagedBy: jetonv1alpha1.ManagedByValue}); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		t.Errorf("Secret %s/%s labelled managed-by jeton in a namespace jeton may not touch", name, s.Name)
	}
}

// Finding 3. A jeton editor claims a reserved namespace as a client namespace, asking for
// adoption and deletion: the credentials namespace, the operator's, kube-*, default, one of
// --reserved-namespaces, and a client whose default namespace would be kube-*. Refused with
// NamespaceReserved; nothing is written there, not even labels; deleting the PublicClients
// deletes nothing.
func TestReservedNamespaces(t *testing.T) {
	ctx := context.Background()
	sfx := suffix()
	cases := []struct{ client, namespace string }{
		{"rsv-cred-" + sfx, credNS},
		{"rsv-operator-" + sfx, operatorNS},
		{"rsv-kube-system-" + sfx, "kube-system"},
		{"rsv-kube-public-" + sfx, "kube-public"},
		{"rsv-default-" + sfx, "default"},
		{"rsv-flag-" + sfx, reservedNS},
		{"kube-rsv-" + sfx, ""}, // its namespace would be its name, kube-rsv-…
	}
	snaps := map[string]nsSnapshot{}
	var pcs []*jetonv1alpha1.PublicClient
	for _, c := range cases {
		target := c.namespace
		if target == "" {
			target = c.client
		}
		snaps[target] = snapshotNamespace(t, target)
		pc := newClient(t, c.client, func(pc *jetonv1alpha1.PublicClient) {
			pc.Spec.Namespace = c.namespace
			pc.Spec.AdoptNamespace = true
			pc.Spec.NamespacePolicy = jetonv1alpha1.NamespacePolicyDelete
		})
		pcs = append(pcs, pc)
	}
	// A token for the client claiming kube-system: it must land nowhere.
	tok, _ := mint(t, jetonv1alpha1.APIEntreprise)
	h := newHabilitation(t, "rsv-kube-system-"+sfx, "rsv-kube-system-"+sfx, tok, habOptions{})

	for _, pc := range pcs {
		target := pc.TargetNamespace()
		t.Run(target, func(t *testing.T) {
			got := waitReady(t, pc, metav1.ConditionFalse, jetonv1alpha1.ReasonNamespaceReserved, true).(*jetonv1alpha1.PublicClient)
			if got.Status.Namespace != "" || got.Status.NamespaceUID != "" || got.Status.NamespaceOrigin != "" {
				t.Errorf("PublicClient %s records namespace %q (UID %q, origin %q), want none", pc.Name, got.Status.Namespace, got.Status.NamespaceUID, got.Status.NamespaceOrigin)
			}
			waitFor(t, waitTimeout, "a NamespaceReserved Warning event", func(ctx context.Context) error {
				reasons, _, err := eventReasons(ctx, "PublicClient", "", pc.Name)
				if err != nil {
					return err
				}
				for _, r := range reasons {
					if r == jetonv1alpha1.ReasonNamespaceReserved {
						return nil
					}
				}
				return fmt.Errorf("events %v", reasons)
			})
			untouched(t, target, snaps[target])
		})
	}
	waitReady(t, h, metav1.ConditionFalse, jetonv1alpha1.ReasonClientNotReady, false)
	neverInjected(t, h)
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: h.Name}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("Secret kube-system/%s: %v, want NotFound", h.Name, err)
	}

	// Deleting the clients (namespacePolicy Delete, adoptNamespace true) deletes nothing.
	for _, pc := range pcs {
		deleteAndWait(t, pc)
	}
	waitReady(t, h, metav1.ConditionFalse, jetonv1alpha1.ReasonClientNotFound, false)
	for target, snap := range snaps {
		untouched(t, target, snap)
	}
	deleteAndWait(t, h)
	checkGlobal(t)
}

// Finding 4. Someone who can create namespaces pre-creates a future client's namespace,
// labelled jeton.dev/client=<client>, hoping jeton adopts it and injects the client's tokens
// where they can read them; or forges jeton's owner proof on it (random, or copied from a
// namespace jeton created or retained for another client). Refused with
// NamespaceOwnedElsewhere: no Secret, no NetworkPolicy, no label written, and deleting the
// client (namespacePolicy Delete) leaves the namespace.
func TestPrecreatedNamespace(t *testing.T) {
	ctx := context.Background()
	sfx := suffix()

	// Real proofs to copy: one jeton wrote when it created a client's namespace, one it
	// wrote when it retained the namespace of a deleted client.
	donor := readyClient(t, "donor-"+sfx)
	createdProof := proofOn(t, donor.Name)
	if createdProof == "" {
		t.Fatalf("jeton wrote no %s annotation on namespace %s, which it created", jetonv1alpha1.AnnotationOwnerProof, donor.Name)
	}
	retained := readyClient(t, "donor-retained-"+sfx)
	deleteAndWait(t, retained)
	var retainedProof string
	waitFor(t, waitTimeout, "the retention proof on the retained namespace", func(ctx context.Context) error {
		retainedProof = proofOn(t, retained.Name)
		if retainedProof == "" || retainedProof == createdProof {
			return errors.New("no retention proof yet")
		}
		return nil
	})

	random := make([]byte, 32)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		labelled bool
		proof    string
	}{
		{name: "labelled", labelled: true},
		{name: "unlabelled"},
		{name: "random-proof", labelled: true, proof: hex.EncodeToString(random)},
		{name: "copied-created-proof", labelled: true, proof: createdProof},
		{name: "copied-retained-proof", labelled: true, proof: retainedProof},
	}
	type victim struct {
		pc   *jetonv1alpha1.PublicClient
		h    *jetonv1alpha1.Habilitation
		snap nsSnapshot
	}
	var victims []victim
	for _, c := range cases {
		name := "future-" + c.name + "-" + sfx
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if c.labelled {
			ns.Labels = map[string]string{jetonv1alpha1.LabelClient: name}
		}
		if c.proof != "" {
			ns.Annotations = map[string]string{jetonv1alpha1.AnnotationOwnerProof: c.proof}
		}
		if err := env.Client.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
		snap := snapshotNamespace(t, name)
		pc := newClient(t, name, func(pc *jetonv1alpha1.PublicClient) {
			pc.Spec.NamespacePolicy = jetonv1alpha1.NamespacePolicyDelete
		})
		tok, _ := mint(t, jetonv1alpha1.APIEntreprise)
		h := newHabilitation(t, name, name, tok, habOptions{})
		victims = append(victims, victim{pc, h, snap})
	}
	for _, v := range victims {
		t.Run(v.pc.Name, func(t *testing.T) {
			got := waitReady(t, v.pc, metav1.ConditionFalse, jetonv1alpha1.ReasonNamespaceOwnedElsewhere, true).(*jetonv1alpha1.PublicClient)
			if got.Status.Namespace != "" || got.Status.NamespaceUID != "" {
				t.Errorf("PublicClient %s records namespace %q (UID %q), want none", v.pc.Name, got.Status.Namespace, got.Status.NamespaceUID)
			}
			waitReady(t, v.h, metav1.ConditionFalse, jetonv1alpha1.ReasonClientNotReady, false)
			neverInjected(t, v.h)
			names, err := secretNames(ctx, v.pc.Name)
			if err != nil {
				t.Fatal(err)
			}
			if len(names) > 0 {
				t.Errorf("Secrets %v in pre-created namespace %s", names, v.pc.Name)
			}
			untouched(t, v.pc.Name, v.snap)
		})
	}

	// namespacePolicy Delete: deleting the clients leaves the namespaces they never owned.
	for _, v := range victims {
		deleteAndWait(t, v.pc)
	}
	for _, v := range victims {
		waitReady(t, v.h, metav1.ConditionFalse, jetonv1alpha1.ReasonClientNotFound, false)
		untouched(t, v.pc.Name, v.snap)
		deleteAndWait(t, v.h)
	}
	// The donors were not disturbed either.
	waitReady(t, donor, metav1.ConditionTrue, jetonv1alpha1.ReasonReady, false)
	if got := proofOn(t, donor.Name); got != createdProof {
		t.Errorf("the owner proof of namespace %s changed", donor.Name)
	}
	checkGlobal(t)
}

func proofOn(t *testing.T, namespace string) string {
	t.Helper()
	ns := &corev1.Namespace{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: namespace}, ns); err != nil {
		t.Fatal(err)
	}
	return ns.Annotations[jetonv1alpha1.AnnotationOwnerProof]
}

// Finding 3, another client's namespace. A jeton editor creates PublicClient B claiming
// client A's namespace (spec.namespace, adoptNamespace, namespacePolicy Delete) so that B's
// tokens land next to A's workloads, or A's namespace is relabelled for B, or deleted with
// B. Refused (the older claimant keeps it): nothing of B is written there, A's labels stay,
// A keeps being served, and deleting B deletes nothing.
func TestNamespaceOfAnotherClient(t *testing.T) {
	ctx := context.Background()
	sfx := suffix()
	clientA, clientB := "owner-a-"+sfx, "squatter-b-"+sfx
	readyClient(t, clientA)
	tokA, _ := mint(t, jetonv1alpha1.APIEntreprise)
	hA := injectedHabilitation(t, "owner-a-"+sfx, clientA, tokA, jetonv1alpha1.APIEntreprise)
	injectedA := waitInjected(t, clientA, hA.Name, tokA)
	snap := snapshotNamespace(t, clientA)
	npBefore := &networkingv1.NetworkPolicy{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: clientA, Name: "jeton-isolation"}, npBefore); err != nil {
		t.Fatalf("client %s's NetworkPolicy: %v", clientA, err)
	}

	pcB := newClient(t, clientB, func(pc *jetonv1alpha1.PublicClient) {
		pc.Spec.Namespace = clientA
		pc.Spec.AdoptNamespace = true
		pc.Spec.NamespacePolicy = jetonv1alpha1.NamespacePolicyDelete
		// The weakest level the operator's floor (baseline) lets an editor ask for:
		// privileged is refused before any claim (TestEditorCannotMakeNamespacePrivileged).
		pc.Spec.Isolation.PodSecurity = jetonv1alpha1.PodSecurityBaseline
	})
	tokB, _ := mint(t, jetonv1alpha1.APIEntreprise)
	hB := newHabilitation(t, "squatter-b-"+sfx, clientB, tokB, habOptions{})
	got := waitReady(t, pcB, metav1.ConditionFalse, jetonv1alpha1.ReasonNamespaceOwnedElsewhere, true).(*jetonv1alpha1.PublicClient)
	if got.Status.Namespace != "" || got.Status.NamespaceUID != "" {
		t.Errorf("PublicClient %s records namespace %q (UID %q), want none", clientB, got.Status.Namespace, got.Status.NamespaceUID)
	}
	waitReady(t, hB, metav1.ConditionFalse, jetonv1alpha1.ReasonClientNotReady, false)
	neverInjected(t, hB)
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: clientA, Name: hB.Name}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("Secret %s/%s of client %s in client %s's namespace: %v, want NotFound", clientA, hB.Name, clientB, clientA, err)
	}
	assertSameNamespace := func(when string) {
		t.Helper()
		ns := &corev1.Namespace{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: clientA}, ns); err != nil {
			t.Fatal(err)
		}
		if !ns.DeletionTimestamp.IsZero() || string(ns.UID) != snap.uid {
			t.Errorf("%s: client %s's namespace is being deleted or was replaced", when, clientA)
		}
		if !maps.Equal(ns.Labels, snap.labels) || !maps.Equal(ns.Annotations, snap.annotations) {
			t.Errorf("%s: client %s's namespace changed: labels %v annotations %v, were %v and %v", when, clientA, ns.Labels, ns.Annotations, snap.labels, snap.annotations)
		}
		np := &networkingv1.NetworkPolicy{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(npBefore), np); err != nil {
			t.Errorf("%s: client %s's NetworkPolicy: %v", when, clientA, err)
		} else if np.ResourceVersion != npBefore.ResourceVersion {
			t.Errorf("%s: client %s's NetworkPolicy was rewritten (labels %v)", when, clientA, np.Labels)
		}
	}
	assertSameNamespace("after client " + clientB + " claimed it")
	clientStillServed(t, hA, tokA, injectedA)

	deleteAndWait(t, pcB)
	waitReady(t, hB, metav1.ConditionFalse, jetonv1alpha1.ReasonClientNotFound, false)
	assertSameNamespace("after client " + clientB + " was deleted")
	clientStillServed(t, hA, tokA, injectedA)
	waitReady(t, &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: clientA}}, metav1.ConditionTrue, jetonv1alpha1.ReasonReady, false)
	deleteAndWait(t, hB)
	checkGlobal(t)
}
