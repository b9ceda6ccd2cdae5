package injection

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestRepairDelay(t *testing.T) {
	tests := []struct {
		n    int
		want time.Duration
	}{
		{1, 0}, {2, 0}, {RepairFree, time.Second}, {RepairFree + 1, 2 * time.Second},
		{RepairFree + 2, 4 * time.Second}, {RepairFree + 8, 256 * time.Second},
		{RepairFree + 9, RepairMaxDelay}, {1000, RepairMaxDelay},
	}
	for _, tt := range tests {
		if got := RepairDelay(tt.n); got != tt.want {
			t.Errorf("RepairDelay(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}

// TestRepairBackoffTenantLoop: a tenant deleting its injected Secret as fast as it can gets
// RepairFree repairs at once, then ever fewer: about a dozen in ten minutes, whatever its
// speed. Another Secret is not held back, and a Secret left alone starts afresh.
func TestRepairBackoffTenantLoop(t *testing.T) {
	var b RepairBackoff
	t0 := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	loop := types.NamespacedName{Namespace: "tenant", Name: "api-entreprise"}
	other := types.NamespacedName{Namespace: "other", Name: "api-entreprise"}

	// The tenant deletes every 50 ms for ten minutes; jeton repairs when allowed.
	repairs := 0
	var waits []time.Duration
	for now := t0; now.Before(t0.Add(10 * time.Minute)); now = now.Add(50 * time.Millisecond) {
		if w := b.Allow(loop, now); w == 0 {
			repairs++
		} else if len(waits) < 3 {
			waits = append(waits, w)
		}
	}
	if repairs < RepairFree || repairs > 15 {
		t.Errorf("%d repairs in 10 minutes of deletions every 50 ms, want between %d and 15", repairs, RepairFree)
	}
	if len(waits) == 0 || waits[0] > time.Second {
		t.Errorf("the first wait past the free repairs is %v, want at most 1s", waits)
	}
	t.Logf("%d repairs in 10 minutes (12,000 deletions)", repairs)

	// Another Secret is repaired at once.
	if w := b.Allow(other, t0.Add(10*time.Minute)); w != 0 {
		t.Errorf("another client's Secret waits %v", w)
	}
	// Left alone for RepairQuiet, the loop's Secret starts afresh.
	later := t0.Add(30 * time.Minute)
	for i := range RepairFree {
		if w := b.Allow(loop, later); w != 0 {
			t.Errorf("repair %d after a quiet period waits %v", i+1, w)
		}
	}
	if w := b.Allow(loop, later); w != RepairBaseDelay {
		t.Errorf("repair %d at once waits %v, want %v", RepairFree+1, w, RepairBaseDelay)
	}
	// The quiet Secrets are forgotten: the map does not grow with every Secret ever repaired.
	b.Allow(loop, later.Add(RepairQuiet))
	if n := len(b.secrets); n != 1 {
		t.Errorf("%d Secrets remembered after the others were quiet for %v, want 1", n, RepairQuiet)
	}
}
