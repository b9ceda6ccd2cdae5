package packaging

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"
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

// testGrafanaDashboard checks every panel's PromQL with promtool against the series the
// manager exposed in this run (as Prometheus would store them: job and instance labels, an
// up series), so that a renamed metric or label, or a query that no longer parses, fails.
// Each query must return something: the scenario puts jeton in every state a panel shows.
func testGrafanaDashboard(t *testing.T, obs observed) {
	panels := dashboardPanels(t)
	ids := map[int]bool{}
	type query struct{ panel, expr string }
	var queries []query
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
			queries = append(queries, query{p.Title, expr})
		}
	}

	series := promSeries(t, obs)
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
			"name":             "the dashboard's queries on a real manager's series",
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
		t.Fatalf("promtool rejects dashboard queries or finds them empty on the manager's series:\n%v\n%s\npanels:\n%s",
			err, r.stdout, strings.Join(titles, "\n"))
	}
	t.Logf("%d dashboard queries checked against %d series", len(queries), len(series))
}

// timestampMetric holds Unix times: promtool's clock starts at 0, so they are moved by the
// same offset as the scrape time, keeping every "seconds until" and "seconds since" true.
var timestampMetric = regexp.MustCompile(`_timestamp_seconds$|^process_start_time_seconds$`)

// promSeries turns the scrape into promtool input series, constant for the hour before the
// evaluation.
func promSeries(t *testing.T, obs observed) []map[string]string {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(obs.metrics))
	if err != nil {
		t.Fatalf("parsing the manager's metrics: %v", err)
	}
	// What Prometheus adds to every series of the target (honorLabels keeps jeton's own).
	target := map[string]string{"job": "jeton", "instance": "jeton-controller-manager:8443"}
	shift := float64(obs.scrapedAt.Unix()) - evalSeconds
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
