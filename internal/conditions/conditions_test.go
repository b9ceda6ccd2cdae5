package conditions

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

const (
	ready       = jetonv1alpha1.ConditionReady
	reconciling = jetonv1alpha1.ConditionReconciling
	stalled     = jetonv1alpha1.ConditionStalled
)

// start states every helper is applied to.
func startStates() map[string][]metav1.Condition {
	old := metav1.NewTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	c := func(typ string, s metav1.ConditionStatus) metav1.Condition {
		return metav1.Condition{Type: typ, Status: s, Reason: "Old", Message: "old", ObservedGeneration: 1, LastTransitionTime: old}
	}
	return map[string][]metav1.Condition{
		"empty":       nil,
		"ready":       {c(ready, metav1.ConditionTrue)},
		"stalled":     {c(ready, metav1.ConditionFalse), c(stalled, metav1.ConditionTrue)},
		"reconciling": {c(ready, metav1.ConditionUnknown), c(reconciling, metav1.ConditionTrue)},
	}
}

// apply is Apply of a verdict in state, in the shape of the Mark helpers.
func apply(state State) func(*[]metav1.Condition, int64, string, string) {
	return func(conds *[]metav1.Condition, gen int64, reason, message string) {
		Apply(conds, gen, Verdict{State: state, Reason: reason, Message: message})
	}
}

func TestMarkHelpers(t *testing.T) {
	tests := []struct {
		name string
		mark func(*[]metav1.Condition, int64, string, string)
		// want is the status of each condition type after the call; absent types must be removed.
		want map[string]metav1.ConditionStatus
	}{
		{"MarkReady", MarkReady, map[string]metav1.ConditionStatus{ready: metav1.ConditionTrue}},
		{"MarkNotReady", MarkNotReady, map[string]metav1.ConditionStatus{ready: metav1.ConditionFalse}},
		{"MarkStalled", MarkStalled, map[string]metav1.ConditionStatus{ready: metav1.ConditionFalse, stalled: metav1.ConditionTrue}},
		{"MarkReconciling", MarkReconciling, map[string]metav1.ConditionStatus{ready: metav1.ConditionUnknown, reconciling: metav1.ConditionTrue}},
		{"Apply Ready", apply(Ready), map[string]metav1.ConditionStatus{ready: metav1.ConditionTrue}},
		{"Apply NotReady", apply(NotReady), map[string]metav1.ConditionStatus{ready: metav1.ConditionFalse}},
		{"Apply Stalled", apply(Stalled), map[string]metav1.ConditionStatus{ready: metav1.ConditionFalse, stalled: metav1.ConditionTrue}},
		{"Apply Reconciling", apply(Reconciling), map[string]metav1.ConditionStatus{ready: metav1.ConditionUnknown, reconciling: metav1.ConditionTrue}},
		{"Apply Unknown", apply(Unknown), map[string]metav1.ConditionStatus{ready: metav1.ConditionUnknown}},
	}
	for _, tt := range tests {
		for startName, conds := range startStates() {
			t.Run(tt.name+"/from-"+startName, func(t *testing.T) {
				tt.mark(&conds, 7, "SomeReason", "do this")
				if len(conds) != len(tt.want) {
					t.Fatalf("got %d conditions %+v, want exactly %v", len(conds), conds, tt.want)
				}
				for typ, status := range tt.want {
					got := meta.FindStatusCondition(conds, typ)
					if got == nil {
						t.Fatalf("condition %s missing", typ)
					}
					if got.Status != status || got.Reason != "SomeReason" || got.Message != "do this" || got.ObservedGeneration != 7 {
						t.Errorf("condition %s = %+v, want status %s, reason SomeReason, message, observedGeneration 7", typ, got, status)
					}
					if got.LastTransitionTime.IsZero() {
						t.Errorf("condition %s has no lastTransitionTime", typ)
					}
				}
			})
		}
	}
}

func TestSetKeepsTransitionTimeWhenStatusUnchanged(t *testing.T) {
	old := metav1.NewTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	tests := []struct {
		name      string
		status    metav1.ConditionStatus
		keepsTime bool
	}{
		{"same status keeps the time", metav1.ConditionTrue, true},
		{"new status moves the time", metav1.ConditionFalse, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conds := []metav1.Condition{{Type: ready, Status: metav1.ConditionTrue, Reason: "A", ObservedGeneration: 1, LastTransitionTime: old}}
			Set(&conds, 2, ready, tt.status, "B", "msg")
			got := meta.FindStatusCondition(conds, ready)
			if got.LastTransitionTime.Equal(&old) != tt.keepsTime {
				t.Errorf("lastTransitionTime = %v, keeps old %v: want %v", got.LastTransitionTime, old, tt.keepsTime)
			}
			if got.ObservedGeneration != 2 || got.Reason != "B" || got.Message != "msg" {
				t.Errorf("condition not updated: %+v", got)
			}
		})
	}
}

func TestReadyReason(t *testing.T) {
	tests := []struct {
		name  string
		conds []metav1.Condition
		want  string
	}{
		{"no conditions", nil, ""},
		{"no Ready", []metav1.Condition{{Type: stalled, Reason: "X"}}, ""},
		{"Ready present", []metav1.Condition{{Type: stalled, Reason: "X"}, {Type: ready, Reason: "Injected"}}, "Injected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ReadyReason(tt.conds); got != tt.want {
				t.Errorf("ReadyReason = %q, want %q", got, tt.want)
			}
		})
	}
}
