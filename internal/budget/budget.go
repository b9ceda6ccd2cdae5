// Package budget is jeton's one rate budget towards the public APIs: whatever sends a
// request with a token (the prober today, the gateway of issue 22 tomorrow) asks it first,
// so that the vendor's limits hold for all of jeton's traffic together.
//
// Two keys, both canonical so that no spelling buys a second budget:
//   - the API host (publicapi.CanonicalHost): a rate per host, about the per-address limit
//     (1000 requests/min per IP on API Entreprise and API Particulier, whose breach bans
//     the vendor's address for 12 hours, for every client), and a backoff after a 429 that
//     holds every token of the host, since a 429 may come from the per-address limit;
//   - the token (its canonical fingerprint, token.Fingerprint): one request in flight, and
//     the wait the API asked for (Retry-After, RateLimit-Reset), whatever resource asks.
//
// The budget lives in memory; what must survive a restart (the waits) is recorded by the
// callers (TechnicalToken status) and given back with Restore.
package budget

import (
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultPerHostPerMinute is the default budget per API host of the manager's prober: its
// share of the address budget (1000 requests/min per IP on API Entreprise and API
// Particulier; Démarches Numériques counts per token) that it shares with the gateway's
// replicas (the gateway's --prober-share-per-minute, which must equal it). A vendor has a
// handful of technical tokens, each probed every few minutes: 60 a minute is ample.
const DefaultPerHostPerMinute = 60

// DefaultPerTokenPerMinute is the default budget per token: well under the smallest
// per-token limit (API Entreprise 250/min; Démarches Numériques 400/min; API Particulier
// 20/s), so that no number of resources holding one token, nor any loop of edits, makes
// jeton's probes exceed it.
const DefaultPerTokenPerMinute = 60

// InFlightRetry is how long a request for a token that already has one in flight waits
// before asking again.
const InFlightRetry = 500 * time.Millisecond

// Options tune a Budget. Zero values take the defaults.
type Options struct {
	// PerHostPerMinute is the steady number of requests per minute allowed per API host,
	// all tokens and all senders together. Default DefaultPerHostPerMinute.
	PerHostPerMinute int
	// HostBurst is the burst allowed per host above the steady rate. Default 10.
	HostBurst int
	// PerTokenPerMinute is the steady number of requests per minute allowed per token,
	// whatever asks, with a burst of 2. Default DefaultPerTokenPerMinute.
	PerTokenPerMinute int
	// BaseBackoff is the host-wide wait after a first 429 without a longer Retry-After; it
	// doubles on each further 429 in a row. Default 5s.
	BaseBackoff time.Duration
	// MaxBackoff caps the exponential backoff. Default 15m.
	MaxBackoff time.Duration
}

func (o Options) withDefaults() Options {
	if o.PerHostPerMinute <= 0 {
		o.PerHostPerMinute = DefaultPerHostPerMinute
	}
	if o.HostBurst <= 0 {
		o.HostBurst = 10
	}
	if o.PerTokenPerMinute <= 0 {
		o.PerTokenPerMinute = DefaultPerTokenPerMinute
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = 5 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 15 * time.Minute
	}
	return o
}

// Budget admits requests; safe for concurrent use.
type Budget struct {
	opts   Options
	mu     sync.Mutex
	hosts  map[string]*hostState
	tokens map[string]*tokenState
	// prunedAt is the number of token entries after the last prune: entries of tokens no
	// longer held nor in flight are dropped when the map has doubled since.
	prunedAt int
}

type hostState struct {
	notBefore time.Time
	strikes   int // 429s in a row
	limiter   *rate.Limiter
}

type tokenState struct {
	notBefore time.Time
	inFlight  bool
	limiter   *rate.Limiter
}

// tokenBurst is the burst per token: a probe and an on-demand one close together.
const tokenBurst = 2

// New returns an empty budget.
func New(opts Options) *Budget {
	return &Budget{opts: opts.withDefaults(), hosts: map[string]*hostState{}, tokens: map[string]*tokenState{}}
}

// PerHostPerMinute is the budget per API host in force.
func (b *Budget) PerHostPerMinute() int { return b.opts.PerHostPerMinute }

func (b *Budget) host(h string) *hostState {
	s := b.hosts[h]
	if s == nil {
		perSecond := rate.Limit(float64(b.opts.PerHostPerMinute) / 60)
		s = &hostState{limiter: rate.NewLimiter(perSecond, b.opts.HostBurst)}
		b.hosts[h] = s
	}
	return s
}

func (b *Budget) token(fp string) *tokenState {
	s := b.tokens[fp]
	if s == nil {
		s = &tokenState{limiter: rate.NewLimiter(rate.Limit(float64(b.opts.PerTokenPerMinute)/60), tokenBurst)}
		b.tokens[fp] = s
	}
	return s
}

// NotBefore returns the earliest time a request with token fp may go to host (zero: now),
// as the waits last seen allow; the host rate is not counted.
func (b *Budget) NotBefore(host, fp string, now time.Time) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.notBefore(host, fp, now)
}

