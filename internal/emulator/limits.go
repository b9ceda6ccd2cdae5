package emulator

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// Limits is one API's rate limits: PerToken requests per TokenPeriod for each token, and
// PerIP requests per IPPeriod for each client address (PerIP 0: no per-address limit).
// The emulator counts them in fixed windows aligned on the clock, as Rack::Attack does.
type Limits struct {
	PerToken    int
	TokenPeriod time.Duration
	PerIP       int
	IPPeriod    time.Duration
}

// defaultLimits are the real ones (DESIGN.md section 1; siade's per-token groups in
// commons/data/throttle.yml: json_resources_entreprise 250/60s, json_resources_particulier
// 20/1s; Démarches Numériques config/initializers/rack_attack.rb 400/min).
var defaultLimits = map[jetonv1alpha1.API]Limits{
	jetonv1alpha1.APIEntreprise:       {PerToken: 250, TokenPeriod: time.Minute, PerIP: 1000, IPPeriod: time.Minute},
	jetonv1alpha1.APIParticulier:      {PerToken: 20, TokenPeriod: time.Second, PerIP: 1000, IPPeriod: time.Minute},
	jetonv1alpha1.DemarchesNumeriques: {PerToken: 400, TokenPeriod: time.Minute},
}

// DefaultLimits returns the real limits of api (the emulator's default).
func DefaultLimits(api jetonv1alpha1.API) Limits { return defaultLimits[api] }

// WithLimits replaces api's limits, e.g. scaled down for a short flood test. Zero fields
// keep the real value, so WithLimits(APIEntreprise, Limits{PerToken: 60, PerIP: 240})
// means 60/min per token and 240/min per address.
func WithLimits(api jetonv1alpha1.API, l Limits) Option {
	return func(s *Server) {
		d := s.limits[api]
		if l.PerToken > 0 {
			d.PerToken = l.PerToken
		}
		if l.TokenPeriod > 0 {
			d.TokenPeriod = l.TokenPeriod
		}
		if l.PerIP > 0 {
			d.PerIP = l.PerIP
			if d.IPPeriod == 0 {
				d.IPPeriod = time.Minute
			}
		}
		if l.IPPeriod > 0 {
			d.IPPeriod = l.IPPeriod
		}
		s.limits[api] = d
	}
}

// ParseLimits reads a limit setting as cmd/emulator's --limit flag takes it:
// API=N/PERIOD[,M/PERIOD], the per-token limit then the per-address one, e.g.
// "APIEntreprise=60/1m,240/1m" or "APIParticulier=5/1s".
func ParseLimits(v string) (jetonv1alpha1.API, Limits, error) {
	name, spec, ok := strings.Cut(v, "=")
	api := jetonv1alpha1.API(name)
	if _, known := defaultLimits[api]; !ok || !known {
		return "", Limits{}, fmt.Errorf("limit %q: want API=N/PERIOD[,M/PERIOD] with API one of %s, %s, %s", v,
			jetonv1alpha1.APIEntreprise, jetonv1alpha1.APIParticulier, jetonv1alpha1.DemarchesNumeriques)
	}
	tokenSpec, ipSpec, hasIP := strings.Cut(spec, ",")
	var l Limits
	var err error
	if l.PerToken, l.TokenPeriod, err = parseRate(tokenSpec); err != nil {
		return "", Limits{}, fmt.Errorf("limit %q, per token: %w", v, err)
	}
	if hasIP {
		if l.PerIP, l.IPPeriod, err = parseRate(ipSpec); err != nil {
			return "", Limits{}, fmt.Errorf("limit %q, per address: %w", v, err)
		}
	}
	return api, l, nil
}

func parseRate(s string) (int, time.Duration, error) {
	n, p, ok := strings.Cut(s, "/")
	count, err := strconv.Atoi(n)
	if !ok || err != nil || count < 1 {
		return 0, 0, fmt.Errorf("%q: want N/PERIOD with N a positive count, e.g. 60/1m", s)
	}
	period, err := time.ParseDuration(p)
	if err != nil || period < time.Second || period%time.Second != 0 {
		return 0, 0, fmt.Errorf("%q: the period must be whole seconds, at least 1s (e.g. 1s, 1m)", s)
	}
	return count, period, nil
}

// maxLoggedArrivals bounds the per-address arrival log (MaxInWindowPerIP).
const maxLoggedArrivals = 100000

// logArrival records that a request for api came from the request's address; the
// caller holds s.mu.
func (s *Server) logArrival(api jetonv1alpha1.API, remote string, now time.Time) {
	key := string(api) + "|" + remote
	l := append(s.ipLog[key], now)
	if len(l) >= 2*maxLoggedArrivals { // trim in bulk, as the token logs do
		l = slices.Delete(l, 0, len(l)-maxLoggedArrivals)
	}
	s.ipLog[key] = l
}

// maxInWindow returns the most times that fall in any window [t, t+d): the sliding
// count a limiter of d would have seen at its worst moment.
func maxInWindow(times []time.Time, d time.Duration) int {
	times = slices.Clone(times)
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	best, lo := 0, 0
	for hi := range times {
		for times[hi].Sub(times[lo]) >= d {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// MaxInWindow returns the most requests the token with this id received in any sliding
// window of length d (over its last 10000 requests), whatever their answers. Compare it
// with the token's limit to prove a client of the emulator stayed under it.
func (s *Server) MaxInWindow(id string, d time.Duration) int {
	s.mu.Lock()
	t, ok := s.tokens[id]
	var times []time.Time
	if ok {
		for _, q := range t.requests[max(0, len(t.requests)-maxLoggedRequests):] {
			times = append(times, q.Time)
		}
	}
	s.mu.Unlock()
	return maxInWindow(times, d)
}

// MaxInWindowPerIP returns, for each client address that called api, the most requests
// it sent in any sliding window of length d (over its last 100000 requests; every
// request counts, with or without a valid token, /pings included).
func (s *Server) MaxInWindowPerIP(api jetonv1alpha1.API, d time.Duration) map[netip.Addr]int {
	prefix := string(api) + "|"
	s.mu.Lock()
	logs := map[netip.Addr][]time.Time{}
	for key, l := range s.ipLog {
		if rest, ok := strings.CutPrefix(key, prefix); ok {
			a, _ := netip.ParseAddr(rest) // unparsable addresses are kept as the zero Addr
			logs[a] = append(logs[a], l...)
		}
	}
	s.mu.Unlock()
	out := make(map[netip.Addr]int, len(logs))
	for a, l := range logs {
		out[a] = maxInWindow(l, d)
	}
	return out
}

// TooManyRequests returns how many 429s the emulator answered to the token with this
// id, whatever caused them (its limit, the address's, or a RateLimited behaviour).
func (s *Server) TooManyRequests(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[id]; ok {
		return t.tooMany
	}
	return 0
}

// TotalTooManyRequests returns how many 429s the emulator answered in all, to every
// token, unknown credentials and /pings included.
func (s *Server) TotalTooManyRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tooMany
}
