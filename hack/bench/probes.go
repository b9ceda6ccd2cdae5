package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
)

// probeResult is what the probe scenario measured over its window (after the warm-up).
type probeResult struct {
	tokens      int
	window      time.Duration
	cpuCores    float64 // average CPU use, in cores
	goroutines  float64 // highest go_goroutines seen
	peakRSS     float64
	perTokenMin float64 // mean requests per token per minute
	// gap is the median time between two requests of the same token (whole run).
	gap time.Duration
	// maxTokenMin is the most requests one token made in any 60-second span.
	maxTokenMin int
	// maxHostMin is the most requests one API (one host, so one per-IP budget) got in any
	// 60-second span.
	maxHostMin    int
	tooMany       int // 429 answers over the whole run
	writesPerMin  float64
	probesPerHost map[jetonv1alpha1.API]int
}

var probeAPIs = []jetonv1alpha1.API{jetonv1alpha1.APIEntreprise, jetonv1alpha1.APIParticulier, jetonv1alpha1.DemarchesNumeriques}

// maxInWindow returns the most times that fall in any span of length w (times sorted).
func maxInWindow(times []time.Time, w time.Duration) int {
	best, lo := 0, 0
	for hi := range times {
		for times[hi].Sub(times[lo]) >= w {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// runProbes creates t TechnicalTokens, spread over the three APIs, each API served by the
// emulator on its own loopback port (so each is its own host for the operator's per-host
// rate limit, as in production), starts the operator and watches it probe.
func runProbes(ctx context.Context, cfg benchConfig, opArgs operatorArgs) (probeResult, error) {
	res := probeResult{tokens: cfg.probeTokens, probesPerHost: map[jetonv1alpha1.API]int{}}
	c, err := startCluster(ctx)
	if err != nil {
		return res, err
	}
	defer c.stop()
	opArgs.kubeconfig = c.env.Kubeconfig

	emu := emulator.New()
	baseURL := map[jetonv1alpha1.API]string{}
	for _, api := range probeAPIs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return res, err
		}
		srv := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		baseURL[api] = "http://" + ln.Addr().String()
	}

	ids := make([]string, cfg.probeTokens)
	apis := make([]jetonv1alpha1.API, cfg.probeTokens)
	demarche := int64(12345)
	err = parallel(ctx, cfg.probeTokens, setupWorkers, func(ctx context.Context, i int) error {
		api := probeAPIs[i%len(probeAPIs)]
		opts := emulator.MintOptions{Scopes: []string{"unites_legales_etablissements_insee"}, Subject: "bench technical token"}
		if api == jetonv1alpha1.DemarchesNumeriques {
			opts = emulator.MintOptions{Scopes: []string{"12345"}, ExpiresAt: time.Now().AddDate(1, 0, 0)}
		}
		tok, id, err := emu.Mint(api, opts)
		if err != nil {
			return err
		}
		ids[i], apis[i] = id, api
		name := fmt.Sprintf("tt-%05d", i)
		src := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-token", Namespace: credentialsNamespace},
			Data: map[string][]byte{"token": []byte(tok)}}
		tt := &jetonv1alpha1.TechnicalToken{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: credentialsNamespace},
			Spec: jetonv1alpha1.TechnicalTokenSpec{
				API: api, BaseURL: baseURL[api],
				TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: src.Name, Key: "token"},
				Interval:       &metav1.Duration{Duration: cfg.probeInterval},
				Timeout:        &metav1.Duration{Duration: 10 * time.Second},
			},
		}
		if api == jetonv1alpha1.DemarchesNumeriques {
			tt.Spec.DemarcheNumber = &demarche
		}
		if err := c.setup.Create(ctx, src); err != nil {
			return err
		}
		return c.setup.Create(ctx, tt)
	})
	if err != nil {
		return res, fmt.Errorf("creating TechnicalTokens: %w", err)
	}

	logf("probes: starting the operator with %d TechnicalTokens (interval %s), watching for %s after a %s warm-up",
		cfg.probeTokens, cfg.probeInterval, cfg.probeDuration, cfg.probeWarmup)
	var hosts []string
	for _, u := range baseURL {
		hosts = append(hosts, strings.TrimPrefix(u, "http://"))
	}
	// 1000 TechnicalTokens are a load test of the prober, not a vendor's setup: they get the
	// whole address budget the prober had before the gateway shared it (800/min, the default
	// until issue 22; now 60), so the figures stay comparable.
	opArgs.extra = append(slices.Clone(opArgs.extra), "--allowed-api-hosts", strings.Join(hosts, ","),
		"--api-host-budget-per-minute=800")
	op, err := startOperator(ctx, opArgs, "probes")
	if err != nil {
		return res, err
	}
	defer op.stop()
	started := time.Now()

	// Warm-up: the first probe of every token is due at once; the steady state comes after.
	var from procStats
	var fromWrites float64
	waitUntil := func(t time.Time, sample func() error) error {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		timer := time.NewTimer(time.Until(t))
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-timer.C:
				return nil
			case <-tick.C:
				if err := sample(); err != nil {
					return err
				}
			}
		}
	}
	noop := func() error { return nil }
	if err := waitUntil(started.Add(cfg.probeWarmup), noop); err != nil {
		return res, err
	}
	windowStart := time.Now()
	if from, err = readProcStats(op.pid()); err != nil {
		return res, err
	}
	ss, err := op.scrape(ctx)
	if err != nil {
		return res, err
	}
	fromWrites = ss.apiWrites()
	res.goroutines = ss.sum("go_goroutines", nil)
	sample := func() error {
		ss, err := op.scrape(ctx)
		if err != nil {
			return err
		}
		res.goroutines = max(res.goroutines, ss.sum("go_goroutines", nil))
		return nil
	}
	if err := waitUntil(windowStart.Add(cfg.probeDuration), sample); err != nil {
		return res, err
	}
	windowEnd := time.Now()
	to, err := readProcStats(op.pid())
	if err != nil {
		return res, err
	}
	if ss, err = op.scrape(ctx); err != nil {
		return res, err
	}
	res.window = windowEnd.Sub(windowStart)
	minutes := res.window.Minutes()
	res.cpuCores = (to.cpu - from.cpu).Seconds() / res.window.Seconds()
	res.peakRSS = to.peakRSS
	res.writesPerMin = (ss.apiWrites() - fromWrites) / minutes

	inWindow := 0
	var gaps []float64
	byHost := map[jetonv1alpha1.API][]time.Time{}
	for i, id := range ids {
		var times []time.Time
		for _, r := range emu.Requests(id) {
			if r.Status == http.StatusTooManyRequests {
				res.tooMany++
			}
			times = append(times, r.Time)
			if !r.Time.Before(windowStart) && r.Time.Before(windowEnd) {
				inWindow++
			}
		}
		slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		for j := 1; j < len(times); j++ {
			gaps = append(gaps, times[j].Sub(times[j-1]).Seconds())
		}
		res.maxTokenMin = max(res.maxTokenMin, maxInWindow(times, time.Minute))
		byHost[apis[i]] = append(byHost[apis[i]], times...)
	}
	res.gap = time.Duration(median(gaps) * float64(time.Second))
	res.perTokenMin = float64(inWindow) / float64(cfg.probeTokens) / minutes
	for api, times := range byHost {
		slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		n := maxInWindow(times, time.Minute)
		res.probesPerHost[api] = n
		res.maxHostMin = max(res.maxHostMin, n)
	}
	return res, nil
}
