package probe

import (
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"
)

// GateOptions tune the rate-limit gate. Zero values take the defaults.
type GateOptions struct {
	// HostRate is the steady request rate allowed per API host. Default: 80% of the
	// 1000 requests/min per-IP limit of API Entreprise and API Particulier.
	HostRate rate.Limit
	// HostBurst is the burst allowed per host. Default 10.
	HostBurst int
	// BaseBackoff is the host-wide wait after a first 429 without a longer Retry-After;
	// it doubles on each further 429 in a row. Default 5s.
	BaseBackoff time.Duration
	// MaxBackoff caps the exponential backoff. Default 15m.
	MaxBackoff time.Duration
}

func (o GateOptions) withDefaults() GateOptions {
	if o.HostRate <= 0 {
		o.HostRate = rate.Limit(0.8 * 1000 / 60.0)
	}
	if o.HostBurst <= 0 {
		o.HostBurst = 10
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = 5 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 15 * time.Minute
	}
	return o
}

// Gate decides when a token may be probed. It keeps, in memory:
//   - per token, the time before which it must not be probed (Retry-After, RateLimit-Reset);
//   - per API host, a backoff after 429s (the per-IP limit bans the vendor's IP for 12 hours
//     when ignored, so one 429 holds every token of the host) and a rate limiter that keeps
//     all tokens together under the per-IP limit.
type Gate struct {
	opts   GateOptions
	mu     sync.Mutex
	tokens map[types.NamespacedName]time.Time
	hosts  map[string]*hostState
}

type hostState struct {
	notBefore time.Time
	strikes   int // 429s in a row
	limiter   *rate.Limiter
}

// NewGate returns an empty gate.
func NewGate(opts GateOptions) *Gate {
	return &Gate{opts: opts.withDefaults(), tokens: map[types.NamespacedName]time.Time{}, hosts: map[string]*hostState{}}
}

func (g *Gate) host(h string) *hostState {
	s := g.hosts[h]
	if s == nil {
		s = &hostState{limiter: rate.NewLimiter(g.opts.HostRate, g.opts.HostBurst)}
		g.hosts[h] = s
	}
	return s
}

// NotBefore returns the earliest time the token may be probed against host (zero: now).
func (g *Gate) NotBefore(key types.NamespacedName, host string) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	t := g.tokens[key]
	if s := g.hosts[host]; s != nil && s.notBefore.After(t) {
		t = s.notBefore
	}
	return t
}

// admit returns how long to wait before probing the token now. When it returns 0 a slot of
// the host's rate limiter has been taken: the caller must send the request.
func (g *Gate) admit(key types.NamespacedName, host string, now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.host(host)
	nb := g.tokens[key]
	if s.notBefore.After(nb) {
		nb = s.notBefore
	}
	if nb.After(now) {
		return nb.Sub(now)
	}
	r := s.limiter.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		// Give the slot back: the caller comes back after d and asks again.
		r.CancelAt(now)
		return d
	}
	return 0
}

// Observe records the rate-limit information of an outcome.
func (g *Gate) Observe(key types.NamespacedName, host string, o Outcome) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.host(host)
	wait := o.RetryAt
	if o.HTTPStatus == http.StatusTooManyRequests {
		s.strikes++
		backoff := g.opts.BaseBackoff << min(s.strikes-1, 20)
		if backoff > g.opts.MaxBackoff || backoff <= 0 {
			backoff = g.opts.MaxBackoff
		}
		if b := o.Time.Add(backoff); b.After(wait) {
			wait = b
		}
		// A 429 may come from the per-IP limit: hold every token of the host.
		if wait.After(s.notBefore) {
			s.notBefore = wait
		}
	} else if o.HTTPStatus != 0 {
		s.strikes = 0
	}
	if wait.After(g.tokens[key]) {
		g.tokens[key] = wait
	}
}

// Forget drops what the gate knows about a token (host state is kept: it is shared).
func (g *Gate) Forget(key types.NamespacedName) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.tokens, key)
}
