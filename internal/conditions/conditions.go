// Package conditions sets kstatus-compatible conditions on jeton's resources.
//
// kstatus (sigs.k8s.io/cli-utils) judges a resource by three conditions: Ready, always
// present, and the "abnormal-true" Reconciling and Stalled, present only while true. A
// Reconciling=False or Stalled=False left behind would still be read by some tools, so the
// helpers below remove them instead of flipping them.
package conditions

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// Set sets a condition on the list with observedGeneration gen. lastTransitionTime changes
// only when the status changes, so watchers can tell how long a state has lasted.
func Set(conds *[]metav1.Condition, gen int64, typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type:               typ,
		Status:             status,
		ObservedGeneration: gen,
		Reason:             reason,
		Message:            message,
	})
}

// MarkReady sets Ready=True and removes Reconciling and Stalled.
func MarkReady(conds *[]metav1.Condition, gen int64, reason, message string) {
	Set(conds, gen, jetonv1alpha1.ConditionReady, metav1.ConditionTrue, reason, message)
	meta.RemoveStatusCondition(conds, jetonv1alpha1.ConditionReconciling)
	meta.RemoveStatusCondition(conds, jetonv1alpha1.ConditionStalled)
}

// MarkNotReady sets Ready=False and removes Reconciling and Stalled: a transient failure
// that the controller retries on its own.
func MarkNotReady(conds *[]metav1.Condition, gen int64, reason, message string) {
	Set(conds, gen, jetonv1alpha1.ConditionReady, metav1.ConditionFalse, reason, message)
	meta.RemoveStatusCondition(conds, jetonv1alpha1.ConditionReconciling)
	meta.RemoveStatusCondition(conds, jetonv1alpha1.ConditionStalled)
}

// MarkStalled sets Ready=False and Stalled=True (same reason and message) and removes
// Reconciling: the controller cannot make progress until a human changes something.
func MarkStalled(conds *[]metav1.Condition, gen int64, reason, message string) {
	Set(conds, gen, jetonv1alpha1.ConditionReady, metav1.ConditionFalse, reason, message)
	Set(conds, gen, jetonv1alpha1.ConditionStalled, metav1.ConditionTrue, reason, message)
	meta.RemoveStatusCondition(conds, jetonv1alpha1.ConditionReconciling)
}

// MarkReconciling sets Ready=Unknown and Reconciling=True (same reason and message) and
// removes Stalled: work is in progress.
func MarkReconciling(conds *[]metav1.Condition, gen int64, reason, message string) {
	Set(conds, gen, jetonv1alpha1.ConditionReady, metav1.ConditionUnknown, reason, message)
	Set(conds, gen, jetonv1alpha1.ConditionReconciling, metav1.ConditionTrue, reason, message)
	meta.RemoveStatusCondition(conds, jetonv1alpha1.ConditionStalled)
}

// ReadyReason returns the reason of the Ready condition, or "" when there is none.
func ReadyReason(conds []metav1.Condition) string {
	if c := meta.FindStatusCondition(conds, jetonv1alpha1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}

// State is the kstatus state a verdict puts a resource in.
type State int

const (
	// Ready: Ready=True.
	Ready State = iota
	// NotReady: Ready=False, retried on its own (a watched object may still come).
	NotReady
	// Stalled: Ready=False and Stalled=True, until a human changes something.
	Stalled
	// Reconciling: Ready=Unknown and Reconciling=True, work in progress.
	Reconciling
	// Unknown: Ready=Unknown and nothing in progress (probing suspended before any probe).
	Unknown
)

// Verdict is what a pass decided about a resource: the state of its Ready condition and why.
// Deciding returns one; the reconciler's one status path applies it.
type Verdict struct {
	State   State
	Reason  string
	Message string
	// Warning: the event told when Ready turns to Reason is a Warning.
	Warning bool
}

// Apply sets the conditions of v with observedGeneration gen.
func Apply(conds *[]metav1.Condition, gen int64, v Verdict) {
	switch v.State {
	case Ready:
		MarkReady(conds, gen, v.Reason, v.Message)
	case NotReady:
		MarkNotReady(conds, gen, v.Reason, v.Message)
	case Stalled:
		MarkStalled(conds, gen, v.Reason, v.Message)
	case Reconciling:
		MarkReconciling(conds, gen, v.Reason, v.Message)
	case Unknown:
		MarkReady(conds, gen, v.Reason, v.Message) // removes Reconciling and Stalled
		Set(conds, gen, jetonv1alpha1.ConditionReady, metav1.ConditionUnknown, v.Reason, v.Message)
	}
}
