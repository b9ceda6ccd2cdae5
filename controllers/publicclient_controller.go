package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/isolation"
	"github.com/jeton-dev/jeton/internal/siret"
)

// Event reasons of the PublicClient reconciler (besides the condition reasons it reuses).
const (
	EventNamespaceCreated  = "NamespaceCreated"
	EventNamespaceAdopted  = "NamespaceAdopted"
	EventNamespaceDeleted  = "NamespaceDeleted"
	EventNamespaceRetained = "NamespaceRetained"
	EventSecretsRemoved    = "SecretsRemoved"
)

// IndexPublicClientNamespace indexes PublicClients by target namespace, so that the clients
// claiming one namespace are found without listing them all.
const IndexPublicClientNamespace = "publicclient.targetNamespace"

const (
	// publicClientFieldOwner is the server-side apply field manager for namespaces and policies.
	publicClientFieldOwner = client.FieldOwner(jetonv1alpha1.ManagedByValue)
	// ownedElsewhereRetry re-checks a namespace jeton may not touch. Labelling it triggers a
	// reconcile at once (labelled namespaces are watched); this catches what is not watched,
	// such as an unlabelled namespace being deleted.
	ownedElsewhereRetry = 2 * time.Minute
	// terminatingRetry re-checks a namespace being deleted, to recreate it once it is gone.
	terminatingRetry = 10 * time.Second
)

// PublicClientReconciler gives each PublicClient its isolated namespace: created (or
// adopted when it carries the client's label), labelled with Pod Security Admission levels,
// fenced by a NetworkPolicy; and on deletion removes what jeton injected there.
type PublicClientReconciler struct {
	client.Client
	// APIReader reads namespaces straight from the API server: the cache only holds client
	// namespaces, and ownership must be checked on namespaces that are not (yet) labelled.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	Options   Options

	ownerKey *ownerKey
	// writes tells a stale cache copy from a current one.
	writes *ownWrites
}

// +kubebuilder:rbac:groups=jeton.dev,resources=publicclients,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=jeton.dev,resources=publicclients/status,verbs=get;patch
// +kubebuilder:rbac:groups=jeton.dev,resources=publicclients/finalizers,verbs=update
// +kubebuilder:rbac:groups=jeton.dev,resources=habilitations,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=list;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one PublicClient's namespace in line with its spec, and writes its status
// once, only when it changed.
func (r *PublicClientReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pc := &jetonv1alpha1.PublicClient{}
	if err := r.Get(ctx, req.NamespacedName, pc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.writes.behind(pc) {
		return ctrl.Result{RequeueAfter: cacheCatchUp}, nil
	}
	if !pc.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, pc)
	}
	if !controllerutil.ContainsFinalizer(pc, jetonv1alpha1.FinalizerCleanup) {
		before := pc.DeepCopy()
		controllerutil.AddFinalizer(pc, jetonv1alpha1.FinalizerCleanup)
		if err := r.Patch(ctx, pc, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding finalizer %s: %w", jetonv1alpha1.FinalizerCleanup, err)
		}
	}

	base := pc.DeepCopy()
	result, err := r.reconcile(ctx, pc, base)
	pc.Status.ObservedGeneration = pc.Generation
	handleRequest(pc, &pc.Status.RequestStatus)
	if !equality.Semantic.DeepEqual(base.Status, pc.Status) {
		if perr := r.Status().Patch(ctx, pc, client.MergeFrom(base)); perr != nil {
			err = errors.Join(err, fmt.Errorf("updating status: %w", perr))
		}
	}
	return result, err
}

