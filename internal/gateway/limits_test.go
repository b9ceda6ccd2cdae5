package gateway

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

const (
	apiE  = jetonv1alpha1.APIEntreprise
	apiP  = jetonv1alpha1.APIParticulier
	apiDN = jetonv1alpha1.DemarchesNumeriques
)

// t0 is the virtual clock's start, off any minute boundary, as the APIs' fixed windows are.
var t0 = time.Date(2026, 12, 7, 6, 0, 17, 123456789, time.UTC)

func TestParsePerTokenLimits(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    PerTokenLimits
		wantErr string
	}{
		{in: "", want: PerTokenLimits{}},
		{in: "  ", want: PerTokenLimits{}},
		{in: "APIEntreprise=100/1m", want: PerTokenLimits{apiE: {100, time.Minute}}},
		{in: "APIEntreprise=100/1m, APIParticulier=10/1s ,DemarchesNumeriques=400/1m",
			want: PerTokenLimits{apiE: {100, time.Minute}, apiP: {10, time.Second}, apiDN: {400, time.Minute}}},
		{in: "APIEntreprise=250/1m", want: PerTokenLimits{apiE: {250, time.Minute}}},
		{in: "APIEntreprise=250/60s", want: PerTokenLimits{apiE: {250, time.Minute}}},
		{in: "APIEntreprise=10/5s", want: PerTokenLimits{apiE: {10, 5 * time.Second}}},         // 120/min
		{in: "APIParticulier=600/1m", want: PerTokenLimits{apiP: {600, time.Minute}}},          // 10/s on average
		{in: "APIEntreprise=251/1m", wantErr: "above the published limit 250/1m"},              // one more
		{in: "APIEntreprise=25/5s", wantErr: "above the published limit"},                      // 300/min
		{in: "APIParticulier=21/1s", wantErr: "above the published limit 20/1s"},               //
		{in: "APIParticulier=1201/1m", wantErr: "above the published limit"},                   //
		{in: "DemarchesNumeriques=401/1m", wantErr: "above the published limit 400/1m"},        //
		{in: "APIEntreprise=100/1m,APIEntreprise=50/1m", wantErr: "APIEntreprise given twice"}, //
		{in: "Other=1/1m", wantErr: `unknown API "Other"`},
		{in: "apientreprise=1/1m", wantErr: "unknown API"},
		{in: "APIEntreprise", wantErr: "not API=requests/period"},
		{in: "APIEntreprise=100", wantErr: "not requests/period"},
		{in: "APIEntreprise=0/1m", wantErr: "at least 10"},
		{in: "APIEntreprise=-1/1m", wantErr: "at least 10"},
		{in: "APIEntreprise=9/1m", wantErr: "at least 10"},
		{in: "APIEntreprise=x/1m", wantErr: "at least 10"},
		{in: "APIEntreprise=10/0s", wantErr: "from 1s to 1h"},
		{in: "APIEntreprise=10/100ms", wantErr: "from 1s to 1h"},
		{in: "APIEntreprise=10/2h", wantErr: "from 1s to 1h"},
		{in: "APIEntreprise=10/minute", wantErr: "from 1s to 1h"},
		{in: "APIEntreprise=10/1m,", wantErr: "not API=requests/period"},
		{in: strings.Repeat("APIEntreprise=1/1m,", 20), wantErr: "longer than"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePerTokenLimits(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParsePerTokenLimits(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePerTokenLimits(%q): %v", tc.in, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("ParsePerTokenLimits(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

// TestBucketsKeepUnderTheLimits checks the arithmetic every guarantee rests on: a bucket of
// rate r and burst b admits at most floor(b + r·T) requests in any window T, so N replicas
// together send at most N·floor(b + r·Per) per window of each limit, which must not exceed
// it; and at least one request per window each (burst >= 1).
func TestBucketsKeepUnderTheLimits(t *testing.T) {
	lowered := []PerTokenLimits{nil,
		{apiE: {100, time.Minute}, apiP: {10, time.Second}, apiDN: {60, time.Minute}},
		{apiE: {20, time.Minute}, apiP: {600, time.Minute}, apiDN: {10, time.Second}},
	}
	for _, pt := range lowered {
		for n := 1; n <= 10; n++ {
			l := NewLimits(LimitsOptions{Replicas: n, PerToken: pt})
			for api, published := range PublishedLimits {
				r, b := l.tokenBucket(api)
				if b < 1 || r <= 0 {
					t.Fatalf("%v N=%d %s: bucket rate %v burst %d", pt, n, api, r, b)
				}
				limits := []Limit{published}
				if lim, ok := pt[api]; ok {
					limits = append(limits, lim)
				}
				for _, lim := range limits {
					perWindow := math.Floor(float64(b) + float64(r)*lim.Per.Seconds())
					if float64(n)*perWindow > float64(lim.Requests) {
						t.Errorf("%v N=%d %s: %d replicas × floor(%d + %.3f/s × %s) = %v > %s",
							pt, n, api, n, b, float64(r), lim.Per, float64(n)*perWindow, lim)
					}
				}
				// 85% of the limit in force, when the burst leaves room for it.
				inForce := published
				if lim, ok := pt[api]; ok && lim.perSecond() < published.perSecond() {
					inForce = lim
				}
				if want := sendShare * inForce.perSecond() / float64(n); float64(r) > want*1.0001 {
					t.Errorf("%v N=%d %s: rate %.3f/s above 85%% of the share %.3f/s", pt, n, api, float64(r), want)
				}
			}
			r, b := l.hostBucket()
			if got := float64(n) * (float64(r)*60 + float64(b)); got > DefaultAddressBudgetPerMinute-DefaultProberSharePerMinute+0.11*790 {
				t.Errorf("N=%d: host buckets admit %v a minute", n, got)
			}
		}
	}
}

// step is one event of an Admit/Observe scenario, at an offset from t0.
type step struct {
	at     time.Duration
	fp     string // default "a"
	host   string // default "entreprise.api.gouv.fr"
	status int    // > 0: Observe this answer instead of Admit
	header map[string]string
	// For Admit: the expected result. wait is compared within a second (t0 is not on one).
	ok     bool
	reason string
	wait   time.Duration
}

func TestAdmitObserve(t *testing.T) {
	epoch := func(d time.Duration) string { return strconv.FormatInt(t0.Add(d).Unix(), 10) }
	admit := func(at time.Duration, fp string) step { return step{at: at, fp: fp, ok: true} }
	held := func(at time.Duration, fp string, wait time.Duration) step {
		return step{at: at, fp: fp, reason: ReasonUpstreamHeld, wait: wait}
	}
	answer := func(at time.Duration, fp string, status int, h map[string]string) step {
		return step{at: at, fp: fp, status: status, header: h}
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"429 with Retry-After holds the token and the host for it", []step{
			admit(0, "a"),
			answer(0, "a", 429, map[string]string{"Retry-After": "32"}),
			held(time.Second, "a", 31*time.Second),
			held(time.Second, "b", 31*time.Second), // the host: any token
			held(31*time.Second, "a", time.Second),
			admit(32*time.Second, "a"),
			admit(32*time.Second, "b"),
		}},
		{"429 without Retry-After: host-wide backoff 5s, doubling", []step{
			admit(0, "a"),
			answer(0, "a", 429, nil),
			held(0, "b", 5*time.Second),
			admit(5*time.Second, "b"),
			answer(5*time.Second, "b", 429, nil), // a second in a row
			held(5*time.Second, "c", 10*time.Second),
			admit(15*time.Second, "c"),
			answer(15*time.Second, "c", 200, nil), // a success ends the streak
			admit(16*time.Second, "c"),
			answer(16*time.Second, "c", 429, nil),
			held(16*time.Second, "d", 5*time.Second),
		}},
		{"429 with an HTTP-date Retry-After", []step{
			admit(0, "a"),
			answer(0, "a", 429, map[string]string{"Retry-After": t0.Add(60 * time.Second).Format(http.TimeFormat)}),
			// HTTP dates have whole seconds: t0 has 0.12s more.
			held(0, "b", 60*time.Second),
			admit(61*time.Second, "b"),
		}},
		{"RateLimit-Remaining 0 with RateLimit-Reset holds the token only", []step{
			admit(0, "a"),
			answer(0, "a", 200, map[string]string{"RateLimit-Remaining": "0", "RateLimit-Reset": epoch(40 * time.Second)}),
			held(time.Second, "a", 39*time.Second),
			admit(time.Second, "b"),
			admit(41*time.Second, "a"),
		}},
		{"RateLimit-Remaining above 0 holds nothing", []step{
			admit(0, "a"),
			answer(0, "a", 200, map[string]string{"RateLimit-Remaining": "3", "RateLimit-Reset": epoch(40 * time.Second)}),
			admit(time.Second, "a"),
		}},
		{"Démarches Numériques 429: no Retry-After, RateLimit-Reset", []step{
			{at: 0, fp: "a", host: "demarche.numerique.gouv.fr", ok: true},
			{at: 0, fp: "a", host: "demarche.numerique.gouv.fr", status: 429,
				header: map[string]string{"RateLimit-Remaining": "0", "RateLimit-Reset": epoch(50 * time.Second)}},
			{at: time.Second, fp: "a", host: "demarche.numerique.gouv.fr", reason: ReasonUpstreamHeld, wait: 49 * time.Second},
			{at: time.Second, fp: "b", host: "demarche.numerique.gouv.fr", reason: ReasonUpstreamHeld, wait: 49 * time.Second},
			admit(time.Second, "c"), // another host is not held
			{at: 51 * time.Second, fp: "b", host: "demarche.numerique.gouv.fr", ok: true},
		}},
		{"a garbled header holds nothing it cannot parse", []step{
			admit(0, "a"),
			answer(0, "a", 503, map[string]string{"Retry-After": "soon", "RateLimit-Remaining": "0", "RateLimit-Reset": "x"}),
			admit(0, "a"),
		}},
		{"a huge Retry-After is capped at a day", []step{
			admit(0, "a"),
			answer(0, "a", 429, map[string]string{"Retry-After": "99999999999"}),
			held(time.Hour, "a", 23*time.Hour),
			admit(24*time.Hour, "a"),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLimits(LimitsOptions{Replicas: 1})
			for i, s := range tc.steps {
				fp, host := s.fp, s.host
				if host == "" {
					host = "entreprise.api.gouv.fr"
				}
				now := t0.Add(s.at)
				if s.status > 0 {
					h := http.Header{}
					for k, v := range s.header {
						h.Set(k, v)
					}
					l.Observe(host, fp, s.status, h, now)
					continue
				}
				ok, wait, reason := l.Admit(apiE, host, fp, now)
				if ok != s.ok || reason != s.reason || (wait-s.wait).Abs() >= time.Second {
					t.Fatalf("step %d (%s at +%s): Admit = %v, %s, %q; want %v, %s, %q",
						i, fp, s.at, ok, wait, reason, s.ok, s.wait, s.reason)
				}
			}
		})
	}
}

func TestAdmitThrottlesATokenAndTheHost(t *testing.T) {
	// Per token: 20/min → 17/min with a burst of 2.
	l := NewLimits(LimitsOptions{Replicas: 1, PerToken: PerTokenLimits{apiE: {20, time.Minute}}})
	const host = "entreprise.api.gouv.fr"
	n := 0
	for ; n < 100; n++ {
		if ok, wait, reason := l.Admit(apiE, host, "a", t0); !ok {
			if reason != ReasonThrottled || wait <= 0 || wait > 60*time.Second/17+time.Millisecond {
				t.Fatalf("refusal %v %q, want throttled, about 3.5s", wait, reason)
			}
			break
		}
	}
	if n != 2 {
		t.Fatalf("a fresh token sent %d requests at once, want its burst, 2", n)
	}
	// A refusal takes no slot: after the wait, one more.
	_, wait, _ := l.Admit(apiE, host, "a", t0)
	if ok, _, _ := l.Admit(apiE, host, "a", t0.Add(wait)); !ok {
		t.Fatalf("refused after the wait it gave (%s)", wait)
	}

	// Per host, one replica: 790/min, burst 79. Many tokens at once spend the burst.
	h := NewLimits(LimitsOptions{Replicas: 1})
	admitted := 0
	for i := range 200 {
		if ok, _, reason := h.Admit(apiE, host, fmt.Sprint("t", i), t0); ok {
			admitted++
		} else if reason != ReasonThrottled {
			t.Fatalf("refusal reason %q", reason)
		}
	}
	if admitted != 79 {
		t.Errorf("200 tokens at once: %d admitted, want the host burst 79", admitted)
	}
	if got := h.HostRemaining(host, t0); got != 0 {
		t.Errorf("HostRemaining after the burst = %v, want 0", got)
	}
	if got := h.HostRemaining(host, t0.Add(30*time.Second)); got != 1 {
		t.Errorf("HostRemaining 30s later = %v, want 1", got)
	}
	if got := h.HostRemaining("other.example", t0); got != 1 {
		t.Errorf("HostRemaining of an unused host = %v, want 1", got)
	}
}

// TestFairShareIsMaxMin: the host's budget is split by demand, not evenly. One token
// asking far more than its limit beside 30 tokens at 5/min each on one replica: the small
// ones get everything they ask, and the big one keeps its own per-token limit (about
// 212/min), since the host has room for it; it is not held to 790/31 ≈ 25/min.
func TestFairShareIsMaxMin(t *testing.T) {
	l := NewLimits(LimitsOptions{Replicas: 1})
	const host = "entreprise.api.gouv.fr"
	big, small, smallAsked := 0, 0, 0
	for ms := 0; ms < 180_000; ms += 10 {
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		if ok, _, _ := l.Admit(apiE, host, "big", now); ok && ms >= 120_000 {
			big++
		}
		for i := range 30 {
			if (ms+i*400)%12_000 == 0 { // every 12s, phases spread
				smallAsked++
				if ok, _, _ := l.Admit(apiE, host, fmt.Sprint("small", i), now); ok {
					small++
				}
			}
		}
	}
	if small != smallAsked {
		t.Errorf("small tokens: %d of %d admitted, want all", small, smallAsked)
	}
	if big < 200 || big > 237 {
		t.Errorf("the big token sent %d in the last minute, want its per-token share (212 + burst at most)", big)
	}
	t.Logf("small tokens %d/%d, big token %d in the last minute", small, smallAsked, big)
}

func TestIdleTokensAreDropped(t *testing.T) {
	l := NewLimits(LimitsOptions{Replicas: 1})
	for i := range 10000 {
		l.Admit(apiE, "entreprise.api.gouv.fr", fmt.Sprint("t", i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if got := len(l.tokens); got != 10000 {
		t.Fatalf("%d tokens known after 10,000 asked within 10s, want 10,000", got)
	}
	l.Admit(apiE, "entreprise.api.gouv.fr", "last", t0.Add(71*time.Second))
	if got := len(l.tokens); got != 1 {
		t.Errorf("%d tokens known a minute after they were last seen, want 1", got)
	}
}

// TestMemoryPerToken: the limits' state for 10,000 active tokens, on the 8 KiB per
// Habilitation the whole gateway may take.
func TestMemoryPerToken(t *testing.T) {
	perToken := memoryPerToken(10000)
	t.Logf("limits state: %.0f bytes per active token", perToken)
	if perToken > 1024 {
		t.Errorf("%.0f bytes per active token, want at most 1 KiB", perToken)
	}
}

func TestReplicaCountRescales(t *testing.T) {
	// One flooding token (and two at 60/min) through replica A alone, then A and B (B
	// starts at +60s, both count 2), then A alone again (B gone at +120s, A told at once):
	// per-token and host windows stay within the limits, and A is back to its full share
	// after the delay.
	const host = "entreprise.api.gouv.fr"
	a := NewLimits(LimitsOptions{Replicas: 1})
	var b *Limits
	var sent, hostSent []time.Time
	for ms := 0; ms < 300_000; ms += 10 { // 100 asks a second: 24× the limit
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		switch ms {
		case 60_000:
			b = NewLimits(LimitsOptions{Replicas: 2})
			a.SetReplicas(2)
		case 120_000:
			b = nil
			a.SetReplicas(1)
		}
		l := a
		if b != nil && ms%20 == 0 {
			l = b
		}
		fps := []string{"flood"}
		if ms%1000 == 0 {
			fps = append(fps, "other1", "other2") // 60/min each
		}
		for _, fp := range fps {
			if ok, _, _ := l.Admit(apiE, host, fp, now); ok {
				hostSent = append(hostSent, now)
				if fp == "flood" {
					sent = append(sent, now)
				}
			}
		}
		switch {
		case ms == 60_010 && a.Replicas() != 2:
			t.Fatalf("A counts %d replicas at once after SetReplicas(2)", a.Replicas())
		case ms == 150_000 && a.Replicas() != 2:
			t.Fatalf("A counts %d replicas 30s after SetReplicas(1), want 2 until a minute has passed", a.Replicas())
		case ms == 181_000 && a.Replicas() != 1:
			t.Fatalf("A counts %d replicas 61s after SetReplicas(1), want 1", a.Replicas())
		}
	}
	if got := maxInWindow(sent, time.Minute); got > 250 {
		t.Errorf("most requests of the token in 60s: %d, over 250", got)
	} else {
		t.Logf("most requests of the token in 60s: %d (limit 250)", got)
	}
	if got := maxInWindow(hostSent, time.Minute); got > DefaultAddressBudgetPerMinute-DefaultProberSharePerMinute+79+39 {
		t.Errorf("most requests to the host in 60s: %d", got)
	} else {
		t.Logf("most requests to the host in 60s: %d (gateway share 790 + bursts)", got)
	}
	// After the delay, A alone sends the token's whole share: the last minute ≈ 212.
	last := 0
	for _, s := range sent {
		if s.After(t0.Add(240 * time.Second)) {
			last++
		}
	}
	if last < 200 {
		t.Errorf("A alone sent %d requests of the token in its last minute, want its full share (about 212)", last)
	}
}

// maxInWindow is the most times in any window (t-w, t]; times are in order.
func maxInWindow(times []time.Time, w time.Duration) int {
	best, i := 0, 0
	for j := range times {
		for !times[i].After(times[j].Add(-w)) {
			i++
		}
		best = max(best, j-i+1)
	}
	return best
}

func TestMaxInWindow(t *testing.T) {
	at := func(s ...float64) []time.Time {
		var out []time.Time
		for _, x := range s {
			out = append(out, t0.Add(time.Duration(x*float64(time.Second))))
		}
		return out
	}
	for _, tc := range []struct {
		times []time.Time
		want  int
	}{
		{nil, 0},
		{at(0), 1},
		{at(0, 59.9), 2},
		{at(0, 60), 1}, // (t-60s, t]: 0 is out of the window ending at 60
		{at(0, 1, 2, 61, 62), 3},
		{at(0, 0, 0, 30, 30, 90), 5},
	} {
		if got := maxInWindow(tc.times, time.Minute); got != tc.want {
			t.Errorf("maxInWindow(%v) = %d, want %d", tc.times, got, tc.want)
		}
	}
}

func TestWaterLevel(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		demands  []float64
		capacity float64
		want     float64
	}{
		{nil, 10, inf},
		{[]float64{1, 2, 3}, 10, inf},
		{[]float64{1, 2, 3}, 6, inf},
		{[]float64{1, 100, 100}, 11, 5},
		{[]float64{100, 1, 100, 2}, 9, 3},
		{[]float64{10, 10}, 10, 5},
	} {
		if got := waterLevel(tc.demands, tc.capacity); got != tc.want {
			t.Errorf("waterLevel(%v, %v) = %v, want %v", tc.demands, tc.capacity, got, tc.want)
		}
	}
}

func memoryPerToken(n int) float64 {
	var before, after runtimeMem
	before.read()
	l := NewLimits(LimitsOptions{Replicas: 2})
	for i := range n {
		l.Admit(apiE, "entreprise.api.gouv.fr", fmt.Sprintf("%016x", i), t0.Add(time.Duration(i)*time.Millisecond))
		l.Observe("entreprise.api.gouv.fr", fmt.Sprintf("%016x", i), 200, http.Header{}, t0.Add(time.Duration(i)*time.Millisecond))
	}
	after.read()
	keep(l)
	return float64(after.heap-before.heap) / float64(n)
}

func BenchmarkAdmit(b *testing.B) {
	l := NewLimits(LimitsOptions{Replicas: 2})
	fps := make([]string, 1000)
	for i := range fps {
		fps[i] = fmt.Sprintf("%016x", i)
	}
	b.ReportAllocs()
	now := t0
	for i := 0; b.Loop(); i++ {
		now = now.Add(time.Millisecond)
		l.Admit(apiE, "entreprise.api.gouv.fr", fps[i%len(fps)], now)
	}
}

func BenchmarkAdmitParallel(b *testing.B) {
	l := NewLimits(LimitsOptions{Replicas: 2})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			l.Admit(apiE, "entreprise.api.gouv.fr", fmt.Sprintf("%016x", i%1000), time.Now())
		}
	})
}

func BenchmarkMemory10000Tokens(b *testing.B) {
	var perToken float64
	for b.Loop() {
		perToken = memoryPerToken(10000)
	}
	b.ReportMetric(perToken, "B/token")
}

// TestLimitsConcurrent: Admit, Observe, SetReplicas and HostRemaining from many
// goroutines on the real clock (run with -race); the host's bucket still bounds what is
// admitted.
func TestLimitsConcurrent(t *testing.T) {
	l := NewLimits(LimitsOptions{Replicas: 1})
	const host = "entreprise.api.gouv.fr"
	start := time.Now()
	var wg sync.WaitGroup
	var admitted atomic.Int64
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				fp := fmt.Sprint("t", g, "-", i%50)
				if ok, _, _ := l.Admit(apiE, host, fp, time.Now()); ok {
					admitted.Add(1)
					l.Observe(host, fp, 200, http.Header{}, time.Now())
				}
				if i%500 == 0 {
					l.SetReplicas(1 + i%3)
					l.HostRemaining(host, time.Now())
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	// One replica at most: 790/min with a burst of 79.
	if bound := 79 + int64(elapsed.Seconds()*790/60) + 1; admitted.Load() > bound {
		t.Errorf("%d admitted in %s, over the host's %d", admitted.Load(), elapsed, bound)
	}
}
