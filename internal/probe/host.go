package probe

import (
	"slices"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/publicapi"
)

// HostHealth is what the latest probes of every TechnicalToken of one API host say about
// the host itself. A banned address gets no HTTP answer at all from API Entreprise and API
// Particulier (their documentation; the ban lasts 12 hours and follows ignored 429s), and
// a broken egress network looks the same: when no token of a host gets an answer, the
// tokens are not the likely cause, and telling users to regenerate them or to raise
// spec.timeout would send them the wrong way.
type HostHealth struct {
	// Host is the API host in its canonical form (publicapi.CanonicalHost), so that every
	// spelling of one host is one host, as in the rate budget.
	Host string
	// Probed counts the TechnicalTokens of the host whose probes are scheduled and that
	// have a result; Unanswered those among them whose last probe failed without an HTTP
	// answer (Timeout, Unreachable).
	Probed, Unanswered int
}

// Unreachable reports whether every probed token of the host failed without an answer.
func (h HostHealth) Unreachable() bool { return h.Probed > 0 && h.Unanswered == h.Probed }

// Answering reports whether some token of the host got an HTTP answer at its last probe.
func (h HostHealth) Answering() bool { return h.Unanswered < h.Probed }

// NoAnswer reports whether reason is a probe that got no HTTP answer.
func NoAnswer(reason string) bool {
	return reason == jetonv1alpha1.ReasonTimeout || reason == jetonv1alpha1.ReasonUnreachable
}

// minHostTimeout is the shortest spec.timeout whose timeouts count as the host not
// answering. The default is 10s.
const minHostTimeout = 5 * time.Second

// HostOfToken returns the canonical API host tt's probes go to, "" when none is known.
func HostOfToken(tt *jetonv1alpha1.TechnicalToken) string {
	return publicapi.CanonicalHost(publicapi.BaseURL(tt.Spec.API, tt.Spec.Environment, tt.Spec.BaseURL))
}

// HostHealths gathers the health of every host the given TechnicalTokens are probed
// against, sorted by host. Only tokens whose probes are scheduled count (status.nextProbeTime
// set: not suspended, not refused), so a refused or suspended token's old result says
// nothing about a host.
func HostHealths(tts []jetonv1alpha1.TechnicalToken) []HostHealth {
	by := map[string]*HostHealth{}
	for i := range tts {
		tt := &tts[i]
		st := &tt.Status
		// A result about an older spec (another host, maybe) says nothing about this host,
		// and a timeout shorter than minHostTimeout says more about spec.timeout than about
		// the host: an editor setting 1ms must not page anyone about an IP ban.
		if st.NextProbeTime == nil || st.LastResult == nil || tt.Spec.Suspend || st.ObservedGeneration != tt.Generation ||
			(st.LastResult.Reason == jetonv1alpha1.ReasonTimeout && tt.Spec.Timeout != nil && tt.Spec.Timeout.Duration < minHostTimeout) {
			continue
		}
		host := HostOfToken(tt)
		if host == "" {
			continue
		}
		h := by[host]
		if h == nil {
			h = &HostHealth{Host: host}
			by[host] = h
		}
		h.Probed++
		if st.ConsecutiveFailures > 0 && NoAnswer(st.LastResult.Reason) {
			h.Unanswered++
		}
	}
	out := make([]HostHealth, 0, len(by))
	for _, h := range by {
		out = append(out, *h)
	}
	slices.SortFunc(out, func(a, b HostHealth) int {
		switch {
		case a.Host < b.Host:
			return -1
		case a.Host > b.Host:
			return 1
		}
		return 0
	})
	return out
}

// HealthOf returns the health of host among hs (zero, with the host, when absent).
func HealthOf(hs []HostHealth, host string) HostHealth {
	for _, h := range hs {
		if h.Host == host {
			return h
		}
	}
	return HostHealth{Host: host}
}
