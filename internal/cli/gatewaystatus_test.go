package cli

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/jeton-dev/jeton/internal/gateway"
)

// fakeGateway is one gateway replica's real metrics (gateway.NewMetrics), as its /metrics
// serves them, so that the metric and label names the tests parse are the gateway's own.
type fakeGateway struct {
	reg     *prometheus.Registry
	metrics *gateway.Metrics
	// start is process_start_time_seconds, the process collector's name (checked below).
	start prometheus.Gauge
}

func newFakeGateway(startedAt time.Time) *fakeGateway {
	g := &fakeGateway{reg: prometheus.NewRegistry()}
	g.metrics = gateway.NewMetrics(g.reg)
	g.metrics.ExpectedReplicas.Set(2)
	g.metrics.ReadyReplicas.Set(2)
	g.start = prometheus.NewGauge(prometheus.GaugeOpts{Name: metricProcessStartTime, Help: "Start time of the process since unix epoch in seconds."})
	g.start.Set(float64(startedAt.Unix()))
	g.reg.MustRegister(g.start)
	return g
}

// habilitation labels: namespace, habilitation, client, api.
func (g *fakeGateway) request(ns, hab, client, api, code string, n int) {
	g.metrics.Requests.WithLabelValues(ns, hab, client, api, code).Add(float64(n))
}

func (g *fakeGateway) refuse(ns, hab, client, api, reason string, n int) {
	g.metrics.Refusals.WithLabelValues(ns, hab, client, api, reason).Add(float64(n))
}

// scrape is what the plugin reads: the text promhttp serves, parsed.
func (g *fakeGateway) scrape(t *testing.T, pod string) GatewayReplica {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, req)
	fams, err := ParseGatewayMetrics(rec.Body)
	if err != nil {
		t.Fatalf("parsing the exposition of %s: %v", pod, err)
	}
	return GatewayReplica{Pod: pod, Families: fams}
}

// The start time status reads is the one the gateway's process collector exposes.
func TestProcessStartTimeName(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if n, err := testutil.GatherAndCount(reg, metricProcessStartTime); err != nil || n != 1 {
		t.Errorf("the process collector exposes %d series named %s (%v), want 1", n, metricProcessStartTime, err)
	}
}

