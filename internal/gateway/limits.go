package gateway

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/budget"
	"github.com/jeton-dev/jeton/internal/probe"
)

// The gateway's limits: what keeps all of jeton's traffic (every gateway replica and the
// manager's prober) under the vendor's limits, and one flooding client from starving the
// others. docs/gateway.md, "Limits", explains the design and its arithmetic.

// Admit refuses with ReasonThrottled (this token over its budget, or this replica's budget
// for the host spent) or ReasonUpstreamHeld (the API asked to wait: a 429, Retry-After or
// RateLimit-Remaining: 0), the reason label of jeton_gateway_refusals_total.

// Defaults of LimitsOptions, the gateway's --address-budget-per-minute and
// --prober-share-per-minute.
const (
	DefaultAddressBudgetPerMinute = 850
	DefaultProberSharePerMinute   = budget.DefaultPerHostPerMinute
)

// Limit is a number of requests per period.
type Limit struct {
	Requests int
	Per      time.Duration
}

func (l Limit) String() string { return fmt.Sprintf("%d/%s", l.Requests, shortDuration(l.Per)) }

// perSecond is the limit's mean rate.
func (l Limit) perSecond() float64 { return float64(l.Requests) / l.Per.Seconds() }

// PublishedLimits are the per-token limits the APIs publish and enforce (Rack::Attack,
// fixed windows keyed by the token):
//   - API Entreprise: 250/min on the JSON endpoints (datagouv/apistration
//     commons/data/throttle.yml, json_resources_entreprise; some document endpoints allow
//     fewer, their own 429s hold the token);
//   - API Particulier: 20/s (same file, json_resources_particulier; v2:
//     siade/config/initializers/rack_attack.rb, "API Particulier V2 global limit");
//   - Démarches Numériques: 400/min on /api/v2/graphql, keyed by the Authorization header
//     (demarches-simplifiees.fr config/initializers/rack_attack.rb).
//
// The per-address limit (1000/min per IP on API Entreprise and API Particulier) is in the
// vendor onboarding page, not in the backends' code (DESIGN §1).
var PublishedLimits = map[jetonv1alpha1.API]Limit{
	jetonv1alpha1.APIEntreprise:       {Requests: 250, Per: time.Minute},
	jetonv1alpha1.APIParticulier:      {Requests: 20, Per: time.Second},
	jetonv1alpha1.DemarchesNumeriques: {Requests: 400, Per: time.Minute},
}

// AddressLimitPerMinute is the APIs' per-address limit: 1000 requests/min per IP on API
// Entreprise and API Particulier; breaching it bans the vendor's address for 12 hours.
const AddressLimitPerMinute = 1000

// PerTokenLimits lowers the per-token limits of some APIs (a contract that says less than
// the published limits, or tests). APIs absent take PublishedLimits.
type PerTokenLimits map[jetonv1alpha1.API]Limit

// minPerTokenRequests is the fewest requests per period a per-token limit may say: each
// replica sends at least one request per period (a bucket's burst), so a limit of L per
// period holds for up to L replicas only.
const minPerTokenRequests = 10

// maxPerTokenLimitsLen bounds what ParsePerTokenLimits reads (three APIs fit in far less).
const maxPerTokenLimitsLen = 256

// ParsePerTokenLimits parses --per-token-limits: comma-separated API=requests/period, e.g.
// "APIEntreprise=100/1m,APIParticulier=10/1s" (periods as time.ParseDuration reads them).
// It refuses unknown APIs, an API given twice, and limits above the published ones: a
// higher rate, or more requests in the published period. Empty: the published limits.
func ParsePerTokenLimits(s string) (PerTokenLimits, error) {
	out := PerTokenLimits{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	if len(s) > maxPerTokenLimitsLen {
		return nil, fmt.Errorf("per-token limits: longer than %d characters", maxPerTokenLimitsLen)
	}
	for _, item := range strings.Split(s, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return nil, fmt.Errorf("per-token limits: %q is not API=requests/period", item)
		}
		api := jetonv1alpha1.API(strings.TrimSpace(name))
		published, known := PublishedLimits[api]
		if !known {
			return nil, fmt.Errorf("per-token limits: unknown API %q (APIEntreprise, APIParticulier or DemarchesNumeriques)", api)
		}
		if _, dup := out[api]; dup {
			return nil, fmt.Errorf("per-token limits: %s given twice", api)
		}
		reqs, per, ok := strings.Cut(strings.TrimSpace(value), "/")
		if !ok {
			return nil, fmt.Errorf("per-token limits: %s: %q is not requests/period (e.g. 100/1m)", api, value)
		}
		n, err := strconv.Atoi(strings.TrimSpace(reqs))
		if err != nil || n < minPerTokenRequests {
			return nil, fmt.Errorf("per-token limits: %s: the number of requests must be an integer of at least %d "+
				"(say a small limit over a longer period, e.g. 30/1m)", api, minPerTokenRequests)
		}
		d, err := time.ParseDuration(strings.TrimSpace(per))
		if err != nil || d < time.Second || d > time.Hour {
			return nil, fmt.Errorf("per-token limits: %s: the period must be a duration from 1s to 1h (e.g. 1m)", api)
		}
		l := Limit{Requests: n, Per: d}
		// The mean rate decides; the buckets also keep to the published limit in its own
		// window (600/1m on API Particulier never means 600 in one second).
		if l.perSecond() > published.perSecond() {
			return nil, fmt.Errorf("per-token limits: %s=%s is above the published limit %s", api, l, published)
		}
		out[api] = l
	}
	return out, nil
}