// reconcile sets pc.Status; base is the object as read, to detect transitions.
func (r *PublicClientReconciler) reconcile(ctx context.Context, pc, base *jetonv1alpha1.PublicClient) (ctrl.Result, error) {
	gen := pc.Generation
	conds := &pc.Status.Conditions
	target := pc.TargetNamespace()
	logger := log.FromContext(ctx).WithValues("namespace", target)

	count, err := r.countHabilitations(ctx, pc.Name)
	if err != nil {
		conditions.MarkNotReady(conds, gen, jetonv1alpha1.ReasonInternalError, "cannot count the client's Habilitations; retrying: "+err.Error())
		return ctrl.Result{}, err
	}
	pc.Status.Habilitations = count

	// The CRD rejects a bad SIRET with CEL; this catches CRDs installed without that rule.
	if err := siret.Validate(pc.Spec.SIRET); err != nil {
		msg := fmt.Sprintf("spec.siret: %v. Every API call for this client names this SIRET as recipient; fix spec.siret", err)
		if conditions.ReadyReason(base.Status.Conditions) != jetonv1alpha1.ReasonInvalidSIRET {
			r.Recorder.Eventf(pc, nil, corev1.EventTypeWarning, jetonv1alpha1.ReasonInvalidSIRET, "Validate", "%s", msg)
		}
		conditions.MarkStalled(conds, gen, jetonv1alpha1.ReasonInvalidSIRET, msg)
		return ctrl.Result{}, nil
	}

	if why := r.Options.reservedBecause(target); why != "" {
		msg := fmt.Sprintf("namespace %s is reserved (%s): jeton never makes it a client namespace, and nothing is written into it. Set spec.namespace to a namespace of this client's own (recreate this PublicClient, the field is immutable)", target, why)
		if conditions.ReadyReason(base.Status.Conditions) != jetonv1alpha1.ReasonNamespaceReserved {
			r.Recorder.Eventf(pc, nil, corev1.EventTypeWarning, jetonv1alpha1.ReasonNamespaceReserved, "ClaimNamespace", "%s", msg)
		}
		forgetNamespace(&pc.Status)
		conditions.MarkStalled(conds, gen, jetonv1alpha1.ReasonNamespaceReserved, msg)
		return ctrl.Result{}, nil
	}

	var claimants jetonv1alpha1.PublicClientList
	if err := r.List(ctx, &claimants, client.MatchingFields{IndexPublicClientNamespace: target}); err != nil {
		conditions.MarkNotReady(conds, gen, jetonv1alpha1.ReasonInternalError, "cannot list PublicClients; retrying: "+err.Error())
		return ctrl.Result{}, err
	}
	key, err := r.ownerKey.get(ctx)
	if err != nil {
		conditions.MarkNotReady(conds, gen, jetonv1alpha1.ReasonInternalError, err.Error())
		return ctrl.Result{}, err
	}
	ns, decision, created, err := r.claimNamespace(ctx, pc, claimants.Items, key)
	if err != nil {
		conditions.MarkNotReady(conds, gen, jetonv1alpha1.ReasonInternalError, fmt.Sprintf("cannot read or create namespace %s; retrying: %v", target, err))
		return ctrl.Result{}, err
	}
	logger.V(1).Info("namespace ownership", "verdict", decision.Verdict.String())
	switch decision.Verdict {
	case isolation.OwnedElsewhere:
		if conditions.ReadyReason(base.Status.Conditions) != jetonv1alpha1.ReasonNamespaceOwnedElsewhere {
			r.Recorder.Eventf(pc, nil, corev1.EventTypeWarning, jetonv1alpha1.ReasonNamespaceOwnedElsewhere, "ClaimNamespace", "%s", decision.Message)
		}
		forgetNamespace(&pc.Status)
		conditions.MarkStalled(conds, gen, jetonv1alpha1.ReasonNamespaceOwnedElsewhere, decision.Message)
		return ctrl.Result{RequeueAfter: ownedElsewhereRetry}, nil
	case isolation.Terminating:
		conditions.MarkNotReady(conds, gen, jetonv1alpha1.ReasonNamespaceTerminating, decision.Message)
		return ctrl.Result{RequeueAfter: terminatingRetry}, nil
	case isolation.Create:
		if !created {
			// Create found a namespace that was gone again when read: decide afresh.
			err := fmt.Errorf("namespace %s appeared and vanished while being claimed; retrying", target)
			conditions.MarkNotReady(conds, gen, jetonv1alpha1.ReasonInternalError, err.Error())
			return ctrl.Result{}, err
		}
		r.Recorder.Eventf(pc, nil, corev1.EventTypeNormal, EventNamespaceCreated, "CreateNamespace", "Created namespace %s", target)
	case isolation.Owned:
		// Server-side apply of jeton's labels only: labels others set are left alone. Only
		// when one differs: a no-op apply is still a write request, and a resync sends none.
		if !isolation.UpToDate(ns, pc.Name, pc.Spec.Isolation.PodSecurity) {
			ac := isolation.Namespace(target, pc.Name, pc.Spec.Isolation.PodSecurity)
			if err := r.Apply(ctx, ac, publicClientFieldOwner, client.ForceOwnership); err != nil {
				conditions.MarkNotReady(conds, gen, jetonv1alpha1.ReasonInternalError, fmt.Sprintf("cannot label namespace %s; retrying: %v", target, err))
				return ctrl.Result{}, fmt.Errorf("applying labels of namespace %s: %w", target, err)
			}
		}
		// Adopted: a namespace not younger than the client (timestamps have one-second
		// precision). One jeton created for it is younger: judging by status alone would
		// report a namespace created a moment ago as adopted whenever this pass reads a
		// cache that has not yet seen the previous pass's status write.
		if base.Status.NamespaceUID != ns.UID && !ns.CreationTimestamp.After(pc.CreationTimestamp.Time) {
			how := "which it requested (spec.adoptNamespace); jeton will never delete it"
			if decision.Origin == jetonv1alpha1.NamespaceCreated {
				how = "which jeton created for a PublicClient of this name and retained"
			}
			r.Recorder.Eventf(pc, nil, corev1.EventTypeNormal, EventNamespaceAdopted, "AdoptNamespace", "Adopted namespace %s, %s", target, how)
		}
	}
	pc.Status.Namespace, pc.Status.NamespaceUID, pc.Status.NamespaceOrigin = target, ns.UID, decision.Origin
	if created {
		pc.Status.NamespaceOrigin = jetonv1alpha1.NamespaceCreated
	}

	if err := r.syncNetworkPolicy(ctx, pc); err != nil {
		conditions.MarkNotReady(conds, gen, jetonv1alpha1.ReasonInternalError, fmt.Sprintf("cannot update NetworkPolicy %s/%s; retrying: %v", target, isolation.NetworkPolicyName, err))
		return ctrl.Result{}, err
	}

	policy := "no NetworkPolicy"
	if networkPolicyEnabled(pc) {
		policy = "NetworkPolicy " + isolation.NetworkPolicyName
	}
	conditions.MarkReady(conds, gen, jetonv1alpha1.ReasonReady, fmt.Sprintf("namespace %s is ready: Pod Security %s, %s",
		target, isolation.PodSecurity(pc.Spec.Isolation.PodSecurity), policy))
	return ctrl.Result{}, nil
}

