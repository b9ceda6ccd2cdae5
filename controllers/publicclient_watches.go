package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// setupPublicClientReconciler wires the PublicClient reconciler to the manager's clients.
func setupPublicClientReconciler(mgr ctrl.Manager, opts Options, key *ownerKey, writes *ownWrites) error {
	r := &PublicClientReconciler{
		Client:    recordingClient{Client: mgr.GetClient(), writes: writes},
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("jeton"),
		Options:   opts,
		ownerKey:  key,
		writes:    writes,
	}
	return r.SetupWithManager(mgr)
}

// SetupWithManager registers the controller and its watches.
func (r *PublicClientReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("publicclient").
		// Spec changes, deletion and on-demand requests; not our own status writes.
		For(&jetonv1alpha1.PublicClient{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, deletionRequested{}, requestedAtChanged{}))).
		// A deleted client may free a namespace another client was waiting for.
		Watches(&jetonv1alpha1.PublicClient{}, handler.EnqueueRequestsFromMapFunc(r.rivalClients),
			builder.WithPredicates(deletionsOnly)).
		// The cache holds only client namespaces: a label change, a hand deletion, or the end
		// of a deletion reaches the owner and the clients claiming the namespace.
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.namespaceClients)).
		// A hand-deleted or edited policy is restored.
		Watches(&networkingv1.NetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(clientLabelRequest)).
		// Habilitations are counted in status; their clientRef is immutable, so only
		// creations and deletions change the count.
		Watches(&jetonv1alpha1.Habilitation{}, handler.EnqueueRequestsFromMapFunc(habilitationClient),
			builder.WithPredicates(noUpdates)).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Options.MaxConcurrentReconciles}).
		Complete(r)
}

func clientLabelRequest(_ context.Context, o client.Object) []reconcile.Request {
	if name := o.GetLabels()[jetonv1alpha1.LabelClient]; name != "" {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: name}}}
	}
	return nil
}

func habilitationClient(_ context.Context, o client.Object) []reconcile.Request {
	h, ok := o.(*jetonv1alpha1.Habilitation)
	if !ok || h.Spec.ClientRef.Name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: h.Spec.ClientRef.Name}}}
}

// namespaceClients maps a namespace to the client named by its label and every client
// whose target it is.
func (r *PublicClientReconciler) namespaceClients(ctx context.Context, o client.Object) []reconcile.Request {
	reqs := clientLabelRequest(ctx, o)
	var list jetonv1alpha1.PublicClientList
	if err := r.List(ctx, &list, client.MatchingFields{IndexPublicClientNamespace: o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "listing the PublicClients of a namespace", "namespace", o.GetName())
		return reqs
	}
	for _, c := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKey{Name: c.Name}})
	}
	return reqs
}

// rivalClients maps a deleted client to the other clients claiming its namespace.
func (r *PublicClientReconciler) rivalClients(ctx context.Context, o client.Object) []reconcile.Request {
	pc, ok := o.(*jetonv1alpha1.PublicClient)
	if !ok {
		return nil
	}
	var list jetonv1alpha1.PublicClientList
	if err := r.List(ctx, &list, client.MatchingFields{IndexPublicClientNamespace: pc.TargetNamespace()}); err != nil {
		log.FromContext(ctx).Error(err, "listing the PublicClients of a namespace", "namespace", pc.TargetNamespace())
		return nil
	}
	var reqs []reconcile.Request
	for _, c := range list.Items {
		if c.Name != pc.Name {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKey{Name: c.Name}})
		}
	}
	return reqs
}
