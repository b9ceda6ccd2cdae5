package injection

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Repairs of an injected Secret that its tenant keeps deleting or editing (drift) are
// rate-limited per Secret: the tenant can hurt only its own namespace, never spend the
// manager's shared API budget (--kube-api-qps) or its workers, which every other client's
// injections and revocations need. Revocations (removing a Secret) are never delayed.
const (
	// RepairFree is how many consecutive repairs of one Secret are made at once: a human
	// mistake, a GitOps tool pruning once, are repaired without delay.
	RepairFree = 3
	// RepairBaseDelay is the wait before the first repair past RepairFree; each next one
	// waits twice as long, up to RepairMaxDelay.
	RepairBaseDelay = time.Second
	RepairMaxDelay  = 5 * time.Minute
	// RepairQuiet: a Secret left alone this long starts afresh (and is forgotten).
	RepairQuiet = 10 * time.Minute
)

// RepairBackoff says when each injected Secret may be repaired next. Its zero value is
// ready to use; it is safe for concurrent use.
type RepairBackoff struct {
	mu      sync.Mutex
	secrets map[types.NamespacedName]*repairState
	swept   time.Time
}

type repairState struct {
	// count is the number of consecutive repairs made (each within RepairQuiet of the last).
	count int
	last  time.Time
}

// Allow reports how long the repair of Secret key must wait at now: 0 when it may be made
// now, and it is then counted.
func (b *RepairBackoff) Allow(key types.NamespacedName, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sweep(now)
	if b.secrets == nil {
		b.secrets = map[types.NamespacedName]*repairState{}
	}
	st := b.secrets[key]
	if st == nil || now.Sub(st.last) >= RepairQuiet {
		st = &repairState{}
		b.secrets[key] = st
	}
	if wait := st.last.Add(RepairDelay(st.count)).Sub(now); st.count > 0 && wait > 0 {
		return wait
	}
	st.count++
	st.last = now
	return 0
}

// RepairDelay is the least time between repair n (counting from 1) and repair n+1.
func RepairDelay(n int) time.Duration {
	if n < RepairFree {
		return 0
	}
	d := RepairBaseDelay
	for i := RepairFree; i < n && d < RepairMaxDelay; i++ {
		d *= 2
	}
	return min(d, RepairMaxDelay)
}

// sweep forgets, at most once per RepairQuiet, the Secrets left alone that long, so the map
// holds only Secrets repaired lately.
func (b *RepairBackoff) sweep(now time.Time) {
	if now.Sub(b.swept) < RepairQuiet {
		return
	}
	b.swept = now
	for key, st := range b.secrets {
		if now.Sub(st.last) >= RepairQuiet {
			delete(b.secrets, key)
		}
	}
}