// LimitsOptions configure the gateway's limits.
type LimitsOptions struct {
	// AddressBudgetPerMinute is what all of jeton (the prober and every gateway replica)
	// sends to one API host per minute, bursts aside (--address-budget-per-minute, 850).
	// Zero takes the default.
	AddressBudgetPerMinute int
	// ProberSharePerMinute is the part of it kept for the manager's probes: the manager's
	// --api-host-budget-per-minute (60). Zero takes the default (the prober always runs).
	ProberSharePerMinute int
	// Replicas is the initial number of replicas the budgets are split among (at least 1).
	Replicas int
	// PerToken lowers per-token limits (ParsePerTokenLimits); nil: the published limits.
	PerToken PerTokenLimits
}

// The shares of a limit the gateway uses: it sends at most sendShare of each limit on
// average, with a burst of burstShare, split among the replicas.
const (
	sendShare  = 0.85
	burstShare = 0.10
)

const (
	// activeFor: a token that asked within this long is active; longer idle, its state is
	// dropped (its next request finds a full bucket, which is safe: no request of it is
	// left in any window of the APIs, the longest being a minute).
	activeFor = time.Minute
	// fairEvery is how often a host's fair share is recomputed from the tokens' demand.
	fairEvery = time.Second
	// fairEveryStarved is how often when the host's bucket is empty: new flooders are seen
	// within a fraction of a second.
	fairEveryStarved = 100 * time.Millisecond
	// fairHeadroom is the part of a host's budget the heavy tokens share: the rest keeps the
	// host's bucket refilling, so a token under its fair share finds a slot.
	fairHeadroom = 0.9
	// heavyFactor: a token asking more than heavyFactor times the fair share is held to it.
	heavyFactor = 2
	// hostReserveDivisor: a fifth of a host's burst is kept for the tokens under their
	// fair share.
	hostReserveDivisor = 5
	// demandTau is the time constant of a token's demand estimate (an exponentially decayed
	// count of its requests, admitted or not).
	demandTau = 30 * time.Second
	// demandWarmup is the least age a token's demand estimate assumes.
	demandWarmup = 10 * time.Second
	// downscaleDelay is how long a lower replica count waits before it raises this replica's
	// shares: longer than any API window, so the requests a departed replica sent are out of
	// every window before the survivors send more (EndpointSlices may drop a replica before
	// its last requests are out).
	downscaleDelay = time.Minute
)

// Limits admits the gateway's requests under the vendor's limits; safe for concurrent use.
// State is per API host (a token bucket for this replica's share of the address budget,
// the fair share) and per token (a token bucket, its demand), dropped a minute after a
// token's last request; no goroutine.
type Limits struct {
	opts     LimitsOptions
	perToken map[jetonv1alpha1.API]Limit
	// holds keeps the waits the APIs ask for, by the prober's rules (budget.Budget.Observe:
	// a 429 holds the token and the whole host with an exponential backoff; Retry-After and
	// RateLimit-Reset honoured). Only its holds are used, not its rates.
	holds *budget.Budget

	mu       sync.Mutex
	replicas int // in force
	// wantReplicas is the last SetReplicas; wantSince is when Admit first saw it (zero: not
	// yet), the start of a downscale's delay.
	wantReplicas int
	wantSince    time.Time
	// gen changes whenever tokens' buckets must be recomputed (a rescale, a new fair
	// share); each token catches up lazily, on its next request.
	gen uint64
	// lastNow is the latest time seen (monotonic).
	lastNow time.Time
	hosts   map[string]*hostLimits
	tokens  map[string]*tokenLimits
	// demands is refreshFair's buffer, kept between calls.
	demands []float64
	// routes are the per-token buckets of routes with their own limit (routelimits.go), by
	// fingerprint and route group; routesPruned is when they were last pruned.
	routes       map[string]*routeLimits
	routesPruned time.Time
}