func (b *Budget) notBefore(host, fp string, now time.Time) time.Time {
	var t time.Time
	if s := b.tokens[fp]; s != nil {
		t = s.notBefore
	}
	if s := b.hosts[host]; s != nil && s.notBefore.After(t) {
		t = s.notBefore
	}
	if !t.After(now) {
		return time.Time{}
	}
	return t
}

// Admit asks to send one request with token fp to host now. It returns how long to wait
// before asking again, or 0 and a release: the request may go, it has taken a slot of the
// host's rate and is the token's one request in flight until release is called (once the
// answer has been given to Observe, or the request given up).
func (b *Budget) Admit(host, fp string, now time.Time) (wait time.Duration, release func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if nb := b.notBefore(host, fp, now); !nb.IsZero() {
		return nb.Sub(now), nil
	}
	t := b.tokens[fp]
	if t != nil && t.inFlight {
		return InFlightRetry, nil
	}
	b.pruneLocked(now)
	t = b.token(fp)
	// Both slots or neither: a slot taken and given back is not spent.
	tr := t.limiter.ReserveN(now, 1)
	if d := tr.DelayFrom(now); d > 0 {
		tr.CancelAt(now)
		return d, nil
	}
	hr := b.host(host).limiter.ReserveN(now, 1)
	if d := hr.DelayFrom(now); d > 0 {
		// Give the slots back: the caller comes back after d and asks again.
		hr.CancelAt(now)
		tr.CancelAt(now)
		return d, nil
	}
	t.inFlight = true
	var once sync.Once
	return 0, func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			t.inFlight = false
		})
	}
}

// Answer is what an API said about its limits.
type Answer struct {
	// Status is the HTTP status; 0 when no answer came (a network error).
	Status int
	// RetryAt is the time the API asked to wait for (Retry-After, RateLimit-Reset); zero
	// when it asked for none.
	RetryAt time.Time
	// At is when the answer came.
	At time.Time
}

// Hold is how long requests are held after an answer.
type Hold struct {
	// Token: no request with this token before (zero: none held).
	Token time.Time
	// Host: no request to this host, with any token, before (zero: none held).
	Host time.Time
}

// Observe records the rate-limit information of an answer to a request with token fp sent
// to host, and returns the holds in force after it. A 429 holds the whole host with an
// exponential backoff (and at least its Retry-After); a wait asked on another status
// (RateLimit-Remaining: 0) holds only the token.
func (b *Budget) Observe(host, fp string, a Answer) Hold {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.host(host)
	wait := a.RetryAt
	if a.Status == http.StatusTooManyRequests {
		s.strikes++
		backoff := b.opts.BaseBackoff << min(s.strikes-1, 20)
		if backoff > b.opts.MaxBackoff || backoff <= 0 {
			backoff = b.opts.MaxBackoff
		}
		if w := a.At.Add(backoff); w.After(wait) {
			wait = w
		}
		if wait.After(s.notBefore) {
			s.notBefore = wait
		}
	} else if a.Status != 0 {
		s.strikes = 0
	}
	// An answer that asks no wait creates no token entry: the gateway observes every
	// answer of every token, and memory must not grow with them.
	b.pruneLocked(a.At)
	t := b.tokens[fp]
	if wait.After(a.At) {
		if t == nil {
			t = b.token(fp)
		}
		if wait.After(t.notBefore) {
			t.notBefore = wait
		}
	}
	var h Hold
	if t != nil && t.notBefore.After(a.At) {
		h.Token = t.notBefore
	}
	if s.notBefore.After(a.At) {
		h.Host = s.notBefore
	}
	return h
}

// Restore gives back holds recorded before a restart (or by another replica): no request
// with token fp before tokenUntil, none to host before hostUntil. Zero times hold nothing.
// Holds only grow: a restored hold never shortens one already known.
func (b *Budget) Restore(host, fp string, h Hold) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !h.Host.IsZero() && host != "" {
		if s := b.host(host); h.Host.After(s.notBefore) {
			s.notBefore = h.Host
		}
	}
	if !h.Token.IsZero() && fp != "" {
		if t := b.token(fp); h.Token.After(t.notBefore) {
			t.notBefore = h.Token
		}
	}
}

// pruneLocked drops the entries of tokens neither held, in flight nor short of their rate
// once the map has
// doubled since the last prune, so that tokens seen once do not stay forever.
func (b *Budget) pruneLocked(now time.Time) {
	if len(b.tokens) < 2*max(b.prunedAt, 64) {
		return
	}
	for fp, t := range b.tokens {
		if !t.inFlight && !t.notBefore.After(now) && t.limiter.TokensAt(now) >= tokenBurst {
			delete(b.tokens, fp)
		}
	}
	b.prunedAt = len(b.tokens)
}
