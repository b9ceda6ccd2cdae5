package attack

import (
	"context"
	"fmt"
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// lookalike is a Secret someone other than jeton created with jeton's labels, and what it
// must stay.
type lookalike struct {
	namespace, name string
	by              client.Client
	// labels and annotations; the annotations default to a made-up fingerprint.
	labels, annotations map[string]string
	what                string // what the look-alike is, for messages
	resourceVersion     string
}

// createLookalikes creates the look-alikes and records their resourceVersions.
func createLookalikes(t *testing.T, ls []*lookalike) {
	t.Helper()
	for _, l := range ls {
		ann := l.annotations
		if ann == nil {
			ann = map[string]string{jetonv1alpha1.AnnotationTokenFingerprint: "0123456789abcdef"}
		}
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: l.namespace, Name: l.name, Labels: maps.Clone(l.labels), Annotations: maps.Clone(ann)},
			Data:       map[string][]byte{"TOKEN": []byte("not a token: " + l.namespace), "keep": []byte("me")},
		}
		if err := l.by.Create(context.Background(), s); err != nil {
			t.Fatalf("creating look-alike Secret %s/%s (%s): %v", l.namespace, l.name, l.what, err)
		}
		l.resourceVersion = s.ResourceVersion
	}
}

// lookalikesUntouched checks that every look-alike still exists, never rewritten.
func lookalikesUntouched(t *testing.T, when string, ls []*lookalike) {
	t.Helper()
	for _, l := range ls {
		s := &corev1.Secret{}
		err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: l.namespace, Name: l.name}, s)
		switch {
		case apierrors.IsNotFound(err):
			t.Errorf("%s: look-alike Secret %s/%s (%s) was deleted: jeton deletes only the Secrets it wrote", when, l.namespace, l.name, l.what)
		case err != nil:
			t.Fatal(err)
		case s.ResourceVersion != l.resourceVersion:
			t.Errorf("%s: look-alike Secret %s/%s (%s) was rewritten", when, l.namespace, l.name, l.what)
		}
	}
}

func deleteLookalikes(t *testing.T, ls []*lookalike) {
	t.Helper()
	for _, l := range ls {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: l.namespace, Name: l.name}}
		if err := env.Client.Delete(context.Background(), s); err != nil && !apierrors.IsNotFound(err) {
			t.Error(fmt.Errorf("deleting look-alike Secret %s/%s: %w", l.namespace, l.name, err))
		}
	}
}

// copiedProof returns the labels and annotations of a real injected Secret (its owner
// proof among them), as whoever can read that Secret can copy them, and fails the test
// when jeton wrote no owner proof there.
func copiedProof(t *testing.T, real *corev1.Secret) (labels, annotations map[string]string) {
	t.Helper()
	if real.Annotations[jetonv1alpha1.AnnotationOwnerProof] == "" {
		t.Fatalf("jeton wrote no %s annotation on Secret %s/%s, which it injected", jetonv1alpha1.AnnotationOwnerProof, real.Namespace, real.Name)
	}
	return maps.Clone(real.Labels), maps.Clone(real.Annotations)
}

