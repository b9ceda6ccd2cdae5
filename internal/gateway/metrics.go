package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the gateway's Prometheus metrics. Label values come from the Habilitation the
// credential names (its namespace, name, client and API), never from the request: an
// unauthenticated request counts with empty Habilitation labels, so no caller can create
// series at will.
type Metrics struct {
	// Requests counts answers to authenticated requests by Habilitation, API and HTTP code
	// (the gateway's own refusals included).
	Requests *prometheus.CounterVec
	// Refusals counts requests the gateway answered itself, by reason (Refusal.Reason).
	Refusals *prometheus.CounterVec
	// UpstreamDuration is the time to the upstream answer's headers, by API.
	UpstreamDuration *prometheus.HistogramVec
	// Upstream429 counts 429s the APIs sent to the gateway: each one is a step towards a
	// ban of the vendor's address, so any one pages (JetonGatewayUpstreamThrottled).
	Upstream429 *prometheus.CounterVec
	// BudgetRemaining is the share (0 to 1) of this replica's per-host budget left now.
	BudgetRemaining *prometheus.GaugeVec
	// ReadyReplicas is how many ready endpoints the gateway's Service has, as this replica
	// sees them; the budgets are split among max(ReadyReplicas, --replicas), so a replica
	// never takes more than its share, and the alert compares this with ExpectedReplicas.
	ReadyReplicas prometheus.Gauge
	// ExpectedReplicas is --replicas, for the alert on unavailable replicas.
	ExpectedReplicas prometheus.Gauge
}

// Label names of the Habilitation a request is counted for.
var habilitationLabels = []string{"namespace", "habilitation", "client", "api"}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jeton_gateway_requests_total",
			Help: "Requests answered by the gateway, by Habilitation, API and HTTP code (its own refusals included).",
		}, append(habilitationLabels, "code")),
		Refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jeton_gateway_refusals_total",
			Help: "Requests the gateway refused itself, by reason (throttled, recipient_mismatch, invalid_credential, ...); Habilitation labels empty when the caller is not identified.",
		}, append(habilitationLabels, "reason")),
		UpstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jeton_gateway_upstream_duration_seconds",
			Help:    "Time from sending a request upstream to its answer's headers, by API.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"api"}),
		Upstream429: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jeton_gateway_upstream_throttled_total",
			Help: "429 answers the APIs sent to the gateway, by API host. Any one means the vendor's limits were reached.",
		}, []string{"host", "api"}),
		BudgetRemaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jeton_gateway_budget_remaining_ratio",
			Help: "Share of this replica's per-host budget left now (0 to 1), by API host.",
		}, []string{"host"}),
		ReadyReplicas: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jeton_gateway_ready_replicas",
			Help: "Ready endpoints of the gateway's Service as this replica sees them (the budgets are split among max(this, --replicas)).",
		}),
		ExpectedReplicas: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jeton_gateway_expected_replicas",
			Help: "Gateway replicas expected (--replicas).",
		}),
	}
	reg.MustRegister(m.Requests, m.Refusals, m.UpstreamDuration, m.Upstream429, m.BudgetRemaining, m.ReadyReplicas, m.ExpectedReplicas)
	return m
}
