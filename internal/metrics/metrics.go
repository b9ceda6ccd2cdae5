// Package metrics exposes jeton's Prometheus metrics.
//
// Two families live here:
//
//   - State gauges (token expiry, readiness, last probe result) are computed at scrape time
//     from the manager's cache by a custom collector, so a deleted object leaves no series and
//     nothing goes stale between reconciliations.
//   - Event counters and histograms (probes, workload restarts) are recorded by the
//     reconcilers through ObserveProbe and WorkloadRestarted, and dropped with the Forget
//     functions when their object goes away.
//
// Labels name objects (kind, namespace, name, client, api, environment, reason, result) and
// never carry a token or a token fingerprint. See docs/alerts.md for the label conventions.
package metrics

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Metric names, exported so tests and tooling can refer to them.
const (
	TokenExpirationName = "jeton_token_expiration_timestamp_seconds"
	ResourceReadyName   = "jeton_resource_ready"
	ProbeSuccessName    = "jeton_probe_success"
	ProbeLastName       = "jeton_probe_last_timestamp_seconds"
	ProbeIntervalName   = "jeton_probe_interval_seconds"
	HostUnreachableName = "jeton_api_host_unreachable"
	ProbeDurationName   = "jeton_probe_duration_seconds"
	ProbeTotalName      = "jeton_probe_total"
	WorkloadRestartName = "jeton_workload_restarts_total"
	CollectErrorsName   = "jeton_metrics_collect_errors_total"
)

const (
	probeDurationHelp    = "Duration of TechnicalToken probes, from sending the request to classifying the answer."
	probeTotalHelp       = "TechnicalToken probes, by result (the probe classification, e.g. ProbeSucceeded, Unauthorized, RateLimited)."
	workloadRestartsHelp = "Workloads restarted by jeton after the token of a Habilitation rotated; namespace and name are the Habilitation's."
	collectErrorsHelp    = "Failures to list a kind from the cache while computing the jeton state gauges; that kind's gauges are missing from the failed scrape."
)

var (
	probeLabels   = []string{"namespace", "name", "api", "environment"}
	restartLabels = []string{"namespace", "name", "client", "api", "environment"}

	probeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: ProbeDurationName,
		Help: probeDurationHelp,
		// Probes time out after spec.timeout (10s by default); 30s catches longer timeouts.
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}, probeLabels)

	probeTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ProbeTotalName,
		Help: probeTotalHelp,
	}, append(append([]string{}, probeLabels...), "result"))

	workloadRestarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: WorkloadRestartName,
		Help: workloadRestartsHelp,
	}, restartLabels)

	collectErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: CollectErrorsName,
		Help: collectErrorsHelp,
	}, []string{"kind"})
)

// ObserveProbe records one probe of the TechnicalToken namespace/name. result is the probe
// classification and must come from a small fixed set (it becomes a label value).
func ObserveProbe(namespace, name, api, environment, result string, d time.Duration) {
	probeDuration.WithLabelValues(namespace, name, api, environment).Observe(d.Seconds())
	probeTotal.WithLabelValues(namespace, name, api, environment, result).Inc()
}

// ForgetTechnicalToken deletes the probe series of the TechnicalToken namespace/name; call it
// when the TechnicalToken is deleted so it leaves no series behind.
func ForgetTechnicalToken(namespace, name string) {
	l := prometheus.Labels{"namespace": namespace, "name": name}
	probeDuration.DeletePartialMatch(l)
	probeTotal.DeletePartialMatch(l)
}

// WorkloadRestarted records that n workloads were restarted for the Habilitation
// namespace/name (its own namespace, not the client namespace where the workloads run).
func WorkloadRestarted(namespace, name, client, api, environment string, n int) {
	if n <= 0 {
		return
	}
	workloadRestarts.WithLabelValues(namespace, name, client, api, environment).Add(float64(n))
}

// ForgetHabilitation deletes the restart series of the Habilitation namespace/name.
func ForgetHabilitation(namespace, name string) {
	workloadRestarts.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "name": name})
}

// Register registers the event vectors and a state collector reading from reader (use the
// manager's cache: mgr.GetCache()) with reg (the manager serves
// sigs.k8s.io/controller-runtime/pkg/metrics.Registry).
//
// Registering the event vectors again is harmless, so Register may be called with several
// registries; calling it twice on the same registry returns an error, because two state
// collectors would emit every series twice.
func Register(reg prometheus.Registerer, reader client.Reader) error {
	if reader == nil {
		return errors.New("metrics: Register needs a client.Reader (the manager's cache)")
	}
	for _, c := range []prometheus.Collector{probeDuration, probeTotal, workloadRestarts, collectErrors} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) && are.ExistingCollector == c {
				continue
			}
			return fmt.Errorf("metrics: registering jeton event metrics: %w", err)
		}
	}
	if err := reg.Register(NewCollector(reader)); err != nil {
		return fmt.Errorf("metrics: registering the jeton state collector (was Register called twice on the same registry?): %w", err)
	}
	return nil
}
