package controllers

import (
	"context"
	"slices"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/injection"
)

// rotationComing reports whether a Habilitation of clientName that restarts workloads has
// a new token in its source Secret that it has not injected yet and that is not among
// rotated (Secret name → fingerprint): its request for a restart is on its way. Only those
// with an injected Secret count; one that fails closed injects nothing to restart for.
func (r *HabilitationReconciler) rotationComing(ctx context.Context, clientName string, rotated map[string]string) bool {
	habs := &jetonv1alpha1.HabilitationList{}
	if err := r.List(ctx, habs, client.MatchingFields{IndexHabilitationClient: clientName}); err != nil {
		return false
	}
	for i := range habs.Items {
		h := &habs.Items[i]
		if h.Status.TargetSecret == nil || (h.Spec.RestartWorkloads != nil && !*h.Spec.RestartWorkloads) {
			continue
		}
		if injection.EffectiveDelivery(h, r.Options.DefaultDelivery) == jetonv1alpha1.DeliveryGateway {
			continue // a new token changes nothing in the client namespace: no restart coming
		}
		fp := r.bindings.sourceFingerprint(ctx, h.Namespace, h.Spec.TokenSecretRef)
		if fp != "" && fp != h.Status.TokenFingerprint && fp != rotated[h.Status.TargetSecret.Name] {
			return true
		}
	}
	return false
}

// mapTokenHolder maps a Habilitation or TechnicalToken to the Habilitations holding the same
// token (by recorded and by current fingerprint), so a refused one is re-evaluated when the
// holder changes token or goes away.
func (r *HabilitationReconciler) mapTokenHolder(ctx context.Context, obj client.Object) []reconcile.Request {
	var fps []string
	// A Habilitation is reconciled for its own events; a TechnicalToken of the same
	// namespace and name is another object, whose holders all need a look.
	var except types.NamespacedName
	switch o := obj.(type) {
	case *jetonv1alpha1.Habilitation:
		fps = append(fps, o.Status.TokenFingerprint, r.bindings.sourceFingerprint(ctx, o.Namespace, o.Spec.TokenSecretRef))
		except = client.ObjectKeyFromObject(o)
	case *jetonv1alpha1.TechnicalToken:
		fps = append(fps, o.Status.TokenFingerprint, r.bindings.sourceFingerprint(ctx, o.Namespace, o.Spec.TokenSecretRef))
	}
	return r.holdersOf(ctx, except, fps...)
}

func (r *HabilitationReconciler) holdersOf(ctx context.Context, except types.NamespacedName, fps ...string) []reconcile.Request {
	var reqs []reconcile.Request
	for _, fp := range slices.Compact(slices.Sorted(slices.Values(fps))) {
		if fp == "" {
			continue
		}
		habs := &jetonv1alpha1.HabilitationList{}
		if err := r.List(ctx, habs, client.MatchingFields{IndexTokenFingerprint: fp}); err != nil {
			log.FromContext(ctx).Error(err, "listing Habilitations by token fingerprint")
			continue
		}
		for _, h := range habs.Items {
			if k := client.ObjectKeyFromObject(&h); k != except {
				reqs = append(reqs, reconcile.Request{NamespacedName: k})
			}
		}
	}
	return reqs
}

func (r *HabilitationReconciler) mapClient(ctx context.Context, obj client.Object) []reconcile.Request {
	return r.habilitationsOfClient(ctx, obj.GetName())
}

func (r *HabilitationReconciler) mapNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	if c := obj.GetLabels()[jetonv1alpha1.LabelClient]; c != "" {
		return r.habilitationsOfClient(ctx, c)
	}
	return nil
}

func (r *HabilitationReconciler) habilitationsOfClient(ctx context.Context, clientName string) []reconcile.Request {
	habs := &jetonv1alpha1.HabilitationList{}
	if err := r.List(ctx, habs, client.MatchingFields{IndexHabilitationClient: clientName}); err != nil {
		log.FromContext(ctx).Error(err, "listing Habilitations by client", "client", clientName)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(habs.Items))
	for _, h := range habs.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&h)})
	}
	return reqs
}

// mapSecret maps an injected Secret back to its Habilitation (drift), and a source Secret
// of a credentials namespace to the Habilitations reading it (rotation) and to those holding
// the same token as its readers (conflicts that may appear or go away).
func (r *HabilitationReconciler) mapSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	if r.Options.isOwnerKey(obj.GetNamespace(), obj.GetName()) {
		// A new owner-proof key (the old one deleted or replaced): every injected Secret is
		// signed again with it, so that jeton still recognises its own when it removes them.
		return r.allHabilitations(ctx)
	}
	if r.Options.isGatewayKey(obj.GetNamespace(), obj.GetName()) {
		// A new gateway credential key (a leaked one replaced, or deleted and created
		// again): every credential delivered is minted again under it.
		return r.allHabilitations(ctx)
	}
	var reqs []reconcile.Request
	l := obj.GetLabels()
	if l[jetonv1alpha1.LabelManagedBy] == jetonv1alpha1.ManagedByValue && l[jetonv1alpha1.LabelHabilitation] != "" {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{
			Namespace: l[jetonv1alpha1.LabelHabilitationNamespace], Name: l[jetonv1alpha1.LabelHabilitation]}})
	}
	if !r.Options.IsCredentialsNamespace(obj.GetNamespace()) {
		return reqs
	}
	none := types.NamespacedName{}
	habs := &jetonv1alpha1.HabilitationList{}
	if err := r.List(ctx, habs, client.InNamespace(obj.GetNamespace()), client.MatchingFields{IndexTokenSecret: obj.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "listing Habilitations by token Secret")
		return reqs
	}
	for i := range habs.Items {
		h := &habs.Items[i]
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(h)})
		reqs = append(reqs, r.holdersOf(ctx, none, h.Status.TokenFingerprint, r.bindings.sourceFingerprint(ctx, h.Namespace, h.Spec.TokenSecretRef))...)
	}
	tts := &jetonv1alpha1.TechnicalTokenList{}
	if err := r.List(ctx, tts, client.InNamespace(obj.GetNamespace()), client.MatchingFields{IndexTokenSecret: obj.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "listing TechnicalTokens by token Secret")
		return reqs
	}
	for i := range tts.Items {
		t := &tts.Items[i]
		reqs = append(reqs, r.holdersOf(ctx, none, t.Status.TokenFingerprint, r.bindings.sourceFingerprint(ctx, t.Namespace, t.Spec.TokenSecretRef))...)
	}
	return reqs
}

func (r *HabilitationReconciler) allHabilitations(ctx context.Context) []reconcile.Request {
	var reqs []reconcile.Request
	for _, ns := range r.Options.CredentialsNamespaces {
		habs := &jetonv1alpha1.HabilitationList{}
		if err := r.List(ctx, habs, client.InNamespace(ns)); err != nil {
			log.FromContext(ctx).Error(err, "listing Habilitations", "namespace", ns)
			continue
		}
		for i := range habs.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&habs.Items[i])})
		}
	}
	return reqs
}
