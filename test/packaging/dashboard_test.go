package packaging

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"

	"github.com/jeton-dev/jeton/internal/gateway"
)

// The Grafana variables the dashboard may use, and what the test puts in their place.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$__interval", "1m")

// evalSeconds is when promtool evaluates the queries: an hour of constant series, so that
// rate(), increase() and changes() over 1h have their samples.
const evalSeconds = 3600

type panel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// dashboardPanels reads config/grafana/jeton.json, rows flattened.
func dashboardPanels(t *testing.T) []panel {
	t.Helper()
	b, err := os.ReadFile(repoPath("config/grafana/jeton.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string  `json:"uid"`
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("config/grafana/jeton.json: %v", err)
	}
	if d.UID == "" {
		t.Error("the dashboard has no uid: Grafana would import a copy at every sync")
	}
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// dashboardQuery is one PromQL query of a panel, Grafana's variables replaced.
type dashboardQuery struct{ panel, expr string }

// dashboardQueries checks the panels' shape (unique ids, a description, the datasource
// variable, at least one query) and returns their queries.
func dashboardQueries(t *testing.T, panels []panel) []dashboardQuery {
	t.Helper()
	ids := map[int]bool{}
	var queries []dashboardQuery
	for _, p := range panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Description == "" {
			t.Errorf("panel %q has no description", p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the dashboard's datasource variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			expr := grafanaVariables.Replace(tg.Expr)
			if strings.Contains(expr, "$") {
				t.Errorf("panel %q: query %q uses a variable this test does not know", p.Title, tg.Expr)
				continue
			}
			queries = append(queries, dashboardQuery{p.Title, expr})
		}
	}
	return queries
}

// testGrafanaDashboard checks every panel's PromQL with promtool against the series the
// manager exposed in this run (as Prometheus would store them: job and instance labels, an
// up series), so that a renamed metric or label, or a query that no longer parses, fails.
// Each query must return something: the scenario puts jeton in every state a panel shows.
// The gateway's panels read the gateway's metrics as internal/gateway defines them
// (gatewaySeries), until the scenario runs a real gateway.
func testGrafanaDashboard(t *testing.T, obs observed) {
	queries := dashboardQueries(t, dashboardPanels(t))
	series := append(promSeries(t, obs), gatewaySeries(t)...)
	checkDashboardQueries(t, queries, series, "the manager's and the gateway's series")
}

// checkDashboardQueries has promtool evaluate each query on series; each must parse and
// return at least one sample.
func checkDashboardQueries(t *testing.T, queries []dashboardQuery, series []map[string]string, what string) {
	t.Helper()
	type sample struct {
		Labels string  `json:"labels"`
		Value  float64 `json:"value"`
	}
	type exprTest struct {
		Expr       string   `json:"expr"`
		EvalTime   string   `json:"eval_time"`
		ExpSamples []sample `json:"exp_samples"`
	}
	var tests []exprTest
	for _, q := range queries {
		// Non-empty: count() of an empty result is itself empty.
		tests = append(tests, exprTest{Expr: fmt.Sprintf("count(%s) > bool 0", q.expr), EvalTime: fmt.Sprintf("%ds", evalSeconds),
			ExpSamples: []sample{{Labels: "{}", Value: 1}}})
	}
	file := map[string]any{
		"evaluation_interval": "1m",
		"tests": []any{map[string]any{
			"name":             "the dashboard's queries on " + what,
			"interval":         "1m",
			"input_series":     series,
			"promql_expr_test": tests,
		}},
	}
	b, err := yaml.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-test.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := runCmd(t, nil, nil, promtool(t), "test", "rules", path)
	if err != nil {
		var titles []string
		for _, q := range queries {
			titles = append(titles, fmt.Sprintf("  %s: %s", q.panel, q.expr))
		}
		t.Fatalf("promtool rejects dashboard queries or finds them empty on %s:\n%v\n%s\npanels:\n%s",
			what, err, r.stdout, strings.Join(titles, "\n"))
	}
	t.Logf("%d dashboard queries checked against %d series", len(queries), len(series))
}

// timestampMetric holds Unix times: promtool's clock starts at 0, so they are moved by the
// same offset as the scrape time, keeping every "seconds until" and "seconds since" true.
var timestampMetric = regexp.MustCompile(`_timestamp_seconds$|^process_start_time_seconds$`)

// promSeries turns the manager's scrape into promtool input series, constant for the hour
// before the evaluation.
func promSeries(t *testing.T, obs observed) []map[string]string {
	t.Helper()
	// What Prometheus adds to every series of the target (honorLabels keeps jeton's own).
	target := map[string]string{"job": "jeton", "instance": "jeton-controller-manager:8443"}
	return exposedSeries(t, obs.metrics, target, float64(obs.scrapedAt.Unix())-evalSeconds)
}

// exposedSeries turns one scrape of a target (Prometheus text format) into promtool input
// series, constant for the hour before the evaluation, Unix timestamps moved back by shift.
func exposedSeries(t *testing.T, exposition string, target map[string]string, shift float64) []map[string]string {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(exposition))
	if err != nil {
		t.Fatalf("parsing the %s metrics: %v", target["job"], err)
	}
	var out []map[string]string
	add := func(name string, labels []*dto.LabelPair, extra map[string]string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		if timestampMetric.MatchString(name) {
			v -= shift
		}
		ls := map[string]string{}
		for k, val := range target {
			ls[k] = val
		}
		for _, l := range labels {
			ls[l.GetName()] = l.GetValue()
		}
		for k, val := range extra {
			ls[k] = val
		}
		keys := make([]string, 0, len(ls))
		for k := range ls {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%q", k, ls[k]))
		}
		steps := int((time.Duration(evalSeconds) * time.Second).Minutes())
		out = append(out, map[string]string{
			"series": name + "{" + strings.Join(parts, ",") + "}",
			"values": fmt.Sprintf("%s+0x%d", strconv.FormatFloat(v, 'f', -1, 64), steps),
		})
	}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				add(name, m.GetLabel(), nil, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add(name, m.GetLabel(), nil, m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				add(name, m.GetLabel(), nil, m.GetUntyped().GetValue())
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					add(name+"_bucket", m.GetLabel(), map[string]string{"le": strconv.FormatFloat(b.GetUpperBound(), 'f', -1, 64)}, float64(b.GetCumulativeCount()))
				}
				add(name+"_bucket", m.GetLabel(), map[string]string{"le": "+Inf"}, float64(h.GetSampleCount()))
				add(name+"_sum", m.GetLabel(), nil, h.GetSampleSum())
				add(name+"_count", m.GetLabel(), nil, float64(h.GetSampleCount()))
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					add(name, m.GetLabel(), map[string]string{"quantile": strconv.FormatFloat(q.GetQuantile(), 'f', -1, 64)}, q.GetValue())
				}
				add(name+"_sum", m.GetLabel(), nil, s.GetSampleSum())
				add(name+"_count", m.GetLabel(), nil, float64(s.GetSampleCount()))
			}
		}
	}
	add("up", nil, nil, 1)
	return out
}

