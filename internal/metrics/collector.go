package metrics

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/probe"
)

// Kind label values.
const (
	KindHabilitation   = "Habilitation"
	KindTechnicalToken = "TechnicalToken"
	KindPublicClient   = "PublicClient"
)

// ReasonNoReadyCondition is the reason label of jeton_resource_ready for an object that has
// no Ready condition yet (jeton has not reconciled it).
const ReasonNoReadyCondition = "Unknown"

// collectTimeout bounds one scrape's reads from the cache, well under Prometheus' default
// 10s scrape timeout: a cache that is not synced yet must not hang the /metrics endpoint.
const collectTimeout = 5 * time.Second

// Help texts, part of the contract with dashboards and alerts.
const (
	tokenExpirationHelp = "When the token of a Habilitation or TechnicalToken expires (status.expiresAt), in seconds since the epoch. " +
		"Absent while the expiry is unknown. client is empty for TechnicalTokens."
	resourceReadyHelp = "1 when the object's Ready condition is True, else 0; reason is the Ready condition's reason. " +
		"For PublicClients (cluster-scoped) namespace is the client namespace and client is the PublicClient's name."
	probeSuccessHelp = "1 when the last probe of a TechnicalToken succeeded, else 0. " +
		"Absent before the first probe and while the TechnicalToken is suspended."
	probeLastHelp = "When the last probe of a TechnicalToken finished (status.lastProbeTime), in seconds since the epoch. " +
		"Absent before the first probe and while the TechnicalToken is suspended."
	probeIntervalHelp = "Seconds between two probes of a TechnicalToken (spec.interval), present only while jeton schedules its probes " +
		"(not suspended, token Secret found and usable): the alerts compare it with the age of the last probe."
	hostUnreachableHelp = "1 when the last probe of every scheduled TechnicalToken of an API host got no HTTP answer (timeout, reset, " +
		"refused connection), else 0: the vendor's address (a 12-hour IP ban) or the network, not the tokens. One series per host " +
		"that some scheduled TechnicalToken probes."
)

var (
	objectLabels = []string{"kind", "namespace", "name", "client", "api", "environment"}

	tokenExpirationDesc = prometheus.NewDesc(TokenExpirationName, tokenExpirationHelp, objectLabels, nil)
	resourceReadyDesc   = prometheus.NewDesc(ResourceReadyName, resourceReadyHelp,
		append(append([]string{}, objectLabels...), "reason"), nil)
	probeSuccessDesc  = prometheus.NewDesc(ProbeSuccessName, probeSuccessHelp, probeLabels, nil)
	probeLastDesc     = prometheus.NewDesc(ProbeLastName, probeLastHelp, probeLabels, nil)
	probeIntervalDesc = prometheus.NewDesc(ProbeIntervalName, probeIntervalHelp, probeLabels, nil)
	// host is bounded by what jeton probes: only hosts the API host policy allows are ever
	// scheduled (status.nextProbeTime is cleared for a refused one).
	hostUnreachableDesc = prometheus.NewDesc(HostUnreachableName, hostUnreachableHelp, []string{"host"}, nil)
)

// defaultProbeInterval is the CRD default of spec.interval, for objects read before defaulting.
const defaultProbeInterval = 5 * time.Minute

// Collector computes jeton's state gauges at scrape time from a client.Reader.
type Collector struct {
	reader  client.Reader
	log     logr.Logger
	timeout time.Duration
}

// NewCollector returns a collector reading from reader, normally the manager's cache.
func NewCollector(reader client.Reader) *Collector {
	return &Collector{reader: reader, log: logf.Log.WithName("metrics"), timeout: collectTimeout}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- tokenExpirationDesc
	ch <- resourceReadyDesc
	ch <- probeSuccessDesc
	ch <- probeLastDesc
	ch <- probeIntervalDesc
	ch <- hostUnreachableDesc
}

