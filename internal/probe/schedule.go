package probe

import (
	"encoding/binary"
	"hash/fnv"
	"time"
)

// RequestFloor is the least time between a TechnicalToken's last probe and a probe asked for
// on demand (annotation jeton.dev/requested-at): the CRD's minimum interval. A request is
// served at once when the last probe is older, else at the floor, and the requests in
// between are answered together by that probe: looping `kubectl annotate` cannot make jeton
// exceed a per-token limit (API Entreprise 250/min, DN 400/min) nor draw 429s.
const RequestFloor = 30 * time.Second

// MaxJitter is the largest jitter, as a fraction of the interval.
const MaxJitter = 0.10

// Jitter returns a deterministic delay in [0, MaxJitter*interval) derived from the resource
// UID and the time of the last probe. Deterministic, so every reconcile computes the same
// next probe time (status does not churn, an operator restart does not reshuffle), yet
// tokens created together drift apart instead of hitting the API in step.
func Jitter(uid string, last time.Time, interval time.Duration) time.Duration {
	if interval <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(uid))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(last.UnixNano()))
	_, _ = h.Write(b[:])
	span := int64(float64(interval) * MaxJitter)
	if span <= 0 {
		return 0
	}
	return time.Duration(h.Sum64() % uint64(span))
}

// NextProbe returns when the next probe is due: at once when there was none, otherwise
// last + interval + jitter, and never before notBefore (a rate limit or backoff).
func NextProbe(uid string, last *time.Time, interval time.Duration, notBefore time.Time) time.Time {
	var due time.Time
	if last != nil {
		due = last.Add(interval + Jitter(uid, *last, interval))
	}
	if notBefore.After(due) {
		due = notBefore
	}
	return due
}

// RequestDue returns when an on-demand request is served: at once (the zero time) when
// there was no probe or the last one is older than floor, else floor after it; never
// before notBefore (a rate limit or backoff). Every request arriving before then is
// answered by that one probe.
func RequestDue(last *time.Time, floor time.Duration, notBefore time.Time) time.Time {
	var due time.Time
	if last != nil {
		due = last.Add(floor)
	}
	if notBefore.After(due) {
		due = notBefore
	}
	return due
}