func TestGatewayStatus(t *testing.T) {
	now := time.Date(2030, 1, 15, 12, 0, 0, 0, time.UTC)
	// Two replicas, the second younger: every count sums over both.
	twoReplicas := func(t *testing.T) []GatewayReplica {
		a, b := newFakeGateway(now.Add(-5*time.Hour)), newFakeGateway(now.Add(-90*time.Minute))
		a.request("creds", "mairie-ae", "mairie", "APIEntreprise", "200", 90)
		b.request("creds", "mairie-ae", "mairie", "APIEntreprise", "200", 10)
		a.request("creds", "mairie-ae", "mairie", "APIEntreprise", "404", 3)
		b.request("creds", "mairie-ae", "mairie", "APIEntreprise", "429", 4)
		a.request("other", "ccas-ap", "ccas", "APIParticulier", "502", 1)
		a.request("other", "ccas-ap", "ccas", "APIParticulier", "429", 7)
		a.refuse("creds", "mairie-ae", "mairie", "APIEntreprise", gateway.ReasonThrottled, 3)
		b.refuse("creds", "mairie-ae", "mairie", "APIEntreprise", gateway.ReasonThrottled, 1)
		b.refuse("creds", "mairie-ae", "mairie", "APIEntreprise", gateway.ReasonUpstreamHeld, 2)
		a.refuse("other", "ccas-ap", "ccas", "APIParticulier", gateway.ReasonThrottled, 7)
		a.refuse("creds", "mairie-ae", "mairie", "APIEntreprise", gateway.ReasonRecipientMismatch, 5)
		// Not identified: no Habilitation labels.
		b.refuse("", "", "", "", gateway.ReasonInvalidCredential, 6)
		// A series at zero (pre-created) is no throttled client.
		a.refuse("creds", "idle", "mairie", "APIEntreprise", gateway.ReasonThrottled, 0)
		return []GatewayReplica{a.scrape(t, "gw-a"), b.scrape(t, "gw-b")}
	}
	upstream429 := func(t *testing.T) []GatewayReplica {
		r := twoReplicas(t)
		g := newFakeGateway(now.Add(-time.Hour))
		g.metrics.Upstream429.WithLabelValues("entreprise.api.gouv.fr", "APIEntreprise").Add(2)
		g.metrics.Upstream429.WithLabelValues("particulier.api.gouv.fr", "APIParticulier") // at zero
		return append(r, g.scrape(t, "gw-c"))
	}
	manyThrottled := func(t *testing.T) []GatewayReplica {
		g := newFakeGateway(now.Add(-time.Hour))
		for i := 1; i <= 12; i++ {
			g.refuse("creds", fmt.Sprintf("hab-%02d", i), fmt.Sprintf("client-%02d", i), "APIEntreprise", gateway.ReasonThrottled, i)
		}
		return []GatewayReplica{g.scrape(t, "gw-a")}
	}
	hostile := func(t *testing.T) []GatewayReplica {
		g := newFakeGateway(now.Add(-time.Hour))
		long := "evil\n  UPSTREAM 429s - forged line\x1b[2J" + strings.Repeat("x", 300)
		g.refuse("creds", long, long, "APIEntreprise", gateway.ReasonThrottled, 1)
		return []GatewayReplica{g.scrape(t, "gw-a")}
	}

	tests := []struct {
		name     string
		scrape   func(t *testing.T) GatewayScrape
		scope    string
		action   bool
		want     []string // lines (or parts of lines) of the output, in order
		wantNot  []string
		maxLines int
	}{
		{
			name: "no gateway pod: one line",
			scrape: func(*testing.T) GatewayScrape {
				return GatewayScrape{Namespace: "jeton-system", Unavailable: "no gateway pod in namespace jeton-system"}
			},
			want:     []string{"GATEWAY - no gateway pod in namespace jeton-system"},
			maxLines: 2,
		},
		{
			name: "two replicas summed, nothing throttled upstream",
			scrape: func(t *testing.T) GatewayScrape {
				return GatewayScrape{Namespace: "jeton-system", Replicas: twoReplicas(t)}
			},
			want: []string{
				"GATEWAY (namespace jeton-system) - 2 of 2 replica(s) reached; 2 ready of 2 expected, as they see it",
				"counts since each replica started (up 1h30m to 5h0m)",
				"requests: 115, 2xx 100, 4xx 14, 5xx 1 (429 11)",
				"refused by the gateway: 24, throttled 11, invalid_credential 6, recipient_mismatch 5, upstream_held 2",
				"Habilitation other/ccas-ap  client=ccas  api=APIParticulier  throttled 7, upstream_held 0",
				"Habilitation creds/mairie-ae  client=mairie  api=APIEntreprise  throttled 4, upstream_held 2",
				"upstream 429s: none",
			},
			wantNot: []string{"idle", "not reached"},
		},
		{
			name: "-n: only that namespace's Habilitations, the unidentified left out",
			scrape: func(t *testing.T) GatewayScrape {
				return GatewayScrape{Namespace: "jeton-system", Replicas: twoReplicas(t)}
			},
			scope: "creds",
			want: []string{
				"counts since each replica started (up 1h30m to 5h0m), Habilitations of namespace creds only",
				"requests: 107, 2xx 100, 4xx 7 (429 4)",
				"refused by the gateway: 11, recipient_mismatch 5, throttled 4, upstream_held 2",
				"Habilitation creds/mairie-ae",
			},
			wantNot: []string{"ccas", "invalid_credential"},
		},
		{
			name:   "upstream 429s need action, even with -n",
			scrape: func(t *testing.T) GatewayScrape { return GatewayScrape{Namespace: "gw", Replicas: upstream429(t)} },
			scope:  "creds",
			action: true,
			want: []string{
				"3 of 3 replica(s) reached",
				"UPSTREAM 429s - needs action",
				"entreprise.api.gouv.fr  2",
			},
			wantNot: []string{"particulier.api.gouv.fr"},
		},
		{
			name: "a replica not reached says why; the others still count",
			scrape: func(t *testing.T) GatewayScrape {
				r := twoReplicas(t)
				r[1] = GatewayReplica{Pod: "gw-b", Unreached: "not running (phase Pending, no pod IP yet)"}
				return GatewayScrape{Namespace: "jeton-system", Replicas: r}
			},
			want: []string{
				"1 of 2 replica(s) reached",
				"not reached: gw-b: not running (phase Pending, no pod IP yet)",
				"(up 5h0m)",
				"requests: 101, 2xx 90, 4xx 10, 5xx 1 (429 7)",
			},
		},
		{
			name: "no replica reached: no counts to show",
			scrape: func(*testing.T) GatewayScrape {
				return GatewayScrape{Namespace: "jeton-system", Replicas: []GatewayReplica{{Pod: "gw-a", Unreached: "the API server could not reach it"}}}
			},
			want:     []string{"0 of 1 replica(s) reached", "not reached: gw-a: the API server could not reach it"},
			wantNot:  []string{"requests:"},
			maxLines: 3,
		},
		{
			name: "throttled clients: the top 10, most first",
			scrape: func(t *testing.T) GatewayScrape {
				return GatewayScrape{Namespace: "jeton-system", Replicas: manyThrottled(t)}
			},
			want: []string{"Habilitation creds/hab-12", "Habilitation creds/hab-11", "Habilitation creds/hab-03", "... and 2 more"},
			// hab-02 and hab-01 are the 11th and 12th.
			wantNot: []string{"hab-02", "hab-01"},
		},
		{
			name: "label values bounded to one short line",
			scrape: func(t *testing.T) GatewayScrape {
				return GatewayScrape{Namespace: "jeton-system", Replicas: hostile(t)}
			},
			want:    []string{"Habilitation creds/evil   UPSTREAM 429s - forged line [2Jxxx", "…  client=evil"},
			wantNot: []string{"\x1b", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := GatewayStatus(tc.scrape(t), tc.scope, now)
			if rep.NeedsAction() != tc.action {
				t.Errorf("NeedsAction() = %v, want %v", rep.NeedsAction(), tc.action)
			}
			var buf bytes.Buffer
			WriteGatewayStatus(&buf, rep)
			out := buf.String()
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("output lacks %q (or not in this order):\n%s", w, out)
					continue
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tc.wantNot {
				if strings.Contains(out, w) {
					t.Errorf("output holds %q:\n%s", w, out)
				}
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if tc.maxLines > 0 && len(lines) > tc.maxLines {
				t.Errorf("%d lines, want at most %d:\n%s", len(lines), tc.maxLines, out)
			}
			for _, l := range lines {
				if n := len([]rune(l)); n > 400 {
					t.Errorf("a line of %d characters: %q", n, l)
				}
			}
		})
	}
}

func TestParseGatewayMetrics(t *testing.T) {
	g := newFakeGateway(time.Now())
	g.request("creds", "h", "c", "APIEntreprise", "200", 1)
	fams := g.scrape(t, "gw").Families
	for _, name := range []string{metricGatewayRequests, metricGatewayReadyReplicas, metricGatewayExpectedReplicas} {
		if fams[name] == nil {
			t.Errorf("no family %s in the gateway's exposition: did a name change in internal/gateway/metrics.go?", name)
		}
	}
	// The gateway's names, as its own registry sees them.
	g.refuse("creds", "h", "c", "APIEntreprise", gateway.ReasonThrottled, 1)
	g.metrics.Upstream429.WithLabelValues("h", "APIEntreprise").Inc()
	if n, err := testutil.GatherAndCount(g.reg, metricGatewayRefusals, metricGatewayUpstreamThrottle); err != nil || n != 2 {
		t.Errorf("%d series named %s and %s (%v), want 2", n, metricGatewayRefusals, metricGatewayUpstreamThrottle, err)
	}
	var m dto.Metric
	if err := g.metrics.Refusals.WithLabelValues("creds", "h", "c", "APIEntreprise", gateway.ReasonThrottled).Write(&m); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"namespace", "habilitation", "client", "api", "reason"} {
		if label(&m, l) == "" {
			t.Errorf("refusals have no label %q", l)
		}
	}
	for _, bad := range []string{"jeton_gateway_requests_total{code=\"200\" 1\n", "# TYPE x counter\nx{a=\"b\"} not-a-number\n"} {
		if _, err := ParseGatewayMetrics(strings.NewReader(bad)); err == nil {
			t.Errorf("parsing %q: no error", bad)
		}
	}
}
