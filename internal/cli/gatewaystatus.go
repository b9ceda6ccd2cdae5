package cli

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/jeton-dev/jeton/internal/gateway"
)

// The gateway's metrics that status reads (internal/gateway/metrics.go; the tests build
// their exposition with gateway.NewMetrics, so a rename there fails them), and the process
// collector's start time (cmd/gateway/run.go registers it), for "since each replica started".
const (
	metricGatewayRequests         = "jeton_gateway_requests_total"
	metricGatewayRefusals         = "jeton_gateway_refusals_total"
	metricGatewayUpstreamThrottle = "jeton_gateway_upstream_throttled_total"
	metricGatewayReadyReplicas    = "jeton_gateway_ready_replicas"
	metricGatewayExpectedReplicas = "jeton_gateway_expected_replicas"
	metricProcessStartTime        = "process_start_time_seconds"
)

// Bounds of what the Gateway section prints: label values come from Habilitations
// (tenants write their names) and hosts from the gateway's configuration, so each is cut,
// and each list is cut too, whatever the gateway exposes.
const (
	maxGatewayLabelLen    = 80
	maxGatewayRows        = 10
	maxGatewayReplicaRows = 10
	maxGatewayWhyLen      = 200
)

// GatewayReplica is one gateway pod's metrics, or why they could not be read.
type GatewayReplica struct {
	Pod string
	// Families are the parsed metrics; nil when Unreached says why not.
	Families  map[string]*dto.MetricFamily
	Unreached string
}

// GatewayScrape is what the plugin read from the gateway's pods.
type GatewayScrape struct {
	// Namespace is where the gateway's pods were listed.
	Namespace string
	Replicas  []GatewayReplica
	// Unavailable says why there is nothing to read at all (no gateway pod, no right to
	// list pods or to proxy to them); the section is then this one line.
	Unavailable string
}

