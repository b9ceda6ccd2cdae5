package isolation

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
	"github.com/jeton-dev/jeton/internal/siret"
)

const (
	// OwnedElsewhereRetry re-checks a namespace jeton may not touch. Labelling it triggers a
	// reconcile at once (labelled namespaces are watched); this catches what is not watched,
	// such as an unlabelled namespace being deleted.
	OwnedElsewhereRetry = 2 * time.Minute
	// TerminatingRetry re-checks a namespace being deleted, to recreate it once it is gone.
	TerminatingRetry = 10 * time.Second
)

// Facts is what a pass over a PublicClient read, for Judge.
type Facts struct {
	Client *jetonv1alpha1.PublicClient
	// Reserved says why the client's target namespace may never be a client namespace
	// (credentials, operator, Kubernetes' own, --reserved-namespaces); "" when it may.
	Reserved string
	// PodSecurityFloor is the most permissive Pod Security level a client's editor may ask
	// for (--pod-security-floor, set by the cluster admin); empty: none.
	PodSecurityFloor jetonv1alpha1.PodSecurityLevel
	// Claim is the ownership decision on the target namespace (Decide), nil until the
	// namespace was claimed: Judge then rules on the spec alone.
	Claim *Decision
	// Created: this pass created the namespace, as Claim (Create) allowed.
	Created bool
}

// Judgement is what Judge concludes about a PublicClient.
type Judgement struct {
	conditions.Verdict
	// Claim: the spec allows the target namespace, whose ownership is still to be decided:
	// claim it, then judge again with Facts.Claim.
	Claim bool
	// Keep: the namespace is the client's; keep it labelled and fenced, then the client
	// is Ready.
	Keep bool
	// Forget: the namespace is not the client's, so status must stop naming it.
	Forget bool
	// RequeueAfter: the cluster may change unwatched; look again then.
	RequeueAfter time.Duration
	// Announce: an event tells when Ready turns to this reason (a Warning when
	// Verdict.Warning): what a human must fix.
	Announce bool
	// Err: the pass cannot decide on what it read; it is retried with back-off.
	Err error
}

// Judge rules on a PublicClient: a chain of checks, the first that applies decides, and
// a client that passes them all is Ready once its namespace is kept.
func Judge(f Facts) Judgement {
	for _, check := range []func(Facts) (Judgement, bool){
		invalidSIRET, reserved, belowFloor, unclaimed, ownedElsewhere, terminating, vanished,
	} {
		if j, ok := check(f); ok {
			return j
		}
	}
	return ready(f)
}

// invalidSIRET: the CRD rejects a bad SIRET with CEL; this catches CRDs installed without
// that rule.
func invalidSIRET(f Facts) (Judgement, bool) {
	err := siret.Validate(f.Client.Spec.SIRET)
	if err == nil {
		return Judgement{}, false
	}
	return stalled(jetonv1alpha1.ReasonInvalidSIRET, fmt.Sprintf(
		"spec.siret: %v. Every API call for this client names this SIRET as recipient; fix spec.siret", err)), true
}

// reserved: none of the cluster's own namespaces is ever claimed; status stops naming it.
func reserved(f Facts) (Judgement, bool) {
	if f.Reserved == "" {
		return Judgement{}, false
	}
	j := stalled(jetonv1alpha1.ReasonNamespaceReserved, fmt.Sprintf(
		"namespace %s is reserved (%s): jeton never makes it a client namespace, and nothing is written into it. Set spec.namespace to a namespace of this client's own (recreate this PublicClient, the field is immutable)",
		f.Client.TargetNamespace(), f.Reserved))
	j.Forget = true
	return j, true
}

// belowFloor: labelling a namespace privileged is a cluster admin's power (patch
// namespaces); whoever may edit a PublicClient must not gain it through jeton. A level below
// the floor is refused before the namespace is claimed: nothing is created or labelled, so
// a namespace keeps the labels it had (and its tokens: refusing a spec edit does not cut a
// running client off).
func belowFloor(f Facts) (Judgement, bool) {
	level := f.Client.Spec.Isolation.PodSecurity
	if !BelowFloor(level, f.PodSecurityFloor) {
		return Judgement{}, false
	}
	return stalled(jetonv1alpha1.ReasonPodSecurityBelowFloor, fmt.Sprintf(
		"spec.isolation.podSecurity %s is below the operator's floor %s (--pod-security-floor): namespace %s keeps the labels it has. Ask for %s or stricter, or have the cluster admin lower the floor",
		PodSecurity(level), f.PodSecurityFloor, f.Client.TargetNamespace(), f.PodSecurityFloor)), true
}

// unclaimed: the spec allows the namespace; who owns it is decided by claiming it.
func unclaimed(f Facts) (Judgement, bool) {
	return Judgement{Claim: true}, f.Claim == nil
}

// ownedElsewhere: nothing is written into another's namespace, and status stops naming it.
func ownedElsewhere(f Facts) (Judgement, bool) {
	if f.Claim.Verdict != OwnedElsewhere {
		return Judgement{}, false
	}
	j := stalled(jetonv1alpha1.ReasonNamespaceOwnedElsewhere, f.Claim.Message)
	j.Forget, j.RequeueAfter = true, OwnedElsewhereRetry
	return j, true
}

