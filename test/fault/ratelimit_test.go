package fault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// probeInterval replaces the CRD's 30s minimum through the binary's test-only flag.
const probeInterval = time.Second

// The API answers 429 bursts (as staging does, empty body and only Retry-After, then with
// the JSON body and RateLimit-* headers), then 5xx bursts. The operator never sends a
// request before Retry-After has passed, never two at once, turns Ready False after
// failureThreshold failures with the right reason, and Ready recovers once the API does.
func TestProbeHonoursRetryAfterAndRecovers(t *testing.T) {
	ctx := context.Background()
	r := seeded(t)
	credNS := "fault-probe-" + suffix(r)
	newCredentialsNamespace(t, ctx, credNS)
	emu := emulator.New()
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close) // registered before the operator's cleanup, so it runs after it

	tok, id, err := emu.Mint(jetonv1alpha1.APIEntreprise, emulator.MintOptions{Scopes: []string{"unites_legales_etablissements_insee"}})
	if err != nil {
		t.Fatal(err)
	}
	tt := &jetonv1alpha1.TechnicalToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: "api-entreprise"},
		Spec: jetonv1alpha1.TechnicalTokenSpec{
			API:            jetonv1alpha1.APIEntreprise,
			BaseURL:        srv.URL,
			TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: "technical-token", Key: "token"},
			// spec.interval keeps its default: --test-probe-interval overrides it.
			FailureThreshold: 2,
		},
	}
	for _, o := range []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: "technical-token"}, Data: map[string][]byte{"token": []byte(tok)}},
		tt,
	} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	op := startOperator(t, "probe", credNS, "--test-probe-interval", probeInterval.String(),
		"--allowed-api-hosts", strings.TrimPrefix(srv.URL, "http://"))

	// readyIs waits for Ready=status with reason, reached after since (for recoveries).
	readyIs := func(what string, status metav1.ConditionStatus, reason string, since time.Time) {
		t.Helper()
		testenv.WaitFor(t, 60*time.Second, what, func(ctx context.Context) error {
			got := &jetonv1alpha1.TechnicalToken{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tt), got); err != nil {
				return err
			}
			c := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady)
			if c == nil || c.Status != status || c.Reason != reason {
				return fmt.Errorf("Ready is %+v, want %s/%s", c, status, reason)
			}
			if status == metav1.ConditionTrue && (got.Status.LastSuccessTime == nil || got.Status.LastSuccessTime.Time.Before(since.Truncate(time.Second))) {
				return fmt.Errorf("last success %v is before %v", got.Status.LastSuccessTime, since)
			}
			return nil
		})
	}
	readyIs("the first successful probe", metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded, time.Time{})

	// Longer than the probe executor's first host backoff (5s), so that Retry-After is
	// what the operator must wait for. jeton's own backoff grows with each 429, so each
	// burst costs tens of seconds: the JSON-bodied burst runs in the long variant only.
	retryAfter := 6 * time.Second
	bursts := []emulator.Behaviour{emulator.RateLimitedEmptyBody}
	if *long {
		retryAfter = 12 * time.Second
		bursts = append(bursts, emulator.RateLimited)
	}
	for _, b := range bursts {
		if err := emu.SetRetryAfter(id, retryAfter); err != nil {
			t.Fatal(err)
		}
		from := len(emu.Requests(id))
		if err := emu.SetBehaviour(id, b); err != nil {
			t.Fatal(err)
		}
		// failureThreshold is 2: two 429s, so two waits after a 429 are measured (the
		// second before the request that finds the API healthy again).
		readyIs(string(b)+": Ready False after failureThreshold 429s", metav1.ConditionFalse, jetonv1alpha1.ReasonRateLimited, time.Time{})
		healed := time.Now()
		if err := emu.SetBehaviour(id, emulator.Healthy); err != nil {
			t.Fatal(err)
		}
		readyIs(string(b)+": Ready recovers", metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded, healed)

		reqs := emu.Requests(id)[from:]
		minGap := time.Duration(1<<63 - 1)
		for i := 0; i+1 < len(reqs); i++ {
			if reqs[i].Status != 429 {
				continue
			}
			gap := reqs[i+1].Time.Sub(reqs[i].Time)
			minGap = min(minGap, gap)
			if gap < retryAfter {
				t.Errorf("%s: request %d came %v after a 429 with Retry-After %v", b, i+1, gap, retryAfter)
			}
		}
		t.Logf("%s: %d requests, %d answered 429, shortest wait after a 429 %v (Retry-After %v)",
			b, len(reqs), count429(reqs), minGap, retryAfter)
	}

	// 5xx bursts: a 500 and a 502 HTML page, each until Ready turns False, then recovery.
	for _, b := range []emulator.Behaviour{emulator.ServerError, emulator.Down} {
		if err := emu.SetBehaviour(id, b); err != nil {
			t.Fatal(err)
		}
		readyIs(string(b)+": Ready False after failureThreshold 5xx", metav1.ConditionFalse, jetonv1alpha1.ReasonServerError, time.Time{})
		healed := time.Now()
		if err := emu.SetBehaviour(id, emulator.Healthy); err != nil {
			t.Fatal(err)
		}
		readyIs(string(b)+": Ready recovers", metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded, healed)
	}

	if n := emu.MaxInFlight(id); n != 1 {
		t.Errorf("%d requests in flight at once with one token, want 1", n)
	}
	// Users see the transitions as events, and nothing there or in status holds the token.
	var evs eventsv1.EventList
	testenv.WaitFor(t, 30*time.Second, "ProbeFailed and ProbeRecovered events", func(ctx context.Context) error {
		if err := env.Client.List(ctx, &evs, client.InNamespace(credNS)); err != nil {
			return err
		}
		var reasons []string
		for _, e := range evs.Items {
			if e.Regarding.Name == tt.Name {
				reasons = append(reasons, e.Reason)
			}
		}
		if !slices.Contains(reasons, "ProbeFailed") || !slices.Contains(reasons, "ProbeRecovered") {
			return fmt.Errorf("events %v", reasons)
		}
		return nil
	})
	got := &jetonv1alpha1.TechnicalToken{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tt), got); err != nil {
		t.Fatal(err)
	}
	dump, err := json.Marshal([]any{got, evs.Items})
	if err != nil {
		t.Fatal(err)
	}
	noTokenIn(t, "TechnicalToken status and events", string(dump), []string{tok})
	noTokenIn(t, "operator output", op.Out.String(), []string{tok})
	if !op.Running() {
		t.Error(errors.Join(errors.New("the operator exited"), op.ExitErr()))
	}
}

func count429(reqs []emulator.Request) int {
	n := 0
	for _, r := range reqs {
		if r.Status == 429 {
			n++
		}
	}
	return n
}