// gatewaySeries is one scrape of a gateway replica as internal/gateway.NewMetrics exposes it
// (its names, labels and histogram buckets), with a value in every series a panel shows: a
// client served and throttled, an unidentified caller refused, an upstream answer and a 429,
// a host's budget, the replica counts. A renamed metric or label in internal/gateway breaks
// the panels' check here. It stands in for a real gateway's scrape until the scenario runs one.
func gatewaySeries(t *testing.T) []map[string]string {
	t.Helper()
	return exposedSeries(t, gatewayExposition(t), map[string]string{"job": "jeton-gateway", "instance": "10.0.0.1:8082"}, 0)
}

func gatewayExposition(t *testing.T) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := gateway.NewMetrics(reg)
	hab := []string{operatorNamespace, "ville-api-entreprise", "ville", "APIEntreprise"}
	m.Requests.WithLabelValues(append(hab, "200")...).Add(120)
	m.Requests.WithLabelValues(append(hab, "429")...).Add(7)
	m.Refusals.WithLabelValues(append(hab, "throttled")...).Add(7)
	m.Refusals.WithLabelValues("", "", "", "", "invalid_credential").Inc()
	m.UpstreamDuration.WithLabelValues("APIEntreprise").Observe(0.12)
	m.Upstream429.WithLabelValues("entreprise.api.gouv.fr", "APIEntreprise").Inc()
	m.BudgetRemaining.WithLabelValues("entreprise.api.gouv.fr").Set(0.8)
	m.ReadyReplicas.Set(2)
	m.ExpectedReplicas.Set(2)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range families {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// TestDashboardGatewayPanels: the dashboard shows what an operator of the gateway watches
// (requests by client, Habilitation, API and code; refusals by reason; upstream latency
// quantiles; budget left by host; upstream 429s; ready against expected replicas), every
// metric of internal/gateway is on a panel, and each gateway query returns something on the
// gateway's series alone (promtool). The whole dashboard is also checked with the manager's
// series in TestArgoCDHealthAndGrafanaDashboard.
func TestDashboardGatewayPanels(t *testing.T) {
	var queries []dashboardQuery
	for _, q := range dashboardQueries(t, dashboardPanels(t)) {
		if strings.Contains(q.expr, "jeton_gateway_") || strings.Contains(q.expr, `job="jeton-gateway"`) {
			queries = append(queries, q)
		}
	}
	// What each of the panels must query: a metric and the labels it is broken down by.
	want := []struct {
		what string
		re   *regexp.Regexp
	}{
		{"requests by client, habilitation, API and code", regexp.MustCompile(`sum by \((?:[a-z]+, )*client(?:, [a-z]+)*\) \(rate\(jeton_gateway_requests_total`)},
		{"refusals by reason", regexp.MustCompile(`sum by \(reason\) \(rate\(jeton_gateway_refusals_total`)},
		{"upstream latency quantiles", regexp.MustCompile(`histogram_quantile\(0\.\d+, sum by \(api, le\) \(rate\(jeton_gateway_upstream_duration_seconds_bucket`)},
		{"budget left by host", regexp.MustCompile(`by \(host\) \(jeton_gateway_budget_remaining_ratio`)},
		{"upstream 429s", regexp.MustCompile(`sum by \(host, api\) \(increase\(jeton_gateway_upstream_throttled_total`)},
		{"ready replicas", regexp.MustCompile(`jeton_gateway_ready_replicas`)},
		{"expected replicas", regexp.MustCompile(`jeton_gateway_expected_replicas`)},
	}
	for _, w := range want {
		found := false
		for _, q := range queries {
			found = found || w.re.MatchString(q.expr)
		}
		if !found {
			t.Errorf("no gateway panel shows %s (a query matching %s)", w.what, w.re)
		}
	}
	for _, q := range queries {
		if strings.Contains(q.expr, "requests_total") && !strings.Contains(q.expr, "client, namespace, habilitation, api, code") {
			t.Errorf("panel %q: requests not broken down by client, habilitation, API and code: %s", q.panel, q.expr)
		}
	}
	// Every metric internal/gateway defines (each field of gateway.Metrics) is on a panel.
	m := gateway.NewMetrics(prometheus.NewRegistry())
	fields := reflect.ValueOf(m).Elem()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	for i := range fields.NumField() {
		descs := make(chan *prometheus.Desc, 1)
		fields.Field(i).Interface().(prometheus.Collector).Describe(descs)
		name := fqName.FindStringSubmatch((<-descs).String())[1]
		used := false
		for _, q := range queries {
			used = used || strings.Contains(q.expr, name)
		}
		if !used {
			t.Errorf("metric %s (gateway.Metrics.%s) is on no panel", name, fields.Type().Field(i).Name)
		}
	}
	checkDashboardQueries(t, queries, gatewaySeries(t), "a gateway replica's series")
}
