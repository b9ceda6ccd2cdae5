package probe

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/budget"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/token"
)

// emulated is an emulator served over HTTP for one test.
type emulated struct {
	*emulator.Server
	url string
}

func newEmulated(t testing.TB) emulated {
	t.Helper()
	em := emulator.New()
	srv := httptest.NewServer(em)
	t.Cleanup(srv.Close)
	return emulated{Server: em, url: srv.URL}
}

func (e emulated) mint(t testing.TB, api jetonv1alpha1.API, b emulator.Behaviour) (token, id string) {
	t.Helper()
	var scopes []string
	if api == jetonv1alpha1.DemarchesNumeriques {
		scopes = []string{"42"}
	} else {
		scopes = []string{"attestations_fiscales"}
	}
	token, id, err := e.Mint(api, emulator.MintOptions{Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetBehaviour(id, b); err != nil {
		t.Fatal(err)
	}
	return token, id
}

// closedPort returns a local address where nothing listens.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "http://" + addr
}

// Every behaviour of the emulator, through the real HTTP check, for each API.
func TestCheckAgainstEmulator(t *testing.T) {
	em := newEmulated(t)
	client := NewHTTPClient()
	type row struct {
		api       jetonv1alpha1.API
		behaviour emulator.Behaviour
		reason    string
	}
	var rows []row
	for _, api := range []jetonv1alpha1.API{jetonv1alpha1.APIEntreprise, jetonv1alpha1.APIParticulier, jetonv1alpha1.DemarchesNumeriques} {
		rows = append(rows,
			row{api, emulator.Healthy, jetonv1alpha1.ReasonProbeSucceeded},
			row{api, emulator.Unauthorized, jetonv1alpha1.ReasonUnauthorized},
			row{api, emulator.Expired, jetonv1alpha1.ReasonExpired},
			row{api, emulator.InsufficientPrivileges, jetonv1alpha1.ReasonInsufficientPrivileges},
			row{api, emulator.RateLimited, jetonv1alpha1.ReasonRateLimited},
			row{api, emulator.RateLimitedEmptyBody, jetonv1alpha1.ReasonRateLimited},
			row{api, emulator.Down, jetonv1alpha1.ReasonServerError},
			row{api, emulator.ServerError, jetonv1alpha1.ReasonServerError},
			row{api, emulator.Slow, jetonv1alpha1.ReasonTimeout},
		)
		if api == jetonv1alpha1.DemarchesNumeriques {
			// DN has no distinct revocation answer: a revoked token is "invalid or revoked".
			rows = append(rows, row{api, emulator.Revoked, jetonv1alpha1.ReasonUnauthorized},
				row{api, emulator.NotFound, jetonv1alpha1.ReasonUnexpectedResponse})
		} else {
			rows = append(rows, row{api, emulator.Revoked, jetonv1alpha1.ReasonRevoked},
				row{api, emulator.Conflict, jetonv1alpha1.ReasonUnexpectedResponse})
		}
	}
	for _, r := range rows {
		t.Run(string(r.api)+"/"+string(r.behaviour), func(t *testing.T) {
			token, id := em.mint(t, r.api, r.behaviour)
			if err := em.SetRetryAfter(id, 7*time.Second); err != nil {
				t.Fatal(err)
			}
			timeout := 5 * time.Second
			if r.behaviour == emulator.Slow {
				timeout = 100 * time.Millisecond // the emulator waits 30s
			}
			out := Check(context.Background(), client, Target{API: r.api, BaseURL: em.url, Token: token, DemarcheNumber: 42, Timeout: timeout}, time.Now)
			if out.Reason != r.reason {
				t.Fatalf("reason = %q (%d %q), want %q", out.Reason, out.HTTPStatus, out.Message, r.reason)
			}
			if strings.Contains(out.Message, token) {
				t.Fatalf("message contains the token")
			}
			if r.behaviour == emulator.Healthy && r.api != jetonv1alpha1.DemarchesNumeriques && len(out.Privileges) != 1 {
				t.Errorf("privileges = %q, want the minted scope", out.Privileges)
			}
			if r.reason == jetonv1alpha1.ReasonRateLimited {
				if d := out.RetryAt.Sub(out.Time); d < 6*time.Second || d > 7*time.Second {
					t.Errorf("RetryAt is %v after the answer, want 7s (Retry-After: 7)", d)
				}
			}
			if out.Latency <= 0 {
				t.Errorf("latency = %v", out.Latency)
			}
		})
	}
}

func TestCheckUnreachable(t *testing.T) {
	out := Check(context.Background(), NewHTTPClient(), Target{API: jetonv1alpha1.APIEntreprise, BaseURL: closedPort(t), Token: "tok", Timeout: 5 * time.Second}, time.Now)
	if out.Reason != jetonv1alpha1.ReasonUnreachable || out.HTTPStatus != 0 {
		t.Fatalf("got %q %d %q, want Unreachable", out.Reason, out.HTTPStatus, out.Message)
	}
	if !strings.Contains(out.Message, "127.0.0.1") {
		t.Errorf("message should name the host: %q", out.Message)
	}
	out = Check(context.Background(), NewHTTPClient(), Target{API: jetonv1alpha1.APIEntreprise, BaseURL: "http://jeton-no-such-host.invalid", Token: "tok", Timeout: 5 * time.Second}, time.Now)
	if out.Reason != jetonv1alpha1.ReasonUnreachable || !strings.Contains(out.Message, "resolve") {
		t.Fatalf("got %q %q, want Unreachable (cannot resolve)", out.Reason, out.Message)
	}
}

// A token placed in the URL by mistake (a base URL with credentials, say) is still redacted.
func TestCheckRedactsToken(t *testing.T) {
	secret := "s3cr3t-t0ken-value"
	out := Check(context.Background(), NewHTTPClient(), Target{API: jetonv1alpha1.APIEntreprise, BaseURL: "http://" + secret + ".invalid", Token: secret, Timeout: 5 * time.Second}, time.Now)
	if strings.Contains(out.Message, secret) {
		t.Fatalf("message contains the token: %q", out.Message)
	}
}

var (
	keyA = types.NamespacedName{Namespace: "ns", Name: "a"}
	keyB = types.NamespacedName{Namespace: "ns", Name: "b"}
)

// startExecutor runs an executor whose Notify sends finished keys to the returned channel.
func startExecutor(t testing.TB, opts ExecutorOptions) (*Executor, <-chan types.NamespacedName) {
	t.Helper()
	done := make(chan types.NamespacedName, 100)
	opts.Notify = func(ctx context.Context, key types.NamespacedName) {
		select {
		case done <- key:
		case <-ctx.Done():
		}
	}
	e := NewExecutor(opts)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = e.Start(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
	return e, done
}

// waitKey waits until the probes of every key in want have finished (other keys are ignored).
func waitKey(t *testing.T, ch <-chan types.NamespacedName, want ...types.NamespacedName) {
	t.Helper()
	pending := map[types.NamespacedName]bool{}
	for _, k := range want {
		pending[k] = true
	}
	deadline := time.After(20 * time.Second)
	for len(pending) > 0 {
		select {
		case k := <-ch:
			delete(pending, k)
		case <-deadline:
			t.Fatalf("probes of %v did not finish", pending)
		}
	}
}

func TestExecutorOneInFlightPerToken(t *testing.T) {
	em := newEmulated(t)
	token, id := em.mint(t, jetonv1alpha1.APIEntreprise, emulator.Slow)
	if err := em.SetDelay(id, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	e, done := startExecutor(t, ExecutorOptions{Workers: 8})
	job := Job{Key: keyA, Target: Target{API: jetonv1alpha1.APIEntreprise, BaseURL: em.url, Token: token, Timeout: 5 * time.Second}}

	if !e.Submit(job) {
		t.Fatal("first Submit refused")
	}
	for range 20 {
		if e.Submit(job) {
			t.Fatal("Submit accepted while a probe is queued or in flight")
		}
	}
	waitKey(t, done, keyA)
	if e.Submit(job) {
		t.Fatal("Submit accepted before the result was consumed")
	}
	got, ok := e.Result(keyA)
	if !ok || got.Reason != jetonv1alpha1.ReasonProbeSucceeded {
		t.Fatalf("result = %+v, %v", got, ok)
	}
	e.Consume(keyA)
	if !e.Submit(job) {
		t.Fatal("Submit refused after Consume")
	}
	waitKey(t, done, keyA)
	if n := len(em.Requests(id)); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
	if m := em.MaxInFlight(id); m != 1 {
		t.Errorf("MaxInFlight = %d, want 1", m)
	}
}

// Cancelling a token whose probe is in flight must not let a second request start before
// the first one ends.
func TestExecutorCancelInFlight(t *testing.T) {
	em := newEmulated(t)
	token, id := em.mint(t, jetonv1alpha1.APIEntreprise, emulator.Slow)
	if err := em.SetDelay(id, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	e, done := startExecutor(t, ExecutorOptions{Workers: 4})
	job := Job{Key: keyA, Target: Target{API: jetonv1alpha1.APIEntreprise, BaseURL: em.url, Token: token, Timeout: 5 * time.Second}}
	e.Submit(job)
	waitFor(t, func() bool { return len(em.Requests(id)) == 0 && em.MaxInFlight(id) == 1 })
	e.Cancel(keyA)
	if e.Submit(job) {
		t.Fatal("Submit accepted while the cancelled probe is still in flight")
	}
	waitKey(t, done, keyA)
	if _, ok := e.Result(keyA); ok {
		t.Fatal("result of a cancelled probe was kept")
	}
	if !e.Submit(job) {
		t.Fatal("Submit refused after the cancelled probe ended")
	}
	waitKey(t, done, keyA)
	if m := em.MaxInFlight(id); m != 1 {
		t.Errorf("MaxInFlight = %d, want 1", m)
	}
}

// A slow API does not hold up the probes of other tokens.
func TestExecutorSlowAPIDoesNotBlockOthers(t *testing.T) {
	slow, fast := newEmulated(t), newEmulated(t)
	slowToken, slowID := slow.mint(t, jetonv1alpha1.APIEntreprise, emulator.Slow) // 30s
	e, done := startExecutor(t, ExecutorOptions{Workers: 2})
	e.Submit(Job{Key: keyA, Target: Target{API: jetonv1alpha1.APIEntreprise, BaseURL: slow.url, Token: slowToken, Timeout: time.Minute}})
	waitFor(t, func() bool { return slow.MaxInFlight(slowID) == 1 })

	fastToken, _ := fast.mint(t, jetonv1alpha1.APIParticulier, emulator.Healthy)
	for i := range 5 {
		key := types.NamespacedName{Namespace: "ns", Name: "fast"}
		e.Submit(Job{Key: key, Target: Target{API: jetonv1alpha1.APIParticulier, BaseURL: fast.url, Token: fastToken, Timeout: time.Minute}})
		waitKey(t, done, key)
		if r, _ := e.Result(key); r.Reason != jetonv1alpha1.ReasonProbeSucceeded {
			t.Fatalf("fast probe %d: %q", i, r.Reason)
		}
		e.Consume(key)
	}
	if _, done := e.Result(keyA); done || len(slow.Requests(slowID)) != 0 {
		t.Fatal("the slow probe should still be in flight")
	}
}

// After a 429 with Retry-After: N, no request for that token, nor for any token of the same
// host, goes out before N seconds; other hosts are not held.
func TestExecutorHonoursRetryAfter(t *testing.T) {
	em, other := newEmulated(t), newEmulated(t)
	limited, limitedID := em.mint(t, jetonv1alpha1.APIEntreprise, emulator.RateLimitedEmptyBody)
	neighbour, neighbourID := em.mint(t, jetonv1alpha1.APIEntreprise, emulator.Healthy)
	elsewhere, elsewhereID := other.mint(t, jetonv1alpha1.APIEntreprise, emulator.Healthy)
	const retryAfter = 2 * time.Second
	if err := em.SetRetryAfter(limitedID, retryAfter); err != nil {
		t.Fatal(err)
	}
	// The exponential backoff starts below Retry-After, so Retry-After is what holds.
	e, done := startExecutor(t, ExecutorOptions{Workers: 4, Budget: budget.New(budget.Options{BaseBackoff: 500 * time.Millisecond})})
	target := func(url, token string) Target {
		return Target{API: jetonv1alpha1.APIEntreprise, BaseURL: url, Token: token, Timeout: 5 * time.Second}
	}

	e.Submit(Job{Key: keyA, Target: target(em.url, limited)})
	waitKey(t, done, keyA)
	if r, _ := e.Result(keyA); r.Reason != jetonv1alpha1.ReasonRateLimited {
		t.Fatalf("first probe: %q, want RateLimited", r.Reason)
	}
	if nb := e.NotBefore(token.Fingerprint(limited), em.url); nb.IsZero() {
		t.Fatal("NotBefore is zero after a 429")
	}
	e.Consume(keyA)
	if err := em.SetBehaviour(limitedID, emulator.Healthy); err != nil {
		t.Fatal(err)
	}
	keyC := types.NamespacedName{Namespace: "ns", Name: "c"}
	e.Submit(Job{Key: keyA, Target: target(em.url, limited)})
	e.Submit(Job{Key: keyB, Target: target(em.url, neighbour)})
	e.Submit(Job{Key: keyC, Target: target(other.url, elsewhere)})
	waitKey(t, done, keyC)
	_, doneA := e.Result(keyA)
	_, doneB := e.Result(keyB)
	if doneA || doneB {
		t.Error("probes of the rate-limited host ran before the host probe elsewhere finished")
	}
	waitKey(t, done, keyA, keyB)

	first := em.Requests(limitedID)
	if len(first) != 2 || first[0].Status != http.StatusTooManyRequests {
		t.Fatalf("requests of the limited token: %+v", first)
	}
	limitedAt := first[0].Time
	if gap := first[1].Time.Sub(limitedAt); gap < retryAfter {
		t.Errorf("limited token probed again %v after the 429, want ≥ %v", gap, retryAfter)
	}
	n := em.Requests(neighbourID)
	if len(n) != 1 || n[0].Time.Sub(limitedAt) < retryAfter {
		t.Errorf("neighbour token probed %v after the 429, want ≥ %v (host-wide backoff)", n[0].Time.Sub(limitedAt), retryAfter)
	}
	if len(other.Requests(elsewhereID)) != 1 {
		t.Error("the other host was not probed")
	}
}

// Two owners holding one token, each spelling the host differently, share one budget:
// one request in flight between them, and a 429 with Retry-After for one holds the other.
func TestExecutorOneBudgetPerTokenAndHost(t *testing.T) {
	em := newEmulated(t)
	tok, id := em.mint(t, jetonv1alpha1.APIEntreprise, emulator.Slow)
	if err := em.SetDelay(id, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	port := em.url[strings.LastIndex(em.url, ":")+1:]
	spellings := map[types.NamespacedName]string{keyA: "http://localhost:" + port, keyB: "http://LocalHost:" + port + "/"}
	e, done := startExecutor(t, ExecutorOptions{Workers: 4, Budget: budget.New(budget.Options{BaseBackoff: 500 * time.Millisecond})})
	job := func(key types.NamespacedName) Job {
		return Job{Key: key, Target: Target{API: jetonv1alpha1.APIEntreprise, BaseURL: spellings[key], Token: tok, Timeout: 5 * time.Second}}
	}
	e.Submit(job(keyA))
	e.Submit(job(keyB))
	waitKey(t, done, keyA, keyB)
	for _, k := range []types.NamespacedName{keyA, keyB} {
		if r, _ := e.Result(k); r.Reason != jetonv1alpha1.ReasonProbeSucceeded {
			t.Fatalf("%s: %q (%s)", k, r.Reason, r.Message)
		}
		e.Consume(k)
	}
	if m := em.MaxInFlight(id); m != 1 {
		t.Errorf("%d requests in flight at once for one token through two owners, want 1", m)
	}

	const retryAfter = 2 * time.Second
	if err := em.SetRetryAfter(id, retryAfter); err != nil {
		t.Fatal(err)
	}
	if err := em.SetBehaviour(id, emulator.RateLimitedEmptyBody); err != nil {
		t.Fatal(err)
	}
	e.Submit(job(keyA))
	waitKey(t, done, keyA)
	r, _ := e.Result(keyA)
	if r.Reason != jetonv1alpha1.ReasonRateLimited || r.Hold.Token.IsZero() || r.Hold.Host.IsZero() {
		t.Fatalf("429: %q, hold %+v; want RateLimited holding the token and the host", r.Reason, r.Hold)
	}
	if err := em.SetBehaviour(id, emulator.Healthy); err != nil {
		t.Fatal(err)
	}
	if nb := e.NotBefore(token.Fingerprint(tok), spellings[keyB]); !nb.Equal(r.Hold.Token) {
		t.Errorf("the other spelling is held until %v, want %v", nb, r.Hold.Token)
	}
	e.Submit(job(keyB))
	waitKey(t, done, keyB)
	reqs := em.Requests(id)
	last := len(reqs) - 1
	if reqs[last-1].Status != http.StatusTooManyRequests {
		t.Fatalf("requests %+v", reqs)
	}
	if gap := reqs[last].Time.Sub(reqs[last-1].Time); gap < retryAfter {
		t.Errorf("the token was probed again through another spelling %v after a 429 with Retry-After %v", gap, retryAfter)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		<-time.After(10 * time.Millisecond)
	}
}

// BenchmarkExecutor1000Tokens probes 1000 tokens through the executor (4 workers) against
// a local server, and reports the goroutines the executor needs (independent of the number
// of tokens) and the cost per probe.
func BenchmarkExecutor1000Tokens(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"privileges":["attestations_fiscales"]}`))
	}))
	defer srv.Close()
	const tokens = 1000
	done := make(chan types.NamespacedName, tokens)
	before := runtime.NumGoroutine()
	e := NewExecutor(ExecutorOptions{Workers: 4, Budget: budget.New(budget.Options{PerHostPerMinute: 1 << 30, HostBurst: tokens, PerTokenPerMinute: 1 << 30}),
		Notify: func(_ context.Context, key types.NamespacedName) { done <- key }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = e.Start(ctx) }()
	jobs := make([]Job, tokens)
	for i := range jobs {
		jobs[i] = Job{Key: types.NamespacedName{Namespace: "ns", Name: "tt-" + strconv.Itoa(i)},
			Target: Target{API: jetonv1alpha1.APIEntreprise, BaseURL: srv.URL, Token: "token-" + strconv.Itoa(i), Timeout: 10 * time.Second}}
	}
	peak := 0
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for _, j := range jobs {
			e.Submit(j)
		}
		for range tokens {
			k := <-done
			e.Consume(k)
		}
		peak = max(peak, runtime.NumGoroutine()-before)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tokens), "ns/probe")
	b.ReportMetric(float64(peak), "goroutines")
}