func networkPolicyEnabled(pc *jetonv1alpha1.PublicClient) bool {
	// Empty means a CRD without defaults: isolation stays on.
	return pc.Spec.Isolation.NetworkPolicy != jetonv1alpha1.NetworkPolicyDisabled
}

// syncNetworkPolicy applies the isolation policy, or removes it when isolation is disabled.
func (r *PublicClientReconciler) syncNetworkPolicy(ctx context.Context, pc *jetonv1alpha1.PublicClient) error {
	target := pc.TargetNamespace()
	if networkPolicyEnabled(pc) {
		// The cache holds jeton's policies: apply only when the policy is missing or differs.
		np := &networkingv1.NetworkPolicy{}
		err := r.Get(ctx, client.ObjectKey{Namespace: target, Name: isolation.NetworkPolicyName}, np)
		if err == nil && isolation.NetworkPolicyUpToDate(np, pc.Name) {
			return nil
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		return r.Apply(ctx, isolation.NetworkPolicy(target, pc.Name), publicClientFieldOwner, client.ForceOwnership)
	}
	// The cache holds jeton's policies, so a disabled client costs no API call per reconcile.
	return r.deleteNetworkPolicy(ctx, r.Client, pc)
}

// deleteNetworkPolicy deletes the isolation policy of pc's namespace if it is pc's.
func (r *PublicClientReconciler) deleteNetworkPolicy(ctx context.Context, reader client.Reader, pc *jetonv1alpha1.PublicClient) error {
	np := &networkingv1.NetworkPolicy{}
	err := reader.Get(ctx, client.ObjectKey{Namespace: pc.TargetNamespace(), Name: isolation.NetworkPolicyName}, np)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if np.Labels[jetonv1alpha1.LabelClient] != pc.Name {
		return nil // another client's, or not jeton's at all
	}
	return client.IgnoreNotFound(r.Delete(ctx, np, client.Preconditions{UID: &np.UID}))
}

// claimNamespace decides who owns the client namespace, and creates it when it is free and
// this client is its first claimant. Create, not apply: should someone create the namespace
// meanwhile, it fails instead of labelling their namespace as ours. A client namespace is
// read from the cache; a namespace the cache does not hold is first tried with Create, so a
// new client costs one request, and read from the API server only if it exists.
func (r *PublicClientReconciler) claimNamespace(ctx context.Context, pc *jetonv1alpha1.PublicClient, claimants []jetonv1alpha1.PublicClient, key []byte) (*corev1.Namespace, isolation.Decision, bool, error) {
	target := pc.TargetNamespace()
	ns := &corev1.Namespace{}
	err := r.Get(ctx, client.ObjectKey{Name: target}, ns)
	if err == nil {
		return ns, isolation.Decide(pc, ns, claimants, key), false, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, isolation.Decision{}, false, err
	}
	if d := isolation.Decide(pc, nil, claimants, key); d.Verdict == isolation.Create {
		created := &corev1.Namespace{}
		created.Name = target
		created.Labels = isolation.NamespaceLabels(pc.Name, pc.Spec.Isolation.PodSecurity)
		// The proof that jeton created it for this client: should this pass's status write
		// be lost, the next pass still knows the namespace is this client's.
		created.Annotations = map[string]string{jetonv1alpha1.AnnotationOwnerProof: isolation.CreatedProof(key, target, pc.Name, pc.UID, pc.Status.NamespaceUID)}
		err := r.Create(ctx, created, publicClientFieldOwner)
		if err == nil {
			d.Origin = jetonv1alpha1.NamespaceCreated
			return created, d, true, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, isolation.Decision{}, false, fmt.Errorf("creating namespace %s: %w", target, err)
		}
	}
	existing, err := r.getNamespace(ctx, target)
	if err != nil {
		return nil, isolation.Decision{}, false, err
	}
	return existing, isolation.Decide(pc, existing, claimants, key), false, nil
}

// getNamespace reads a namespace; nil when it does not exist. Client namespaces come from
// the cache; any other namespace (the cache holds only those labelled jeton.dev/client) is
// read from the API server, so an unlabelled namespace is never mistaken for a free name.
func (r *PublicClientReconciler) getNamespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{}
	if err := r.Get(ctx, client.ObjectKey{Name: name}, ns); err == nil {
		return ns, nil
	}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return ns, nil
}

