package expiry

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEvaluate(t *testing.T) {
	exp := time.Date(2027, 1, 3, 10, 0, 0, 0, time.UTC)
	const renew = 90 * day
	at := func(d time.Duration) time.Time { return exp.Add(-d) } // d before expiry
	tests := []struct {
		name        string
		now         time.Time
		expiresAt   *time.Time
		renewBefore time.Duration
		wantState   State
		wantNext    time.Duration
	}{
		{"unknown", at(400 * day), nil, renew, Unknown, 0},
		{"valid, a year ahead", at(365 * day), &exp, renew, Valid, 275 * day},
		{"valid, a second before the window", at(renew + time.Second), &exp, renew, Valid, time.Second},
		{"exactly at renewBefore", at(renew), &exp, renew, ExpiringSoon, renew},
		{"inside the window", at(12*day + 5*time.Hour), &exp, renew, ExpiringSoon, 12*day + 5*time.Hour},
		{"seconds left", at(time.Second), &exp, renew, ExpiringSoon, time.Second},
		{"exactly at exp", exp, &exp, renew, Expired, 0},
		{"long expired", exp.Add(3*day + time.Hour), &exp, renew, Expired, 0},
		{"no window", at(time.Hour), &exp, 0, Valid, time.Hour},
		{"negative window counts as none", at(time.Hour), &exp, -day, Valid, time.Hour},
		{"window longer than the lifetime", at(30 * day), &exp, 10000 * day, ExpiringSoon, 30 * day},
		{"non-UTC expiry", at(2 * day), ptr(exp.In(time.FixedZone("CET", 3600))), renew, ExpiringSoon, 2 * day},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate(tt.now, tt.expiresAt, tt.renewBefore)
			if got.State != tt.wantState || got.Next != tt.wantNext {
				t.Errorf("Evaluate() = {State:%s Next:%s}, want {State:%s Next:%s}", got.State, got.Next, tt.wantState, tt.wantNext)
			}
			wantDate := "2027-01-03T10:00:00Z" // UTC, whatever the zone it was given in
			if tt.expiresAt == nil {
				wantDate = ""
			}
			if got.Date != wantDate {
				t.Errorf("Date = %q, want %q", got.Date, wantDate)
			}
		})
	}
}

func TestEvaluateResource(t *testing.T) {
	exp := metav1.NewTime(time.Date(2027, 1, 3, 10, 0, 0, 0, time.UTC))
	now := exp.Add(-30 * day)
	tests := []struct {
		name        string
		expiresAt   *metav1.Time
		renewBefore *metav1.Duration
		want        Result
	}{
		{"no expiry", nil, nil, Result{State: Unknown}},
		{"default window (90 days)", &exp, nil, Result{State: ExpiringSoon, Next: 30 * day, Date: "2027-01-03T10:00:00Z"}},
		{"spec.renewBefore", &exp, &metav1.Duration{Duration: 7 * day}, Result{State: Valid, Next: 23 * day, Date: "2027-01-03T10:00:00Z"}},
	}
	for _, tt := range tests {
		if got := EvaluateResource(now, tt.expiresAt, tt.renewBefore); got != tt.want {
			t.Errorf("%s: EvaluateResource() = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

// TestEvaluateNextLandsOnTheChange checks what reconcilers rely on: requeueing after Next
// finds the state changed, and a moment before Next it has not changed yet.
func TestEvaluateNextLandsOnTheChange(t *testing.T) {
	exp := time.Date(2027, 1, 3, 10, 0, 0, 0, time.UTC)
	for _, start := range []time.Time{exp.AddDate(-1, 0, 0), exp.Add(-90*day - time.Nanosecond), exp.Add(-30 * day)} {
		now := start
		var states []State
		for i := 0; i < 5; i++ {
			r := Evaluate(now, &exp, 90*day)
			states = append(states, r.State)
			if r.Next == 0 {
				break
			}
			if before := Evaluate(now.Add(r.Next-time.Nanosecond), &exp, 90*day); before.State != r.State {
				t.Errorf("from %s: state changed to %s before Next", now, before.State)
			}
			now = now.Add(r.Next)
		}
		if last := states[len(states)-1]; last != Expired {
			t.Errorf("from %s: states %v never reached Expired", start, states)
		}
		if len(states) > 3 {
			t.Errorf("from %s: %d requeues (%v), want at most one per state change", start, len(states), states)
		}
	}
}

const day = 24 * time.Hour

func ptr(t time.Time) *time.Time { return &t }
