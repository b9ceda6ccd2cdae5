package gateway

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// The flood's scaled-down limits (the full run at the real limits is `make bench
// -scenarios gateway`): the emulator enforces them as the APIs do, with real 429s.
const (
	floodPerToken  = 60  // requests/min per API Entreprise token
	floodPerIP     = 600 // requests/min per address
	floodDuration  = 60 * time.Second
	floodFlooders  = 20
	floodWellRate  = 8 // requests/min of each well-behaved client
	floodPerFlood  = 10 * floodPerToken
	floodReplicas  = 2
	floodKillAfter = floodDuration / 2
)

// TestFloodStaysUnderTheVendorsLimits is the flood: 20 clients at 10 times their
// limit and 2 well-behaved clients, through 2 gateway replicas, one of them killed halfway.
// The API must never answer 429 to jeton's traffic, every window stays within the limits,
// and the well-behaved clients are served (≥ 99%).
func TestFloodStaysUnderTheVendorsLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("the flood runs a minute")
	}
	w := newWorld(t, "gw-flood", worldOptions{
		replicas:   floodReplicas,
		emuOptions: floodEmulatorOptions(),
		gatewayArgs: []string{
			"--per-token-limits", fmt.Sprintf("APIEntreprise=%d/1m", floodPerToken),
			"--address-budget-per-minute", fmt.Sprint(floodPerIP * 85 / 100),
			"--prober-share-per-minute", "30",
		},
	})
	var flooders, wells []*tenant
	for i := range floodFlooders {
		flooders = append(flooders, w.addClient(fmt.Sprintf("gw-flood-%02d", i), jetonv1alpha1.APIEntreprise))
	}
	for i := range 2 {
		wells = append(wells, w.addClient(fmt.Sprintf("gw-well-%d", i), jetonv1alpha1.APIEntreprise))
	}

	var killed atomic.Bool
	// send is a client library behind a Service: round robin over the replicas alive, one
	// retry on another replica when a connection fails (the killed replica).
	var rr atomic.Uint64
	send := func(c *tenant) (int, error) {
		var lastErr error
		for range 2 {
			i := int(rr.Add(1) % floodReplicas)
			if killed.Load() {
				i = 0
			}
			req, _ := http.NewRequest("GET", w.gws[i].URL()+aePath(c, ""), nil)
			req.Header.Set("Authorization", "Bearer "+c.credential)
			resp, err := floodHTTP.Do(req)
			if err != nil {
				lastErr = err
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		return 0, lastErr
	}

	deadline := time.Now().Add(floodDuration)
	var wg sync.WaitGroup
	var floodSent, floodOK atomic.Int64
	for _, c := range flooders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Minute / floodPerFlood)
			defer tick.Stop()
			var inner sync.WaitGroup
			for now := range tick.C {
				if now.After(deadline) {
					break
				}
				inner.Add(1)
				go func() {
					defer inner.Done()
					floodSent.Add(1)
					if code, _ := send(c); code == http.StatusOK {
						floodOK.Add(1)
					}
				}()
			}
			inner.Wait()
		}()
	}
	var wellSent, wellOK atomic.Int64
	var failMu sync.Mutex
	var failures []string
	for _, c := range wells {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Minute / floodWellRate)
			defer tick.Stop()
			for now := time.Now(); !now.After(deadline); now = <-tick.C {
				wellSent.Add(1)
				code, err := send(c)
				if code == http.StatusOK {
					wellOK.Add(1)
					continue
				}
				failMu.Lock()
				failures = append(failures, fmt.Sprintf("%s: status %d %v", c.name, code, err))
				failMu.Unlock()
			}
		}()
	}
	time.AfterFunc(floodKillAfter, func() {
		killed.Store(true)
		_ = w.gws[1].Kill(10 * time.Second)
	})
	wg.Wait()

	st := w.floodStats(append(flooders, wells...))
	t.Logf("flood: %d calls from flooders (%d served), well-behaved %d/%d served; upstream: %d calls, %d 429s, max per token in 60 s %d (limit %d), max per address in 60 s %d (limit %d)",
		floodSent.Load(), floodOK.Load(), wellOK.Load(), wellSent.Load(), st.total, st.upstream429, st.maxPerToken, floodPerToken, st.maxPerIP, floodPerIP)
	if st.upstream429 != 0 {
		t.Errorf("the API answered %d 429s to jeton's traffic, want 0", st.upstream429)
	}
	if st.maxPerToken > floodPerToken {
		t.Errorf("a token sent %d requests in a 60 s window, above its %d", st.maxPerToken, floodPerToken)
	}
	if st.maxPerIP > floodPerIP {
		t.Errorf("the address sent %d requests in a 60 s window, above its %d", st.maxPerIP, floodPerIP)
	}
	if sent, ok := wellSent.Load(), wellOK.Load(); sent == 0 || float64(ok) < 0.99*float64(sent) {
		t.Errorf("well-behaved clients served %d/%d, want ≥ 99%%: %v", ok, sent, failures)
	}
	if floodOK.Load() == 0 {
		t.Errorf("no flooder call was served: the gateway must give each client its share, not refuse all")
	}
}

// floodHTTP keeps connections warm, as a client library does.
var floodHTTP = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