// Collect implements prometheus.Collector. A kind that cannot be listed is logged, counted in
// jeton_metrics_collect_errors_total and skipped: failing the whole scrape would also hide the
// operator's other metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	// The objects are only read, never modified, so skip the cache's deep copy.
	opts := []client.ListOption{client.UnsafeDisableDeepCopy}

	var habs jetonv1alpha1.HabilitationList
	if c.list(ctx, KindHabilitation, &habs, opts) {
		for i := range habs.Items {
			h := &habs.Items[i]
			labels := []string{KindHabilitation, h.Namespace, h.Name, h.Spec.ClientRef.Name, string(h.Spec.API), environment(h.Spec.Environment)}
			emitExpiry(ch, h.Status.ExpiresAt, labels)
			emitReady(ch, h.Status.Conditions, labels)
		}
	}

	var tts jetonv1alpha1.TechnicalTokenList
	if c.list(ctx, KindTechnicalToken, &tts, opts) {
		for i := range tts.Items {
			t := &tts.Items[i]
			env := environment(t.Spec.Environment)
			labels := []string{KindTechnicalToken, t.Namespace, t.Name, "", string(t.Spec.API), env}
			emitExpiry(ch, t.Status.ExpiresAt, labels)
			emitReady(ch, t.Status.Conditions, labels)
			// A suspended token is not probed: its last result says nothing about now.
			if t.Spec.Suspend {
				continue
			}
			series := []string{t.Namespace, t.Name, string(t.Spec.API), env}
			if t.Status.LastResult != nil {
				ch <- prometheus.MustNewConstMetric(probeSuccessDesc, prometheus.GaugeValue,
					boolValue(t.Status.LastResult.Reason == jetonv1alpha1.ReasonProbeSucceeded), series...)
			}
			// The age of the last probe is what tells a prober that has stopped: its other
			// series keep their last values.
			if t.Status.LastProbeTime != nil {
				ch <- prometheus.MustNewConstMetric(probeLastDesc, prometheus.GaugeValue,
					float64(t.Status.LastProbeTime.Unix()), series...)
			}
			// The reconciler sets nextProbeTime exactly when it schedules probes (it clears it
			// for a stalled token or a missing Secret), so the interval is published only for
			// tokens that should be probed, and "scheduled but never probed" is visible. The
			// manager's --test-probe-interval (tests only) is not reflected.
			if t.Status.NextProbeTime != nil {
				interval := defaultProbeInterval
				if t.Spec.Interval != nil && t.Spec.Interval.Duration > 0 {
					interval = t.Spec.Interval.Duration
				}
				ch <- prometheus.MustNewConstMetric(probeIntervalDesc, prometheus.GaugeValue, interval.Seconds(), series...)
			}
		}
		for _, h := range probe.HostHealths(tts.Items) {
			ch <- prometheus.MustNewConstMetric(hostUnreachableDesc, prometheus.GaugeValue, boolValue(h.Unreachable()), h.Host)
		}
	}

	var pcs jetonv1alpha1.PublicClientList
	if c.list(ctx, KindPublicClient, &pcs, opts) {
		for i := range pcs.Items {
			p := &pcs.Items[i]
			ns := p.Status.Namespace
			if ns == "" {
				ns = p.TargetNamespace()
			}
			emitReady(ch, p.Status.Conditions, []string{KindPublicClient, ns, p.Name, p.Name, "", ""})
		}
	}
}

func (c *Collector) list(ctx context.Context, kind string, list client.ObjectList, opts []client.ListOption) bool {
	if err := c.reader.List(ctx, list, opts...); err != nil {
		collectErrors.WithLabelValues(kind).Inc()
		c.log.Error(err, "Cannot list objects for the jeton metrics; their series are missing from this scrape", "kind", kind)
		return false
	}
	return true
}

func emitExpiry(ch chan<- prometheus.Metric, expiresAt *metav1.Time, labels []string) {
	if expiresAt == nil || expiresAt.IsZero() {
		return
	}
	ch <- prometheus.MustNewConstMetric(tokenExpirationDesc, prometheus.GaugeValue,
		float64(expiresAt.Unix()), labels...)
}

func emitReady(ch chan<- prometheus.Metric, conditions []metav1.Condition, labels []string) {
	value, reason := 0.0, ReasonNoReadyCondition
	if cond := meta.FindStatusCondition(conditions, jetonv1alpha1.ConditionReady); cond != nil {
		value, reason = boolValue(cond.Status == metav1.ConditionTrue), cond.Reason
	}
	ch <- prometheus.MustNewConstMetric(resourceReadyDesc, prometheus.GaugeValue, value, append(labels, reason)...)
}

// environment applies the CRD default, so that objects read before defaulting (or from a
// fake client) get the same label as the API server would give them.
func environment(e jetonv1alpha1.Environment) string {
	if e == "" {
		return string(jetonv1alpha1.EnvironmentProduction)
	}
	return string(e)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
