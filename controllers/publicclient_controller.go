package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/isolation"
)

// Event reasons of the PublicClient reconciler (besides the condition reasons it reuses).
const (
	EventNamespaceCreated  = "NamespaceCreated"
	EventNamespaceAdopted  = "NamespaceAdopted"
	EventNamespaceDeleted  = "NamespaceDeleted"
	EventNamespaceRetained = "NamespaceRetained"
	EventSecretsRemoved    = "SecretsRemoved"
	// EventNamespacePolicyDelete warns that namespacePolicy was switched to Delete on a
	// namespace that exists: the vendor's admins may revert it within the grace period.
	EventNamespacePolicyDelete = "NamespacePolicyDelete"
)

// publicClientFieldOwner is the server-side apply field manager for namespaces and policies.
const publicClientFieldOwner = client.FieldOwner(jetonv1alpha1.ManagedByValue)

// PublicClientReconciler gives each PublicClient its isolated namespace: created (or
// adopted when it carries the client's label), labelled with Pod Security Admission levels,
// fenced by a NetworkPolicy; and on deletion removes what jeton injected there.
//
// A pass gathers what it needs, judges it with the pure checks of isolation.Judge, acts on
// the judgement, and hands the outcome to finish, which writes status once and only then
// tells the pass's events.
type PublicClientReconciler struct {
	client.Client
	// APIReader reads namespaces straight from the API server: the cache only holds client
	// namespaces, and ownership must be checked on namespaces that are not (yet) labelled.
	APIReader client.Reader
	Recorder  events.EventRecorder
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

// Reconcile brings one PublicClient's namespace in line with its spec, or releases it once
// the client is deleted.
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
	if err := r.addFinalizer(ctx, pc); err != nil {
		return ctrl.Result{}, err
	}
	orig := pc.DeepCopy()
	return finish(ctx, r.Client, r.Recorder, pc, orig, r.pass(ctx, pc, orig))
}

// pass is one pass over a live client, read as orig: it counts the client's Habilitations,
// judges the spec, claims the namespace the spec allows, judges the claim and acts on it.
// Claiming reads the namespace and creates it when it is free (see claimNamespace): the one
// write made before the last judgement. pass fills the client's own part of status; finish
// derives the rest from the outcome.
func (r *PublicClientReconciler) pass(ctx context.Context, pc, orig *jetonv1alpha1.PublicClient) outcome {
	count, err := r.countHabilitations(ctx, pc.Name)
	if err != nil {
		return failed("counting the client's Habilitations", err)
	}
	pc.Status.Habilitations = count

	facts := isolation.Facts{Client: pc, Reserved: r.Options.reservedBecause(pc.TargetNamespace()), PodSecurityFloor: r.Options.PodSecurityFloor}
	judgement := isolation.Judge(facts)
	var claim namespaceClaim
	if judgement.Claim {
		// Only a namespace the spec allows is read, let alone created.
		if claim, err = r.claim(ctx, pc); err != nil {
			return failed("claiming namespace "+pc.TargetNamespace(), err)
		}
		facts.Claim, facts.Created = &claim.decision, claim.created
		judgement = isolation.Judge(facts)
	}
	return r.act(ctx, pc, orig, claim, judgement)
}

// namespaceClaim is the client's target namespace as claimNamespace found or created it.
type namespaceClaim struct {
	// ns is the namespace; nil when it does not exist.
	ns       *corev1.Namespace
	decision isolation.Decision
	// created: this pass created ns.
	created bool
}

// claim reads who else claims the client's target namespace and claims it: see
// claimNamespace.
func (r *PublicClientReconciler) claim(ctx context.Context, pc *jetonv1alpha1.PublicClient) (namespaceClaim, error) {
	target := pc.TargetNamespace()
	var claimants jetonv1alpha1.PublicClientList
	if err := r.List(ctx, &claimants, client.MatchingFields{IndexPublicClientNamespace: target}); err != nil {
		return namespaceClaim{}, fmt.Errorf("listing the PublicClients that claim it: %w", err)
	}
	key, err := r.ownerKey.get(ctx)
	if err != nil {
		return namespaceClaim{}, err
	}
	c, err := r.claimNamespace(ctx, pc, claimants.Items, key)
	if err != nil {
		return namespaceClaim{}, err
	}
	log.FromContext(ctx).V(1).Info("namespace ownership", "namespace", target, "verdict", c.decision.Verdict.String())
	return c, nil
}

// act carries out judgement: status stops naming a namespace that is not the client's,
// and the client's own is kept labelled and fenced.
func (r *PublicClientReconciler) act(ctx context.Context, pc, orig *jetonv1alpha1.PublicClient, c namespaceClaim, judgement isolation.Judgement) outcome {
	if judgement.Err != nil {
		return failed("claiming namespace "+pc.TargetNamespace(), judgement.Err)
	}
	out := outcome{Verdict: judgement.Verdict, announce: judgement.Announce, requeueAfter: judgement.RequeueAfter}
	switch {
	case judgement.Forget:
		forgetNamespace(&pc.Status)
	case judgement.Keep:
		return r.keep(ctx, pc, orig, c, out)
	}
	return out
}

// keep labels the client's namespace (one it did not just create), records it in status
// and fences it; out is the Ready outcome this leads to.
func (r *PublicClientReconciler) keep(ctx context.Context, pc, orig *jetonv1alpha1.PublicClient, c namespaceClaim, out outcome) outcome {
	target := pc.TargetNamespace()
	if c.created {
		out.tell(false, EventNamespaceCreated, "CreateNamespace", "Created namespace "+target)
	} else if err := r.labelNamespace(ctx, pc, c.ns); err != nil {
		return failed("labelling namespace "+target, err)
	}
	if note := isolation.Adopted(pc, orig.Status.NamespaceUID, c.ns, c.decision); note != "" {
		out.tell(false, EventNamespaceAdopted, "AdoptNamespace", note)
	}
	pc.Status.Namespace, pc.Status.NamespaceUID, pc.Status.NamespaceOrigin = target, c.ns.UID, c.decision.Origin
	// When Delete is first seen: it decides whether the namespace may ever be deleted
	// (isolation.DeleteAllowed).
	var created *metav1.Time
	if c.created {
		created = &c.ns.CreationTimestamp
	}
	since := isolation.DeleteSince(pc.Spec.NamespacePolicy, pc.Status.NamespaceDeleteSince, created, time.Now())
	if since != nil && pc.Status.NamespaceDeleteSince == nil && !c.created {
		out.tell(true, EventNamespacePolicyDelete, "NamespacePolicy", fmt.Sprintf(
			"namespacePolicy is now Delete: namespace %s will be deleted with this PublicClient, and the tenant's data with it, once the policy has been Delete for %s (before that, deleting the client keeps the namespace)",
			target, isolation.NamespaceDeleteGrace))
	}
	pc.Status.NamespaceDeleteSince = since
	if err := r.syncNetworkPolicy(ctx, pc); err != nil {
		// The namespace is claimed all the same: its event is told.
		f := failed(fmt.Sprintf("updating NetworkPolicy %s/%s", target, isolation.NetworkPolicyName), err)
		f.events = out.events
		return f
	}
	return out
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

// forgetNamespace stops status naming a namespace this client does not own (nothing is
// injected without it). The UID and origin of the namespace jeton last verified stay: a
// look-alike created under that name, even one carrying a copied owner proof, is then
// never taken for it (isolation.Decide honours a creation proof only while no UID was
// ever recorded).
func forgetNamespace(st *jetonv1alpha1.PublicClientStatus) {
	st.Namespace = ""
}