// terminating: a namespace being deleted is waited for, then created again.
func terminating(f Facts) (Judgement, bool) {
	if f.Claim.Verdict != Terminating {
		return Judgement{}, false
	}
	return Judgement{
		Verdict:      conditions.Verdict{State: conditions.NotReady, Reason: jetonv1alpha1.ReasonNamespaceTerminating, Message: f.Claim.Message},
		RequeueAfter: TerminatingRetry,
	}, true
}

// vanished: the namespace was free, yet creating it found one that was gone again when
// read. Decide afresh on the next pass.
func vanished(f Facts) (Judgement, bool) {
	if f.Claim.Verdict != Create || f.Created {
		return Judgement{}, false
	}
	return Judgement{Err: fmt.Errorf("namespace %s appeared and vanished while being claimed", f.Client.TargetNamespace())}, true
}

// ready: the namespace is the client's, once labelled and fenced.
func ready(f Facts) Judgement {
	spec := f.Client.Spec.Isolation
	policy := "no NetworkPolicy"
	if NetworkPolicyEnabled(spec.NetworkPolicy) {
		policy = "NetworkPolicy " + NetworkPolicyName
	}
	return Judgement{Keep: true, Verdict: conditions.Verdict{State: conditions.Ready, Reason: jetonv1alpha1.ReasonReady,
		Message: fmt.Sprintf("namespace %s is ready: Pod Security %s, %s", f.Client.TargetNamespace(), PodSecurity(spec.PodSecurity), policy)}}
}

func stalled(reason, message string) Judgement {
	return Judgement{Verdict: conditions.Verdict{State: conditions.Stalled, Reason: reason, Message: message, Warning: true}, Announce: true}
}

// NetworkPolicyEnabled reports whether spec mode keeps the isolation policy. Empty means a
// CRD without defaults: isolation stays on.
func NetworkPolicyEnabled(mode jetonv1alpha1.NetworkPolicyMode) bool {
	return mode != jetonv1alpha1.NetworkPolicyDisabled
}

// Adopted returns the note of the event telling that client adopted ns, whose ownership
// decision is d; "" when this pass did not adopt it. recordedUID is the namespace UID the
// client's status recorded when the pass read it.
//
// Adopted: a namespace not younger than the client (timestamps have one-second precision).
// One jeton created for it is younger: judging by status alone would report a namespace
// created a moment ago as adopted whenever this pass reads a cache that has not yet seen
// the previous pass's status write.
func Adopted(client *jetonv1alpha1.PublicClient, recordedUID types.UID, ns *corev1.Namespace, d Decision) string {
	if d.Verdict != Owned || recordedUID == ns.UID || ns.CreationTimestamp.After(client.CreationTimestamp.Time) {
		return ""
	}
	how := "which it requested (spec.adoptNamespace); jeton will never delete it"
	if d.Origin == jetonv1alpha1.NamespaceCreated {
		how = "which jeton created for a PublicClient of this name and retained"
	}
	return fmt.Sprintf("Adopted namespace %s, %s", ns.Name, how)
}

// NamespaceDeleteGrace is how long namespacePolicy Delete must have been in place, as jeton
// saw it, before jeton deletes a namespace it created under Retain: whoever may edit a
// PublicClient must not be able to destroy the tenant's data by switching the policy just
// before deleting the client. A day leaves the vendor's admins time to see the change (the
// NamespacePolicyDelete event) and revert it.
const NamespaceDeleteGrace = 24 * time.Hour

// DeleteSince is the namespaceDeleteSince a pass at now records: when Delete was first
// seen (kept while the policy stays Delete), nil under Retain. The pass that creates the
// namespace records its creation time (created), so that DeleteAllowed knows Delete was
// there from the start.
func DeleteSince(policy jetonv1alpha1.NamespacePolicy, since *metav1.Time, created *metav1.Time, now time.Time) *metav1.Time {
	switch {
	case policy != jetonv1alpha1.NamespacePolicyDelete:
		return nil
	case since != nil:
		return since
	case created != nil:
		return created.DeepCopy()
	}
	// Rounded up to the second, the precision status keeps: a switch made in the second
	// jeton created the namespace must not read as made at its creation.
	t := metav1.NewTime(now.Truncate(time.Second))
	if !t.Time.Equal(now) {
		t = metav1.NewTime(t.Add(time.Second))
	}
	return &t
}

// DeleteAllowed says whether a client whose policy is Delete, recorded since since, may
// have its namespace (created at nsCreated, by jeton) deleted at now: Delete was recorded
// when jeton created the namespace, or NamespaceDeleteGrace ago. why says why not.
func DeleteAllowed(policy jetonv1alpha1.NamespacePolicy, since *metav1.Time, nsCreated, now time.Time) (ok bool, why string) {
	switch {
	case policy != jetonv1alpha1.NamespacePolicyDelete:
		return false, "namespacePolicy Retain"
	case since == nil:
		return false, fmt.Sprintf("namespacePolicy Delete was never recorded by jeton before the deletion; it takes effect %s after jeton records it", NamespaceDeleteGrace)
	case !since.Time.After(nsCreated):
		return true, ""
	case now.Sub(since.Time) >= NamespaceDeleteGrace:
		return true, ""
	}
	return false, fmt.Sprintf("namespacePolicy Delete was set %s ago, after the namespace was created: it takes effect only after %s, so that an editor cannot delete the tenant's data by switching it just before deleting the client",
		now.Sub(since.Time).Round(time.Second), NamespaceDeleteGrace)
}