// Finding 9. Secrets forged with the labels of client A's Habilitation (managed-by, the
// Habilitation, its namespace, the client) outside A's namespace: in a namespace that is not
// a client's, in another client's namespace (written by that client's tenant), in the
// credentials namespace, in kube-system, in the operator's namespace. And Secrets carrying
// the labels and owner proof copied from A's real injected Secret, under another name or
// in another namespace: in A's own namespace (written by A's tenant, who can read the real
// one), in another client's, in a plain namespace, and under the real one's very name in a
// plain namespace. Deleting A's Habilitation, then A, removes A's real injected Secret and
// none of them.
func TestCleanupReach(t *testing.T) {
	ctx := context.Background()
	sfx := suffix()
	clientA, clientC := "reach-a-"+sfx, "reach-c-"+sfx
	readyClient(t, clientA)
	readyClient(t, clientC)
	tokA, _ := mint(t, jetonv1alpha1.APIEntreprise)
	hA := injectedHabilitation(t, "reach-a-"+sfx, clientA, tokA, jetonv1alpha1.APIEntreprise)
	realA := waitInjected(t, clientA, hA.Name, tokA)
	tokC, _ := mint(t, jetonv1alpha1.APIEntreprise)
	hC := injectedHabilitation(t, "reach-c-"+sfx, clientC, tokC, jetonv1alpha1.APIEntreprise)
	injectedC := waitInjected(t, clientC, hC.Name, tokC)
	plain, plain2 := "reach-plain-"+sfx, "reach-plain2-"+sfx
	for _, ns := range []string{plain, plain2} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	tenantA := tenantClient(t, clientA)
	tenantC := tenantClient(t, clientC)

	labelsOfA := map[string]string{
		jetonv1alpha1.LabelManagedBy:             jetonv1alpha1.ManagedByValue,
		jetonv1alpha1.LabelHabilitation:          hA.Name,
		jetonv1alpha1.LabelHabilitationNamespace: credNS,
		jetonv1alpha1.LabelClient:                clientA,
	}
	// A's tenant reads A's real injected Secret: its labels and owner proof.
	fromTenant := &corev1.Secret{}
	if err := tenantA.Get(ctx, client.ObjectKeyFromObject(realA), fromTenant); err != nil {
		t.Fatal(err)
	}
	copiedLabels, copiedAnnotations := copiedProof(t, fromTenant)
	const labelled, copied = "labelled for A's Habilitation", "labels and owner proof copied from A's injected Secret"
	forged := []*lookalike{
		{namespace: plain, name: hA.Name, by: env.Client, labels: labelsOfA, what: labelled + ", the name of A's injected Secret"},
		{namespace: plain, name: "forged-" + sfx, by: env.Client, labels: labelsOfA, what: labelled},
		{namespace: clientC, name: "forged-" + sfx, by: tenantC, labels: labelsOfA, what: labelled + ", by the tenant of another client"},
		{namespace: credNS, name: "forged-" + sfx, by: env.Client, labels: labelsOfA, what: labelled + ", in the credentials namespace"},
		{namespace: "kube-system", name: "forged-" + sfx, by: env.Client, labels: labelsOfA, what: labelled},
		{namespace: operatorNS, name: "forged-" + sfx, by: env.Client, labels: labelsOfA, what: labelled},
		{namespace: clientA, name: "copied-" + sfx, by: tenantA, labels: copiedLabels, annotations: copiedAnnotations, what: copied + ", next to it, by A's tenant"},
		{namespace: clientC, name: "copied-" + sfx, by: tenantC, labels: copiedLabels, annotations: copiedAnnotations, what: copied + ", by the tenant of another client"},
		{namespace: plain, name: "copied-" + sfx, by: env.Client, labels: copiedLabels, annotations: copiedAnnotations, what: copied},
		{namespace: plain2, name: hA.Name, by: env.Client, labels: copiedLabels, annotations: copiedAnnotations, what: copied + ", under its very name"},
	}
	createLookalikes(t, forged)

	// The forged Secrets came through jeton's watches (they are labelled managed-by=jeton)
	// and were mapped to A's Habilitation; nothing was touched meanwhile.
	operatorHasSeen(t, hA, tokA)
	habilitationsQuiet(t)
	lookalikesUntouched(t, "after they were created", forged)

	disallow(tokA, clientA+"/"+hA.Name)
	deleteAndWait(t, hA)
	waitSecretGone(t, clientA, hA.Name)
	habilitationsQuiet(t)
	lookalikesUntouched(t, "after Habilitation "+hA.Name+" was deleted", forged)

	deleteAndWait(t, &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: clientA}})
	habilitationsQuiet(t)
	lookalikesUntouched(t, "after PublicClient "+clientA+" was deleted", forged)

	// Client C, whose namespace held some of them, is still served as before.
	clientStillServed(t, hC, tokC, injectedC)

	deleteLookalikes(t, forged)
	checkGlobal(t)
}