type hostLimits struct {
	limiter *rate.Limiter
	// fairPerSecond is the rate a heavy token (one asking more) may use here: the water
	// level of a max-min fair split of fairHeadroom of the host's rate; +Inf: no contention.
	fairPerSecond float64
	fairAt        time.Time
}

type tokenLimits struct {
	limiter           *rate.Limiter
	api               jetonv1alpha1.API
	host              string
	firstAsk, lastAsk time.Time
	// demand is the decayed count of requests asked (time constant demandTau) at lastAsk.
	demand float64
	// heavy: it asked more than heavyFactor times the host's fair share when last
	// refreshed; it is held to the fair share.
	heavy bool
	gen   uint64
}

// NewLimits returns empty limits.
func NewLimits(o LimitsOptions) *Limits {
	if o.AddressBudgetPerMinute <= 0 {
		o.AddressBudgetPerMinute = DefaultAddressBudgetPerMinute
	}
	if o.ProberSharePerMinute <= 0 {
		o.ProberSharePerMinute = DefaultProberSharePerMinute
	}
	o.Replicas = max(o.Replicas, 1)
	perToken := map[jetonv1alpha1.API]Limit{}
	for api, l := range PublishedLimits {
		perToken[api] = l
	}
	for api, l := range o.PerToken {
		if _, known := perToken[api]; known && l.Requests > 0 && l.Per > 0 {
			perToken[api] = l
		}
	}
	return &Limits{
		opts:         o,
		perToken:     perToken,
		holds:        budget.New(budget.Options{}),
		replicas:     o.Replicas,
		wantReplicas: o.Replicas,
		hosts:        map[string]*hostLimits{},
		tokens:       map[string]*tokenLimits{},
		routes:       map[string]*routeLimits{},
	}
}

// SetReplicas sets the number of replicas the budgets are split among: the larger of
// --replicas and the ready endpoints of the gateway's Service (ReadyEndpoints). A higher
// number applies at the next request; a lower one a minute after (downscaleDelay), so
// that a departed replica's last requests are out of every window first. Buckets keep
// their state.
func (l *Limits) SetReplicas(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n = max(n, 1)
	if n != l.wantReplicas {
		l.wantReplicas, l.wantSince = n, time.Time{}
	}
}

// Replicas is the number of replicas the budgets are split among now (metric
// jeton_gateway_ready_replicas).
func (l *Limits) Replicas() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.replicas
}

// monotonic keeps the times the buckets see in order: concurrent callers read the clock
// before taking the lock, and a rate.Limiter given an earlier time than its last counts
// the time in between twice, as if more had been earned.
func (l *Limits) monotonic(now time.Time) time.Time {
	if now.Before(l.lastNow) {
		return l.lastNow
	}
	l.lastNow = now
	return now
}

// applyReplicas brings the replica count in force to SetReplicas' value when due.
func (l *Limits) applyReplicas(now time.Time) {
	want := l.wantReplicas
	if want == l.replicas {
		return
	}
	if want < l.replicas {
		if l.wantSince.IsZero() {
			l.wantSince = now
		}
		if now.Sub(l.wantSince) < downscaleDelay {
			return
		}
	}
	l.replicas = want
	l.gen++
	for _, h := range l.hosts {
		r, b := l.hostBucket()
		h.limiter.SetLimitAt(now, r)
		h.limiter.SetBurstAt(now, b)
		h.fairAt = time.Time{} // recompute the fair share at once
	}
}

// hostBucket is this replica's bucket for one host: the address budget less the prober's
// share, split among the replicas, with a burst of about 10% of it.
func (l *Limits) hostBucket() (rate.Limit, int) {
	perMinute := float64(max(l.opts.AddressBudgetPerMinute-l.opts.ProberSharePerMinute, 1)) / float64(l.replicas)
	return rate.Limit(perMinute / 60), max(1, int(burstShare*perMinute))
}

