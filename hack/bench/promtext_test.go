package main

import (
	"strings"
	"testing"
)

const scrape = `# HELP rest_client_requests_total Number of HTTP requests, partitioned by status code, method, and host.
# TYPE rest_client_requests_total counter
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="GET"} 1200
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="PATCH"} 30
rest_client_requests_total{code="201",host="127.0.0.1:6443",method="POST"} 12
rest_client_requests_total{code="409",host="127.0.0.1:6443",method="PUT"} 2
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="DELETE"} 1
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="WATCH"} 9
# TYPE workqueue_depth gauge
workqueue_depth{controller="habilitation",name="habilitation"} 3
workqueue_depth{controller="publicclient",name="publicclient"} 0
go_goroutines 87
weird_escapes{msg="a \"quoted\", comma} brace\\n"} 1.5e+01 1700000000000
`

func TestParseProm(t *testing.T) {
	ss, err := parseProm(strings.NewReader(scrape))
	if err != nil {
		t.Fatal(err)
	}
	if got := ss.apiWrites(); got != 45 {
		t.Errorf("apiWrites = %v, want 45 (PATCH 30 + POST 12 + PUT 2 + DELETE 1; GET and WATCH excluded)", got)
	}
	if got := ss.sum("workqueue_depth", nil); got != 3 {
		t.Errorf("workqueue depth = %v, want 3", got)
	}
	if got := ss.sum("workqueue_depth", labelIn("controller", "publicclient")); got != 0 {
		t.Errorf("publicclient depth = %v, want 0", got)
	}
	if got := ss.sum("go_goroutines", nil); got != 87 {
		t.Errorf("go_goroutines = %v, want 87", got)
	}
	if got := ss.sum("absent_metric", nil); got != 0 {
		t.Errorf("absent metric = %v, want 0", got)
	}
	var weird *sample
	for i := range ss {
		if ss[i].name == "weird_escapes" {
			weird = &ss[i]
		}
	}
	if weird == nil || weird.value != 15 || weird.labels["msg"] != `a "quoted", comma} brace\n` {
		t.Errorf("escaped label sample = %+v, want msg with quotes, comma and brace kept, value 15", weird)
	}
}

func TestParsePromRejectsGarbage(t *testing.T) {
	for _, bad := range []string{
		"metric_without_value\n",
		`m{a="unterminated} 1` + "\n",
		"m{a} 1\n",
		"m NaNx\n",
	} {
		if _, err := parseProm(strings.NewReader(bad)); err == nil {
			t.Errorf("parseProm(%q) succeeded, want an error", bad)
		}
	}
}

func TestDiffWrites(t *testing.T) {
	before := map[string]float64{"PATCH namespaces": 10, "POST secrets": 4}
	after := map[string]float64{"PATCH namespaces": 30, "POST secrets": 4, "APPLY networkpolicies": 20}
	got := diffWrites(before, after, 10)
	if want := "APPLY networkpolicies 2.00, PATCH namespaces 2.00"; got != want {
		t.Errorf("diffWrites = %q, want %q (unchanged counters left out, sorted, per client)", got, want)
	}
}
