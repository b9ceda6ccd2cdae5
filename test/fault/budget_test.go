package fault

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// budgetFixture is an emulator on loopback and a credentials namespace for the tests of
// the one rate budget (issue 21).
type budgetFixture struct {
	credNS string
	emu    *emulator.Server
	url    string // http://127.0.0.1:<port>
	port   string
}

func newBudgetFixture(t *testing.T, prefix string) *budgetFixture {
	t.Helper()
	r := seeded(t)
	f := &budgetFixture{credNS: prefix + "-" + suffix(r), emu: emulator.New()}
	newCredentialsNamespace(t, context.Background(), f.credNS)
	srv := httptest.NewServer(f.emu)
	t.Cleanup(srv.Close) // registered before the operator's cleanup, so it runs after it
	f.url = srv.URL
	f.port = srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	return f
}

// technicalToken creates a TechnicalToken probing baseURL with the token of Secret secret,
// creating the Secret with tok when it does not exist yet.
func (f *budgetFixture) technicalToken(t *testing.T, name, secret, tok, baseURL string) *jetonv1alpha1.TechnicalToken {
	t.Helper()
	ctx := context.Background()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.credNS, Name: secret}, Data: map[string][]byte{"token": []byte(tok)}}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(s), &corev1.Secret{}); err != nil {
		if err := env.Client.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	tt := &jetonv1alpha1.TechnicalToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.credNS, Name: name},
		Spec: jetonv1alpha1.TechnicalTokenSpec{
			API:              jetonv1alpha1.APIEntreprise,
			BaseURL:          baseURL,
			TokenSecretRef:   jetonv1alpha1.SecretKeyReference{Name: secret, Key: "token"},
			FailureThreshold: 5,
		},
	}
	if err := env.Client.Create(ctx, tt); err != nil {
		t.Fatal(err)
	}
	return tt
}

// succeededSince waits until tt's last probe succeeded at or after since.
func succeededSince(t *testing.T, timeout time.Duration, tt *jetonv1alpha1.TechnicalToken, since time.Time) *jetonv1alpha1.TechnicalToken {
	t.Helper()
	got := &jetonv1alpha1.TechnicalToken{}
	testenv.WaitFor(t, timeout, tt.Name+": a successful probe", func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tt), got); err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady)
		if c == nil || c.Reason != jetonv1alpha1.ReasonProbeSucceeded {
			return fmt.Errorf("Ready is %+v", c)
		}
		if got.Status.LastSuccessTime == nil || got.Status.LastSuccessTime.Time.Before(since.Truncate(time.Second)) {
			return fmt.Errorf("last success %v is before %v", got.Status.LastSuccessTime, since)
		}
		return nil
	})
	return got
}

// rateLimitOnce makes the emulator answer 429 with Retry-After to token id until the first
// such answer, then heal: it returns the time of that 429. Only a request sent against
// the rules can then meet the API before Retry-After has passed.
func rateLimitOnce(t *testing.T, emu *emulator.Server, id string, retryAfter time.Duration) time.Time {
	t.Helper()
	if err := emu.SetRetryAfter(id, retryAfter); err != nil {
		t.Fatal(err)
	}
	from := len(emu.Requests(id))
	if err := emu.SetBehaviour(id, emulator.RateLimitedEmptyBody); err != nil {
		t.Fatal(err)
	}
	var at time.Time
	testenv.WaitFor(t, 30*time.Second, "a 429", func(context.Context) error {
		for _, r := range emu.Requests(id)[from:] {
			if r.Status == 429 {
				at = r.Time
				return nil
			}
		}
		return fmt.Errorf("no 429 yet")
	})
	if err := emu.SetBehaviour(id, emulator.Healthy); err != nil {
		t.Fatal(err)
	}
	return at
}

// noRequestWithin fails when token id met the API in (from, from+d).
func noRequestWithin(t *testing.T, emu *emulator.Server, id, what string, from time.Time, d time.Duration) {
	t.Helper()
	for _, r := range emu.Requests(id) {
		if r.Time.After(from) && r.Time.Before(from.Add(d)) {
			t.Errorf("%s: a request %v after the 429, before Retry-After (%v) had passed", what, r.Time.Sub(from), d)
		}
	}
}