// countHabilitations counts the Habilitations of the credentials namespaces that name the client.
func (r *PublicClientReconciler) countHabilitations(ctx context.Context, clientName string) (int32, error) {
	var n int32
	for _, ns := range r.Options.CredentialsNamespaces {
		var list jetonv1alpha1.HabilitationList
		if err := r.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{IndexHabilitationClient: clientName}); err != nil {
			return 0, err
		}
		n += int32(len(list.Items))
	}
	return n, nil
}

// finalize removes what jeton put in the client namespace, then the finalizer.
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
	target := ns.Name
	// Read from the API server, not the cache: a Secret injected a moment ago must go too.
	var secrets corev1.SecretList
	if err := r.APIReader.List(ctx, &secrets, client.InNamespace(target), client.MatchingLabels{
		jetonv1alpha1.LabelManagedBy: jetonv1alpha1.ManagedByValue,
		jetonv1alpha1.LabelClient:    pc.Name,
	}); err != nil {
		return fmt.Errorf("listing the Secrets jeton injected in namespace %s: %w", target, err)
	}
	key, err := r.ownerKey.get(ctx)
	if err != nil {
		return err
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
	if err := r.deleteNetworkPolicy(ctx, r.APIReader, pc); err != nil {
		return fmt.Errorf("deleting NetworkPolicy %s/%s: %w", target, isolation.NetworkPolicyName, err)
	}
	if !ns.DeletionTimestamp.IsZero() {
		return nil
	}

	createdByJeton := pc.Status.NamespaceOrigin == jetonv1alpha1.NamespaceCreated && pc.Status.NamespaceUID == ns.UID
	if pc.Spec.NamespacePolicy == jetonv1alpha1.NamespacePolicyDelete && createdByJeton {
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
	proof := isolation.RetainedProof(key, target, pc.Name, ns.UID)
	if ns.Annotations[jetonv1alpha1.AnnotationOwnerProof] != proof {
		patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, jetonv1alpha1.AnnotationOwnerProof, proof)
		if err := client.IgnoreNotFound(r.Patch(ctx, ns, client.RawPatch(types.MergePatchType, patch))); err != nil {
			return fmt.Errorf("recording the retention proof on namespace %s: %w", target, err)
		}
	}
	r.Recorder.Eventf(pc, nil, corev1.EventTypeNormal, EventNamespaceRetained, "Delete",
		"Kept namespace %s (namespacePolicy Retain); re-creating the PublicClient adopts it again", target)
	return nil
}