// tokenBucket is this replica's bucket for a token of api: 85% of its limit with a burst
// of about 10%, split among the replicas, under both the limit in force and the published
// one. A bucket of rate r and burst b admits at most floor(b + r·T) requests in any window
// T, so each replica keeps to floor(L/N) per window and N replicas to L.
func (l *Limits) tokenBucket(api jetonv1alpha1.API) (rate.Limit, int) {
	published, ok := PublishedLimits[api]
	if !ok {
		// Unknown API (the caller's bug): the strictest published rate.
		published = PublishedLimits[jetonv1alpha1.APIEntreprise]
	}
	inForce, ok := l.perToken[api]
	if !ok {
		inForce = published
	}
	r1, b1 := splitLimit(inForce, l.replicas)
	r2, b2 := splitLimit(published, l.replicas)
	return min(r1, r2), min(b1, b2)
}

// splitLimit is one replica's share of a limit among n: rate and burst such that
// floor(burst + rate·Per) <= floor(Requests/n).
func splitLimit(lim Limit, n int) (rate.Limit, int) {
	perReplica := float64(lim.Requests) / float64(n)
	burst := max(1, int(burstShare*perReplica))
	perWindow := sendShare * perReplica
	// Keep burst + rate·Per strictly under floor(perReplica)+1: a burst of at least 1 on a
	// small limit must come out of the rate.
	if ceiling := math.Floor(perReplica) + 1 - float64(burst) - 1e-3; perWindow > ceiling {
		perWindow = ceiling
	}
	if perWindow <= 0 {
		// More replicas than requests per window: no split by independent buckets holds
		// it (each may send one request per window); send as little as a bucket can.
		// ParsePerTokenLimits asks for at least 10 requests per period, the APIs publish 20
		// or more.
		perWindow = float64(lim.Requests) / float64(n) / 2
	}
	return rate.Limit(perWindow / lim.Per.Seconds()), burst
}

func (l *Limits) host(host string) *hostLimits {
	h := l.hosts[host]
	if h == nil {
		r, b := l.hostBucket()
		h = &hostLimits{limiter: rate.NewLimiter(r, b), fairPerSecond: math.Inf(1)}
		l.hosts[host] = h
	}
	return h
}

// ask records a request of token fp and returns its state.
func (l *Limits) ask(api jetonv1alpha1.API, host, fp string, now time.Time) *tokenLimits {
	t := l.tokens[fp]
	if t == nil {
		r, b := l.tokenBucket(api)
		t = &tokenLimits{limiter: rate.NewLimiter(r, b), api: api, host: host, firstAsk: now, lastAsk: now, gen: l.gen}
		l.tokens[fp] = t
	}
	if t.api != api {
		t.api, t.gen = api, l.gen-1 // recompute its bucket below
	}
	t.host = host
	t.demand = t.demandAt(now) + 1
	if now.After(t.lastAsk) {
		t.lastAsk = now
	}
	return t
}

// demandAt is the token's decayed request count at now.
func (t *tokenLimits) demandAt(now time.Time) float64 {
	dt := now.Sub(t.lastAsk)
	if dt <= 0 {
		return t.demand
	}
	return t.demand * math.Exp(-dt.Seconds()/demandTau.Seconds())
}

// demandPerSecond estimates the token's request rate (asked, admitted or not). A steady
// rate λ gives a decayed count of λ·τ·(1−e^(−age/τ)) after age: dividing by that, not by
// τ, sees a new flooder within a second; the age counts at least demandWarmup, so that a
// new token's first few requests do not read as a flood.
func (t *tokenLimits) demandPerSecond(now time.Time) float64 {
	age := max(now.Sub(t.firstAsk), demandWarmup).Seconds()
	tau := demandTau.Seconds()
	return t.demandAt(now) / (tau * -math.Expm1(-age/tau))
}

// refreshFair recomputes the host's fair share: the max-min fair split of fairHeadroom of
// its rate among the tokens active there, by their demand. It also drops the state of
// tokens idle for activeFor.
func (l *Limits) refreshFair(host string, h *hostLimits, now time.Time) {
	h.fairAt = now
	demands := l.demands[:0]
	defer func() { l.demands = demands[:0] }()
	for fp, t := range l.tokens {
		if now.Sub(t.lastAsk) >= activeFor {
			delete(l.tokens, fp)
			continue
		}
		if t.host == host {
			demands = append(demands, t.demandPerSecond(now))
		}
	}
	fair := waterLevel(demands, fairHeadroom*float64(h.limiter.Limit()))
	if fair != h.fairPerSecond || !math.IsInf(fair, 1) {
		// Under contention, demands move even when the level does not: reclassify.
		h.fairPerSecond = fair
		l.gen++
	}
}

// waterLevel is the max-min fair level of capacity among demands: the rate c such that
// the demands under c are met and the others get c each, all together capacity; +Inf when
// every demand fits.
func waterLevel(demands []float64, capacity float64) float64 {
	slices.Sort(demands)
	left := capacity
	for i, d := range demands {
		rest := float64(len(demands) - i)
		if d*rest > left {
			return left / rest
		}
		left -= d
	}
	return math.Inf(1)
}