// Two TechnicalTokens on one token Secret, spelling one host differently, share one budget:
// never two requests in flight with the token, and after a 429 with Retry-After neither
// sends anything before it has passed. The wait is recorded in status.
func TestOneBudgetAcrossSpellingsOfAHost(t *testing.T) {
	f := newBudgetFixture(t, "fault-spell")
	tok, id := mint(t, f.emu, jetonv1alpha1.APIEntreprise)
	// A slow answer makes overlapping requests visible, if any.
	if err := f.emu.SetDelay(id, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := f.emu.SetBehaviour(id, emulator.Slow); err != nil {
		t.Fatal(err)
	}
	lower := f.technicalToken(t, "lower", "technical-token", tok, "http://localhost:"+f.port)
	upper := f.technicalToken(t, "upper", "technical-token", tok, "http://LocalHost:"+f.port+"/")
	op := startOperator(t, "spell", f.credNS, "--test-probe-interval", probeInterval.String(),
		"--allowed-api-hosts", "localhost:"+f.port)
	succeededSince(t, 60*time.Second, lower, time.Time{})
	succeededSince(t, 60*time.Second, upper, time.Time{})

	// Longer than the first host backoff (5s): Retry-After is what must hold.
	const retryAfter = 8 * time.Second
	at := rateLimitOnce(t, f.emu, id, retryAfter)
	testenv.WaitFor(t, 30*time.Second, "the wait recorded in status", func(ctx context.Context) error {
		for _, tt := range []*jetonv1alpha1.TechnicalToken{lower, upper} {
			got := &jetonv1alpha1.TechnicalToken{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tt), got); err != nil {
				return err
			}
			if u := got.Status.RateLimitedUntil; u != nil && !u.Time.Before(at.Add(retryAfter).Truncate(time.Second)) {
				if h := got.Status.HostRateLimitedUntil; h == nil || h.Time.Before(u.Time) {
					return fmt.Errorf("%s: hostRateLimitedUntil %v, want ≥ %v", tt.Name, h, u)
				}
				return nil
			}
		}
		return fmt.Errorf("no TechnicalToken records rateLimitedUntil ≥ %v", at.Add(retryAfter))
	})
	healed := time.Now()
	succeededSince(t, 60*time.Second, lower, healed)
	succeededSince(t, 60*time.Second, upper, healed)

	noRequestWithin(t, f.emu, id, "two spellings of one host", at, retryAfter)
	if n := f.emu.MaxInFlight(id); n != 1 {
		t.Errorf("%d requests in flight at once with one token through two TechnicalTokens, want 1", n)
	}
	t.Logf("%d requests, first after the 429 came %v after it (Retry-After %v)", len(f.emu.Requests(id)), firstAfter(f.emu.Requests(id), at), retryAfter)
	noTokenIn(t, "operator output", op.Out.String(), []string{tok})
	if !op.Running() {
		t.Errorf("the operator exited: %v", op.ExitErr())
	}
}

func firstAfter(reqs []emulator.Request, at time.Time) time.Duration {
	for _, r := range reqs {
		if r.Time.After(at) {
			return r.Time.Sub(at)
		}
	}
	return -1
}

