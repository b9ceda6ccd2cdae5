package probe

import (
	"testing"
	"time"
)

// An on-demand request is served at once only when the last probe is older than the
// floor, else at the floor, and never before a rate-limit hold.
func TestRequestDue(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	tests := []struct {
		name      string
		last      *time.Time
		notBefore time.Time
		want      time.Time // zero: at once
	}{
		{"never probed", nil, time.Time{}, time.Time{}},
		{"last probe older than the floor", ago(time.Minute), time.Time{}, now.Add(-30 * time.Second)},
		{"last probe 10s ago: at the floor", ago(10 * time.Second), time.Time{}, now.Add(20 * time.Second)},
		{"last probe just now", ago(0), time.Time{}, now.Add(RequestFloor)},
		{"a Retry-After beyond the floor wins", ago(10 * time.Second), now.Add(time.Hour), now.Add(time.Hour)},
		{"a Retry-After with no probe yet", nil, now.Add(time.Minute), now.Add(time.Minute)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := RequestDue(tc.last, RequestFloor, tc.notBefore)
			if !got.Equal(tc.want) {
				t.Errorf("due %v, want %v", got, tc.want)
			}
			if atOnce := !got.After(now); atOnce != !tc.want.After(now) {
				t.Errorf("served at once: %v", atOnce)
			}
		})
	}
}