// refreshToken brings the token's bucket up to the replica count and fair share in force:
// a token asking more than the fair share is held to it, the others keep their own limit.
func (l *Limits) refreshToken(t *tokenLimits, h *hostLimits, now time.Time) {
	if t.gen == l.gen {
		return
	}
	t.gen = l.gen
	r, b := l.tokenBucket(t.api)
	// Heavy: asking more than twice the fair share. The factor 2 keeps a token under its
	// fair share out of it when its demand estimate wavers (a few requests a minute on
	// each replica); a token between once and twice its share takes at most twice it,
	// and the host's bucket still bounds everything.
	t.heavy = t.demandPerSecond(now) > heavyFactor*h.fairPerSecond
	if t.heavy {
		// Held to the fair share, with no burst: refused by the host's bucket, a token
		// keeps its own slots, and a stock of them would let it take every slot the host
		// frees.
		r, b = min(r, rate.Limit(h.fairPerSecond)), 1
	}
	if t.limiter.Limit() != r {
		t.limiter.SetLimitAt(now, r)
	}
	if t.limiter.Burst() != b {
		t.limiter.SetBurstAt(now, b)
	}
}

// Admit asks to send one request with the token whose fingerprint is fp
// (token.Fingerprint) for api to host (publicapi.CanonicalHost) now. ok: go (the slots are
// taken). Otherwise wait is the Retry-After to give the client and reason is
// ReasonThrottled (this client over its budget, or the host's budget spent) or
// ReasonUpstreamHeld (an API 429 / Retry-After holds the token or the host).
func (l *Limits) Admit(api jetonv1alpha1.API, host, fp string, now time.Time) (ok bool, wait time.Duration, reason string) {
	if nb := l.holds.NotBefore(host, fp, now); !nb.IsZero() {
		return false, nb.Sub(now), ReasonUpstreamHeld
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now = l.monotonic(now)
	l.applyReplicas(now)
	h := l.host(host)
	t := l.ask(api, host, fp, now)
	if since := now.Sub(h.fairAt); since >= fairEvery || (since >= fairEveryStarved && h.limiter.TokensAt(now) < 1) {
		l.refreshFair(host, h, now)
	}
	l.refreshToken(t, h, now)
	// Both slots or neither: a slot taken and given back is not spent.
	tr := t.limiter.ReserveN(now, 1)
	if d := tr.DelayFrom(now); d > 0 {
		tr.CancelAt(now)
		return false, d, ReasonThrottled
	}
	if t.heavy {
		// A heavy token may not take the host's last slots: they are kept for the tokens
		// under their fair share, which would otherwise race the flooders for each slot the
		// host frees.
		need := 1 + float64(h.limiter.Burst()/hostReserveDivisor)
		if avail := h.limiter.TokensAt(now); avail < need {
			tr.CancelAt(now)
			wait := time.Duration((need - avail) / float64(h.limiter.Limit()) * float64(time.Second))
			return false, max(wait, time.Millisecond), ReasonThrottled
		}
	}
	hr := h.limiter.ReserveN(now, 1)
	if d := hr.DelayFrom(now); d > 0 {
		hr.CancelAt(now)
		tr.CancelAt(now)
		return false, d, ReasonThrottled
	}
	return true, 0, ""
}

// Observe records an upstream answer's rate-limit information (status, headers) for a
// request with token fp to host, by the prober's rules: Retry-After, or
// RateLimit-Remaining: 0 with RateLimit-Reset (probe.RetryAt), holds the token; a 429 also
// holds the host, with an exponential backoff, at least its Retry-After. status 0: no
// answer came. Only parsed numbers are kept from the headers.
func (l *Limits) Observe(host, fp string, status int, h http.Header, now time.Time) {
	l.holds.Observe(host, fp, budget.Answer{Status: status, RetryAt: probe.RetryAt(h, now), At: now})
}

// HostRemaining is the share (0..1) of this replica's host budget available now (gauge
// jeton_gateway_budget_remaining_ratio); 1 for a host not used yet.
func (l *Limits) HostRemaining(host string, now time.Time) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	now = l.monotonic(now)
	l.applyReplicas(now)
	h := l.hosts[host]
	if h == nil {
		return 1
	}
	return min(1, max(0, h.limiter.TokensAt(now)/float64(h.limiter.Burst())))
}

// shortDuration spells 1m0s as 1m and 1h0m0s as 1h.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
