package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/isolation"
)

// addFinalizer makes the deletion of pc wait for finalize.
func (r *PublicClientReconciler) addFinalizer(ctx context.Context, pc *jetonv1alpha1.PublicClient) error {
	if controllerutil.ContainsFinalizer(pc, jetonv1alpha1.FinalizerCleanup) {
		return nil
	}
	before := pc.DeepCopy()
	controllerutil.AddFinalizer(pc, jetonv1alpha1.FinalizerCleanup)
	if err := r.Patch(ctx, pc, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("adding finalizer %s: %w", jetonv1alpha1.FinalizerCleanup, err)
	}
	return nil
}

// finalize removes what jeton put in the client namespace, then the finalizer. It writes
// no status, so each event is told once what it tells is done.
//
// Only the namespace recorded in status (same UID) is touched: a reserved namespace, one
// owned elsewhere or one created again by someone else is left exactly as it is. There,
// jeton's Secrets and NetworkPolicy go, so credentials fail closed. With namespacePolicy
// Delete the namespace is deleted only if jeton created it; otherwise it is retained, and
// a namespace jeton created gets a retention proof so that re-creating the PublicClient
// re-adopts this very namespace (and no look-alike created later under its name).
func (r *PublicClientReconciler) finalize(ctx context.Context, pc *jetonv1alpha1.PublicClient) error {
	if !controllerutil.ContainsFinalizer(pc, jetonv1alpha1.FinalizerCleanup) {
		return nil
	}
	target := pc.TargetNamespace()
	ns, err := r.getNamespace(ctx, target)
	if err != nil {
		return fmt.Errorf("reading namespace %s: %w", target, err)
	}
	if ns != nil && r.recordedNamespace(pc, ns) {
		if err := r.releaseNamespace(ctx, pc, ns); err != nil {
			return err
		}
	}

	before := pc.DeepCopy()
	controllerutil.RemoveFinalizer(pc, jetonv1alpha1.FinalizerCleanup)
	if err := r.Patch(ctx, pc, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(err)
	}
	return nil
}

// recordedNamespace reports whether ns is the namespace jeton manages for pc, as its status
// records it (a status written before UIDs were recorded names it without one).
func (r *PublicClientReconciler) recordedNamespace(pc *jetonv1alpha1.PublicClient, ns *corev1.Namespace) bool {
	st := pc.Status
	if st.Namespace != ns.Name || ns.Labels[jetonv1alpha1.LabelClient] != pc.Name || r.Options.reservedBecause(ns.Name) != "" {
		return false
	}
	return st.NamespaceUID == "" || st.NamespaceUID == ns.UID
}

// releaseNamespace removes jeton's Secrets and NetworkPolicy from the client namespace, then
// deletes or retains the namespace.
func (r *PublicClientReconciler) releaseNamespace(ctx context.Context, pc *jetonv1alpha1.PublicClient, ns *corev1.Namespace) error {
	key, err := r.ownerKey.get(ctx)
	if err != nil {
		return err
	}
	if err := r.removeInjectedSecrets(ctx, pc, ns.Name, key); err != nil {
		return err
	}
	if err := r.deleteNetworkPolicy(ctx, r.APIReader, pc); err != nil {
		return fmt.Errorf("deleting NetworkPolicy %s/%s: %w", ns.Name, isolation.NetworkPolicyName, err)
	}
	if !ns.DeletionTimestamp.IsZero() {
		return nil
	}
	return r.deleteOrRetain(ctx, pc, ns, key)
}

// removeInjectedSecrets deletes the Secrets jeton injected for pc in namespace target.
func (r *PublicClientReconciler) removeInjectedSecrets(ctx context.Context, pc *jetonv1alpha1.PublicClient, target string, key []byte) error {
	// Read from the API server, not the cache: a Secret injected a moment ago must go too.
	var secrets corev1.SecretList
	if err := r.APIReader.List(ctx, &secrets, client.InNamespace(target), client.MatchingLabels{
		jetonv1alpha1.LabelManagedBy: jetonv1alpha1.ManagedByValue,
		jetonv1alpha1.LabelClient:    pc.Name,
	}); err != nil {
		return fmt.Errorf("listing the Secrets jeton injected in namespace %s: %w", target, err)
	}
	removed := 0
	for i := range secrets.Items {
		s := &secrets.Items[i]
		if !injection.WrittenByJeton(key, s) {
			continue // labelled as jeton's by someone else: not jeton's to delete
		}
		if err := client.IgnoreNotFound(r.Delete(ctx, s, client.Preconditions{UID: &s.UID})); err != nil {
			return fmt.Errorf("deleting Secret %s/%s: %w", target, s.Name, err)
		}
		removed++
	}
	if removed > 0 {
		r.Recorder.Eventf(pc, nil, corev1.EventTypeNormal, EventSecretsRemoved, "Delete",
			"Removed %d Secret(s) jeton injected in namespace %s", removed, target)
	}
	return nil
}

// deleteOrRetain deletes the client namespace ns when jeton created it and namespacePolicy
// is Delete; otherwise it keeps it, with a retention proof when jeton created it.
func (r *PublicClientReconciler) deleteOrRetain(ctx context.Context, pc *jetonv1alpha1.PublicClient, ns *corev1.Namespace, key []byte) error {
	target := ns.Name
	createdByJeton := pc.Status.NamespaceOrigin == jetonv1alpha1.NamespaceCreated && pc.Status.NamespaceUID == ns.UID
	deleteOK, notYet := isolation.DeleteAllowed(pc.Spec.NamespacePolicy, pc.Status.NamespaceDeleteSince, ns.CreationTimestamp.Time, time.Now())
	if deleteOK && createdByJeton {
		if err := client.IgnoreNotFound(r.Delete(ctx, ns, client.Preconditions{UID: &ns.UID})); err != nil {
			return fmt.Errorf("deleting namespace %s: %w", target, err)
		}
		r.Recorder.Eventf(pc, nil, corev1.EventTypeNormal, EventNamespaceDeleted, "Delete",
			"Deleted namespace %s (namespacePolicy Delete)", target)
		return nil
	}
	if !createdByJeton {
		why := "namespacePolicy Retain"
		if pc.Spec.NamespacePolicy == jetonv1alpha1.NamespacePolicyDelete {
			why = "jeton did not create it, so it never deletes it, whatever namespacePolicy says"
		}
		r.Recorder.Eventf(pc, nil, corev1.EventTypeNormal, EventNamespaceRetained, "Delete",
			"Kept namespace %s (%s); a re-created PublicClient needs spec.adoptNamespace to use it again", target, why)
		return nil
	}
	why := "namespacePolicy Retain"
	if pc.Spec.NamespacePolicy == jetonv1alpha1.NamespacePolicyDelete {
		why = notYet
	}
	proof := isolation.RetainedProof(key, target, pc.Name, ns.UID)
	if ns.Annotations[jetonv1alpha1.AnnotationOwnerProof] != proof {
		patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, jetonv1alpha1.AnnotationOwnerProof, proof)
		if err := client.IgnoreNotFound(r.Patch(ctx, ns, client.RawPatch(types.MergePatchType, patch))); err != nil {
			return fmt.Errorf("recording the retention proof on namespace %s: %w", target, err)
		}
	}
	r.Recorder.Eventf(pc, nil, corev1.EventTypeNormal, EventNamespaceRetained, "Delete",
		"Kept namespace %s (%s); re-creating the PublicClient adopts it again", target, why)
	return nil
}