// 20 on-demand requests (jeton.dev/requested-at) in 10 s cost at most two probes: one at
// once if the last probe is older than the 30 s floor, one at the floor answering the rest;
// the last request is marked handled.
func TestRequestedProbesAreRateBounded(t *testing.T) {
	f := newBudgetFixture(t, "fault-req")
	tok, id := mint(t, f.emu, jetonv1alpha1.APIEntreprise)
	tt := f.technicalToken(t, "requested", "technical-token", tok, f.url)
	// No --test-probe-interval: the default interval (5m) and the production floor (30s).
	op := startOperator(t, "requests", f.credNS, "--allowed-api-hosts", strings.TrimPrefix(f.url, "http://"))
	succeededSince(t, 60*time.Second, tt, time.Time{})

	from := len(f.emu.Requests(id))
	start := time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var last string
	for i := range 20 {
		<-tick.C
		last = strconv.FormatInt(time.Now().UnixNano(), 10) + "-" + strconv.Itoa(i)
		patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, jetonv1alpha1.AnnotationRequestedAt, last)
		if err := env.Client.Patch(context.Background(), &jetonv1alpha1.TechnicalToken{ObjectMeta: metav1.ObjectMeta{Namespace: tt.Namespace, Name: tt.Name}},
			client.RawPatch(types.MergePatchType, patch)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("20 requests in %v", time.Since(start).Round(time.Millisecond))
	testenv.WaitFor(t, 60*time.Second, "the last request handled", func(ctx context.Context) error {
		got := &jetonv1alpha1.TechnicalToken{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tt), got); err != nil {
			return err
		}
		if got.Status.LastHandledRequestedAt != last {
			return fmt.Errorf("lastHandledRequestedAt %q, want %q", got.Status.LastHandledRequestedAt, last)
		}
		return nil
	})
	reqs := f.emu.Requests(id)[from:]
	if len(reqs) > 2 {
		t.Errorf("%d probes for 20 requests in 10s, want at most 2", len(reqs))
	}
	if len(reqs) == 0 {
		t.Error("no probe answered the requests")
	}
	for i := 1; i < len(reqs); i++ {
		if gap := reqs[i].Time.Sub(reqs[i-1].Time); gap < 30*time.Second-time.Second {
			t.Errorf("two requested probes %v apart, want ≥ the 30s floor", gap)
		}
	}
	t.Logf("%d probes answered 20 requests, handled %v after the first", len(reqs), time.Since(start).Round(time.Second))
	if !op.Running() {
		t.Errorf("the operator exited: %v", op.ExitErr())
	}
}

// A manager killed during a Retry-After: its successor sends no request before it has
// passed, neither with the rate-limited token (its own wait, in its status) nor with
// another token of the same host (the host-wide backoff, rebuilt from that status).
func TestRetryAfterSurvivesAKill(t *testing.T) {
	f := newBudgetFixture(t, "fault-holdkill")
	tok, id := mint(t, f.emu, jetonv1alpha1.APIEntreprise)
	tok2, id2 := mint(t, f.emu, jetonv1alpha1.APIEntreprise)
	limited := f.technicalToken(t, "limited", "technical-token", tok, f.url)
	neighbour := f.technicalToken(t, "neighbour", "other-token", tok2, f.url)
	args := []string{"--test-probe-interval", probeInterval.String(), "--allowed-api-hosts", strings.TrimPrefix(f.url, "http://")}
	first := startOperator(t, "hold-1", f.credNS, args...)
	succeededSince(t, 60*time.Second, limited, time.Time{})
	succeededSince(t, 60*time.Second, neighbour, time.Time{})

	const retryAfter = 25 * time.Second
	at := rateLimitOnce(t, f.emu, id, retryAfter)
	testenv.WaitFor(t, 10*time.Second, "the wait recorded in status", func(ctx context.Context) error {
		got := &jetonv1alpha1.TechnicalToken{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(limited), got); err != nil {
			return err
		}
		if u := got.Status.HostRateLimitedUntil; u == nil || u.Time.Before(at.Add(retryAfter).Truncate(time.Second)) {
			return fmt.Errorf("hostRateLimitedUntil %v, want ≥ %v", u, at.Add(retryAfter))
		}
		return nil
	})
	first.kill(t)
	killed := time.Since(at)
	if killed > retryAfter/2 {
		t.Fatalf("killed %v after the 429: too late to tell", killed)
	}
	second := startOperator(t, "hold-2", f.credNS, args...)
	succeededSince(t, 90*time.Second, limited, at.Add(retryAfter))
	succeededSince(t, 90*time.Second, neighbour, at.Add(retryAfter))
	noRequestWithin(t, f.emu, id, "the rate-limited token after a kill", at, retryAfter)
	// Another token's probe may have been admitted while the 429 was on its way back (both
	// are probed every second): the host is held from when jeton saw the 429.
	const seen = 200 * time.Millisecond
	noRequestWithin(t, f.emu, id2, "another token of the host after a kill", at.Add(seen), retryAfter-seen)
	t.Logf("killed %v after the 429; first requests after it: %v (limited), %v (neighbour); Retry-After %v",
		killed.Round(time.Millisecond), firstAfter(f.emu.Requests(id), at), firstAfter(f.emu.Requests(id2), at), retryAfter)
	noTokenIn(t, "operator output", first.Out.String()+second.Out.String(), []string{tok, tok2})
}
