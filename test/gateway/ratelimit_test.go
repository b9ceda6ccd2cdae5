package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// TestUpstream429HoldsTheToken makes the API answer 429 with Retry-After: the caller gets
// the API's 429, every later call gets the gateway's own 429 with Retry-After, and the API
// sees no request with that token until the wait has passed.
func TestUpstream429HoldsTheToken(t *testing.T) {
	w := newWorld(t, "gw-429", worldOptions{})
	a := w.addClient("gw-429-a", jetonv1alpha1.APIEntreprise)
	if err := w.emu.SetBehaviour(a.tokenID, emulator.RateLimited); err != nil {
		t.Fatal(err)
	}
	const retryAfter = 4 * time.Second
	if err := w.emu.SetRetryAfter(a.tokenID, retryAfter); err != nil {
		t.Fatal(err)
	}
	resp, _ := w.call(0, "GET", aePath(a, ""), a.credential, nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("first call: status %d, want the API's 429", resp.StatusCode)
	}
	held := time.Now()
	if err := w.emu.SetBehaviour(a.tokenID, emulator.Healthy); err != nil {
		t.Fatal(err)
	}
	mark := len(w.requestsSince(a.tokenID, 0))
	// The storm: 50 calls at once while the wait runs.
	for range 50 {
		resp, _ := w.call(0, "GET", aePath(a, ""), a.credential, nil)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("call during the wait: status %d, want the gateway's 429", resp.StatusCode)
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 || s > int(retryAfter/time.Second)+1 {
			t.Fatalf("Retry-After %q, want 1..%d seconds", resp.Header.Get("Retry-After"), int(retryAfter/time.Second)+1)
		}
	}
	if got := w.requestsSince(a.tokenID, mark); len(got) != 0 && got[0].Time.Before(held.Add(retryAfter-500*time.Millisecond)) {
		t.Fatalf("the API saw %d calls before its Retry-After had passed", len(got))
	}
	testenv.WaitFor(t, 30*time.Second, "calls served again after the wait", func(context.Context) error {
		if resp, _ := w.call(0, "GET", aePath(a, ""), a.credential, nil); resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	if first := w.requestsSince(a.tokenID, mark); len(first) == 0 || first[0].Time.Sub(held) < retryAfter-500*time.Millisecond {
		t.Errorf("the first call after the 429 reached the API %v after it, want ≥ %v", first[0].Time.Sub(held), retryAfter)
	}
	if v, _, _ := w.gws[0].Metric("jeton_gateway_upstream_throttled_total"); v != 1 {
		t.Errorf("jeton_gateway_upstream_throttled_total = %v, want 1", v)
	}
	if v, _, _ := w.gws[0].Metric("jeton_gateway_refusals_total", `reason="upstream_held"`); v < 50 {
		t.Errorf("refusals upstream_held = %v, want ≥ 50", v)
	}
}