// ParseGatewayMetrics parses a /metrics answer in the Prometheus text format.
func ParseGatewayMetrics(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// GatewayCount is one row: a label value (a reason, a host, a code class) and its count.
type GatewayCount struct {
	Key   string
	Count float64
}

// ThrottledClient is a Habilitation whose requests the gateway held back: over its own
// budget (throttled) or while the API asked to wait (upstream_held).
type ThrottledClient struct {
	Namespace, Habilitation, Client, API string
	Throttled, UpstreamHeld              float64
}

func (c ThrottledClient) total() float64 { return c.Throttled + c.UpstreamHeld }

// GatewayReport is the Gateway section of status, summed over the replicas reached.
type GatewayReport struct {
	Namespace   string
	Unavailable string
	// Listed pods, and those whose metrics were read; Unreached says why for the others.
	Listed, Reached int
	Unreached       []string // "pod: why"
	// Scope is the Habilitation namespace the rows are limited to ("" for all).
	Scope string
	// Uptime of the youngest and oldest replica reached, of the Started ones that expose
	// their start time: every count is since its replica started.
	YoungestUp, OldestUp time.Duration
	Started              int
	// Ready and expected replicas as the replicas see them (the largest value seen).
	ReadyReplicas, ExpectedReplicas float64
	Requests                        float64
	ByClass                         []GatewayCount // "2xx", "4xx", ...
	TooMany                         float64        // requests answered 429
	Refusals                        []GatewayCount // by reason, most first
	RefusalsTotal                   float64
	Throttled                       []ThrottledClient // most first, at most maxGatewayRows
	ThrottledMore                   int               // throttled clients not listed
	Upstream429                     []GatewayCount    // by host, most first
}

// NeedsAction is true when the APIs sent the gateway 429s: each is a step towards a ban of
// the vendor's address for every client (the JetonGatewayUpstreamThrottled alert pages).
func (r GatewayReport) NeedsAction() bool { return len(r.Upstream429) > 0 }

// GatewayStatus sums the replicas' metrics. scope keeps only the rows of Habilitations in
// that namespace ("" keeps all); upstream 429s have no Habilitation and always count: they
// threaten every client. now gives the replicas' uptime.
func GatewayStatus(s GatewayScrape, scope string, now time.Time) GatewayReport {
	rep := GatewayReport{Namespace: s.Namespace, Unavailable: s.Unavailable, Listed: len(s.Replicas), Scope: scope}
	classes := map[string]float64{}
	reasons := map[string]float64{}
	hosts := map[string]float64{}
	throttled := map[[4]string]*ThrottledClient{}
	inScope := func(m *dto.Metric) bool { return scope == "" || label(m, "namespace") == scope }
	for _, r := range s.Replicas {
		if r.Families == nil {
			rep.Unreached = append(rep.Unreached, bounded(r.Pod, maxGatewayLabelLen)+": "+bounded(r.Unreached, maxGatewayWhyLen))
			continue
		}
		rep.Reached++
		for _, m := range metricsOf(r.Families, metricGatewayRequests) {
			if !inScope(m) {
				continue
			}
			v := m.GetCounter().GetValue()
			rep.Requests += v
			code := label(m, "code")
			classes[codeClass(code)] += v
			if code == "429" {
				rep.TooMany += v
			}
		}
		for _, m := range metricsOf(r.Families, metricGatewayRefusals) {
			if !inScope(m) {
				continue
			}
			v := m.GetCounter().GetValue()
			reason := label(m, "reason")
			reasons[reason] += v
			rep.RefusalsTotal += v
			if reason != gateway.ReasonThrottled && reason != gateway.ReasonUpstreamHeld || v == 0 {
				continue
			}
			key := [4]string{label(m, "namespace"), label(m, "habilitation"), label(m, "client"), label(m, "api")}
			c := throttled[key]
			if c == nil {
				c = &ThrottledClient{Namespace: key[0], Habilitation: key[1], Client: key[2], API: key[3]}
				throttled[key] = c
			}
			if reason == gateway.ReasonThrottled {
				c.Throttled += v
			} else {
				c.UpstreamHeld += v
			}
		}
		for _, m := range metricsOf(r.Families, metricGatewayUpstreamThrottle) {
			hosts[label(m, "host")] += m.GetCounter().GetValue()
		}
		for _, m := range metricsOf(r.Families, metricGatewayReadyReplicas) {
			rep.ReadyReplicas = max(rep.ReadyReplicas, m.GetGauge().GetValue())
		}
		for _, m := range metricsOf(r.Families, metricGatewayExpectedReplicas) {
			rep.ExpectedReplicas = max(rep.ExpectedReplicas, m.GetGauge().GetValue())
		}
		for _, m := range metricsOf(r.Families, metricProcessStartTime) {
			if start := m.GetGauge().GetValue(); start > 0 {
				up := max(now.Sub(time.Unix(int64(start), 0)), 0)
				if rep.Started == 0 || up < rep.YoungestUp {
					rep.YoungestUp = up
				}
				rep.OldestUp = max(rep.OldestUp, up)
				rep.Started++
			}
		}
	}
	rep.ByClass = countsByKey(classes)
	rep.Refusals = countsByCount(reasons)
	rep.Upstream429 = countsByCount(hosts)
	clients := slices.Collect(maps.Values(throttled))
	slices.SortFunc(clients, func(a, b *ThrottledClient) int {
		return cmp.Or(cmp.Compare(b.total(), a.total()), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Habilitation, b.Habilitation),
			cmp.Compare(a.Client, b.Client), cmp.Compare(a.API, b.API))
	})
	for i, c := range clients {
		if i == maxGatewayRows {
			rep.ThrottledMore = len(clients) - i
			break
		}
		rep.Throttled = append(rep.Throttled, *c)
	}
	return rep
}

func metricsOf(families map[string]*dto.MetricFamily, name string) []*dto.Metric {
	if f := families[name]; f != nil {
		return f.GetMetric()
	}
	return nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// codeClass is "2xx" for "200", and "other" for anything that is not a 3-digit code.
func codeClass(code string) string {
	if len(code) == 3 && code[0] >= '1' && code[0] <= '5' {
		return code[:1] + "xx"
	}
	return "other"
}

// countsByCount lists the non-zero counts, largest first (then by key).
func countsByCount(m map[string]float64) []GatewayCount {
	out := countsByKey(m)
	slices.SortStableFunc(out, func(a, b GatewayCount) int { return cmp.Compare(b.Count, a.Count) })
	return out
}

// countsByKey lists the non-zero counts by key.
func countsByKey(m map[string]float64) []GatewayCount {
	var out []GatewayCount
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] > 0 {
			out = append(out, GatewayCount{Key: k, Count: m[k]})
		}
	}
	return out
}

