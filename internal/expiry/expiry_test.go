package expiry

import (
	"strings"
	"testing"
	"time"
)

func TestEvaluate(t *testing.T) {
	exp := time.Date(2027, 1, 3, 10, 0, 0, 0, time.UTC)
	const renew = 90 * day
	at := func(d time.Duration) time.Time { return exp.Add(-d) } // d before expiry
	tests := []struct {
		name          string
		now           time.Time
		expiresAt     *time.Time
		renewBefore   time.Duration
		wantState     State
		wantNext      time.Duration
		wantRemaining time.Duration
		wantMessage   string
	}{
		{"unknown", at(400 * day), nil, renew, Unknown, 0, 0, "token expiry is unknown"},
		{"valid, a year ahead", at(365 * day), &exp, renew, Valid, 275 * day, 365 * day,
			"token expires at 2027-01-03T10:00:00Z (in 365 days)"},
		{"valid, a second before the window", at(renew + time.Second), &exp, renew, Valid, time.Second, renew + time.Second,
			"(in 90 days)"},
		{"exactly at renewBefore", at(renew), &exp, renew, ExpiringSoon, renew, renew,
			"token expires at 2027-01-03T10:00:00Z (in 90 days); renew it on the API portal and update its Secret before then"},
		{"inside the window", at(12*day + 5*time.Hour), &exp, renew, ExpiringSoon, 12*day + 5*time.Hour, 12*day + 5*time.Hour, "(in 12 days)"},
		{"one day left", at(day + time.Hour), &exp, renew, ExpiringSoon, day + time.Hour, day + time.Hour, "(in 1 day)"},
		{"hours left", at(5*time.Hour + 59*time.Minute), &exp, renew, ExpiringSoon, 5*time.Hour + 59*time.Minute, 5*time.Hour + 59*time.Minute, "(in 5 hours)"},
		{"seconds left", at(time.Second), &exp, renew, ExpiringSoon, time.Second, time.Second, "(in less than a minute)"},
		{"exactly at exp", exp, &exp, renew, Expired, 0, 0, "token expired at 2027-01-03T10:00:00Z (less than a minute ago); the API refuses it"},
		{"long expired", exp.Add(3*day + time.Hour), &exp, renew, Expired, 0, -(3*day + time.Hour), "(3 days ago)"},
		{"no window", at(time.Hour), &exp, 0, Valid, time.Hour, time.Hour, "(in 1 hour)"},
		{"negative window counts as none", at(time.Hour), &exp, -day, Valid, time.Hour, time.Hour, "(in 1 hour)"},
		{"window longer than the lifetime", at(30 * day), &exp, 10000 * day, ExpiringSoon, 30 * day, 30 * day, "(in 30 days)"},
		{"non-UTC expiry is shown in UTC", at(2 * day), ptr(exp.In(time.FixedZone("CET", 3600))), renew, ExpiringSoon, 2 * day, 2 * day, "2027-01-03T10:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate(tt.now, tt.expiresAt, tt.renewBefore)
			if got.State != tt.wantState || got.Next != tt.wantNext || got.Remaining != tt.wantRemaining {
				t.Errorf("Evaluate() = {State:%s Next:%s Remaining:%s}, want {State:%s Next:%s Remaining:%s}",
					got.State, got.Next, got.Remaining, tt.wantState, tt.wantNext, tt.wantRemaining)
			}
			if !strings.Contains(got.Message, tt.wantMessage) {
				t.Errorf("Evaluate().Message = %q, want it to contain %q", got.Message, tt.wantMessage)
			}
		})
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

func ptr(t time.Time) *time.Time { return &t }