// A tenant of client C labels a Secret of its own namespace (one jeton never wrote) as if
// jeton had injected it there for client A's Habilitation, naming its own client C; and
// copies the labels and owner proof of C's real injected Secret onto another Secret of its
// namespace. jeton deletes only what it wrote: neither goes when A's Habilitation, C's
// Habilitation, A, or C (whose namespace jeton then releases) is deleted.
func TestCleanupReachOwnClientLabel(t *testing.T) {
	ctx := context.Background()
	sfx := suffix()
	clientA, clientC := "reach2-a-"+sfx, "reach2-c-"+sfx
	readyClient(t, clientA)
	pcC := newClient(t, clientC, func(pc *jetonv1alpha1.PublicClient) {
		// Explicit (it is the default): C's namespace outlives C, so what jeton leaves in it
		// when it releases it can be checked.
		pc.Spec.NamespacePolicy = jetonv1alpha1.NamespacePolicyRetain
	})
	waitReady(t, pcC, metav1.ConditionTrue, jetonv1alpha1.ReasonReady, false)
	tokA, _ := mint(t, jetonv1alpha1.APIEntreprise)
	hA := injectedHabilitation(t, "reach2-a-"+sfx, clientA, tokA, jetonv1alpha1.APIEntreprise)
	tokC, _ := mint(t, jetonv1alpha1.APIEntreprise)
	hC := injectedHabilitation(t, "reach2-c-"+sfx, clientC, tokC, jetonv1alpha1.APIEntreprise)
	tenantC := tenantClient(t, clientC)

	realC := &corev1.Secret{}
	if err := tenantC.Get(ctx, client.ObjectKey{Namespace: clientC, Name: hC.Name}, realC); err != nil {
		t.Fatal(err)
	}
	copiedLabels, copiedAnnotations := copiedProof(t, realC)
	forged := []*lookalike{
		{namespace: clientC, name: "database-password", by: tenantC, labels: map[string]string{
			jetonv1alpha1.LabelManagedBy:             jetonv1alpha1.ManagedByValue,
			jetonv1alpha1.LabelHabilitation:          hA.Name,
			jetonv1alpha1.LabelHabilitationNamespace: credNS,
			jetonv1alpha1.LabelClient:                clientC,
		}, annotations: map[string]string{}, what: "labelled for " + clientA + "'s Habilitation and client " + clientC},
		{namespace: clientC, name: "copied-" + sfx, by: tenantC, labels: copiedLabels, annotations: copiedAnnotations,
			what: "labels and owner proof copied from " + clientC + "'s injected Secret"},
	}
	createLookalikes(t, forged)
	operatorHasSeen(t, hA, tokA)
	habilitationsQuiet(t)
	lookalikesUntouched(t, "after they were created", forged)

	disallow(tokA, clientA+"/"+hA.Name)
	deleteAndWait(t, hA)
	waitSecretGone(t, clientA, hA.Name)
	habilitationsQuiet(t)
	lookalikesUntouched(t, "after client "+clientA+"'s Habilitation "+hA.Name+" was deleted", forged)

	deleteAndWait(t, &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: clientA}})
	habilitationsQuiet(t)
	lookalikesUntouched(t, "after PublicClient "+clientA+" was deleted", forged)

	disallow(tokC, clientC+"/"+hC.Name)
	deleteAndWait(t, hC)
	waitSecretGone(t, clientC, hC.Name) // the real one goes: the check can fail
	habilitationsQuiet(t)
	lookalikesUntouched(t, "after client "+clientC+"'s Habilitation "+hC.Name+" was deleted", forged)

	// C's namespace is released (jeton removes the Secrets it injected there) and retained.
	deleteAndWait(t, pcC)
	habilitationsQuiet(t)
	waitFor(t, waitTimeout, "namespace "+clientC+" released", func(ctx context.Context) error {
		reasons, _, err := eventReasons(ctx, "PublicClient", "", clientC)
		if err != nil {
			return err
		}
		for _, r := range reasons {
			if r == "NamespaceRetained" {
				return nil
			}
		}
		return fmt.Errorf("events %v", reasons)
	})
	lookalikesUntouched(t, "after PublicClient "+clientC+" was deleted", forged)

	deleteLookalikes(t, forged)
	checkGlobal(t)
}