// bounded makes s one line of at most n runes, control characters replaced, "…" marking a
// cut: label values and errors come from outside the plugin.
func bounded(s string, n int) string {
	var b strings.Builder
	i := 0
	for _, c := range s {
		if i == n {
			b.WriteString("…")
			break
		}
		if c == utf8.RuneError || c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			c = ' '
		}
		b.WriteRune(c)
		i++
	}
	return b.String()
}

// uptime is d, rounded to the minute, without seconds: "1h30m".
func uptime(d time.Duration) string {
	if d < time.Minute {
		return "under a minute"
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

func or(s, empty string) string {
	if s == "" {
		return empty
	}
	return s
}

// WriteGatewayStatus prints the Gateway section.
func WriteGatewayStatus(w io.Writer, r GatewayReport) {
	fmt.Fprintf(w, "\nGATEWAY")
	if r.Unavailable != "" {
		fmt.Fprintf(w, " - %s\n", r.Unavailable)
		return
	}
	fmt.Fprintf(w, " (namespace %s) - %d of %d replica(s) reached", r.Namespace, r.Reached, r.Listed)
	if r.ExpectedReplicas > 0 {
		fmt.Fprintf(w, "; %.0f ready of %.0f expected, as they see it", r.ReadyReplicas, r.ExpectedReplicas)
	}
	fmt.Fprintln(w)
	for i, u := range r.Unreached {
		if i == maxGatewayReplicaRows {
			fmt.Fprintf(w, "  ... and %d more not reached\n", len(r.Unreached)-i)
			break
		}
		fmt.Fprintf(w, "  not reached: %s\n", u)
	}
	if r.Reached == 0 {
		return
	}
	since := "counts since each replica started"
	switch {
	case r.Started == 0:
	case uptime(r.YoungestUp) == uptime(r.OldestUp):
		since += fmt.Sprintf(" (up %s)", uptime(r.OldestUp))
	default:
		since += fmt.Sprintf(" (up %s to %s)", uptime(r.YoungestUp), uptime(r.OldestUp))
	}
	if r.Scope != "" {
		since += ", Habilitations of namespace " + r.Scope + " only"
	}
	fmt.Fprintf(w, "  %s\n", since)

	fmt.Fprintf(w, "  requests: %.0f", r.Requests)
	for _, c := range r.ByClass {
		fmt.Fprintf(w, ", %s %.0f", c.Key, c.Count)
	}
	if r.TooMany > 0 {
		fmt.Fprintf(w, " (429 %.0f)", r.TooMany)
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "  refused by the gateway: %.0f", r.RefusalsTotal)
	for i, c := range r.Refusals {
		if i == maxGatewayRows {
			fmt.Fprintf(w, ", ... %d more reason(s)", len(r.Refusals)-i)
			break
		}
		fmt.Fprintf(w, ", %s %.0f", bounded(or(c.Key, "(none)"), maxGatewayLabelLen), c.Count)
	}
	fmt.Fprintln(w)

	if len(r.Throttled) == 0 {
		fmt.Fprintln(w, "  throttled clients: none")
	} else {
		fmt.Fprintf(w, "  throttled clients (held back over their budget, or while the API asked to wait), most first:\n")
		for _, c := range r.Throttled {
			fmt.Fprintf(w, "    Habilitation %s/%s  client=%s  api=%s  throttled %.0f, upstream_held %.0f\n",
				bounded(or(c.Namespace, "-"), maxGatewayLabelLen), bounded(or(c.Habilitation, "-"), maxGatewayLabelLen),
				bounded(or(c.Client, "-"), maxGatewayLabelLen), bounded(or(c.API, "-"), maxGatewayLabelLen), c.Throttled, c.UpstreamHeld)
		}
		if r.ThrottledMore > 0 {
			fmt.Fprintf(w, "    ... and %d more\n", r.ThrottledMore)
		}
	}

	if len(r.Upstream429) == 0 {
		fmt.Fprintln(w, "  upstream 429s: none")
		return
	}
	fmt.Fprintf(w, "  UPSTREAM 429s - needs action: the APIs throttled the gateway; ignoring 429s bans the vendor's address for every client (runbook JetonGatewayUpstreamThrottled, docs/alerts.md)\n")
	for i, c := range r.Upstream429 {
		if i == maxGatewayRows {
			fmt.Fprintf(w, "    ... and %d more host(s)\n", len(r.Upstream429)-i)
			break
		}
		fmt.Fprintf(w, "    %s  %.0f\n", bounded(or(c.Key, "-"), maxGatewayLabelLen), c.Count)
	}
}