// forgetNamespace stops status naming a namespace this client does not own (nothing is
// injected without it). The UID and origin of the namespace jeton last verified stay: a
// look-alike created under that name, even one carrying a copied owner proof, is then
// never taken for it (isolation.Decide honours a creation proof only while no UID was
// ever recorded).
func forgetNamespace(st *jetonv1alpha1.PublicClientStatus) {
	st.Namespace = ""
}

// SetupWithManager registers the reconciler and its watches.
func (r *PublicClientReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &jetonv1alpha1.PublicClient{}, IndexPublicClientNamespace,
		func(o client.Object) []string {
			return []string{o.(*jetonv1alpha1.PublicClient).TargetNamespace()}
		}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("publicclient").
		// Spec changes, deletion and on-demand requests; not our own status writes.
		For(&jetonv1alpha1.PublicClient{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, deletionRequested{}, requestedAtChanged{}))).
		// A deleted client may free a namespace another client was waiting for.
		Watches(&jetonv1alpha1.PublicClient{}, handler.EnqueueRequestsFromMapFunc(r.rivalClients),
			builder.WithPredicates(predicate.Funcs{
				CreateFunc:  func(event.CreateEvent) bool { return false },
				UpdateFunc:  func(event.UpdateEvent) bool { return false },
				GenericFunc: func(event.GenericEvent) bool { return false },
			})).
		// The cache holds only client namespaces: a label change, a hand deletion, or the end
		// of a deletion reaches the owner and the clients claiming the namespace.
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.namespaceClients)).
		// A hand-deleted or edited policy is restored.
		Watches(&networkingv1.NetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(clientLabelRequest)).
		// Habilitations are counted in status; their clientRef is immutable, so only
		// creations and deletions change the count.
		Watches(&jetonv1alpha1.Habilitation{}, handler.EnqueueRequestsFromMapFunc(habilitationClient),
			builder.WithPredicates(predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Options.MaxConcurrentReconciles}).
		Complete(r)
}

// deletionRequested passes the update that sets a deletionTimestamp, so the finalizer runs
// whether or not the API server bumped the generation.
type deletionRequested struct{ predicate.Funcs }

func (deletionRequested) Update(e event.UpdateEvent) bool {
	return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
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

// setupPublicClientReconciler wires the PublicClient reconciler to the manager's clients.
func setupPublicClientReconciler(ctx context.Context, mgr ctrl.Manager, opts Options, key *ownerKey, writes *ownWrites) error {
	r := &PublicClientReconciler{
		Client:    recordingClient{Client: mgr.GetClient(), writes: writes},
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("jeton"),
		Options:   opts,
		ownerKey:  key,
		writes:    writes,
	}
	return r.SetupWithManager(ctx, mgr)
}
