package metrics

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/jeton-dev/jeton/internal/gateway"
)

// resetEventMetrics clears the package's event vectors, which are process-wide.
func resetEventMetrics(t *testing.T) {
	t.Helper()
	reset := func() {
		probeDuration.Reset()
		probeTotal.Reset()
		workloadRestarts.Reset()
		collectErrors.Reset()
	}
	reset()
	t.Cleanup(reset)
}

func TestObserveProbeAndForgetTechnicalToken(t *testing.T) {
	resetEventMetrics(t)
	ObserveProbe("jeton-system", "tt", "APIEntreprise", "production", "ProbeSucceeded", 80*time.Millisecond)
	ObserveProbe("jeton-system", "tt", "APIEntreprise", "production", "ProbeSucceeded", 300*time.Millisecond)
	ObserveProbe("jeton-system", "tt", "APIEntreprise", "production", "RateLimited", 3*time.Second)

	h := `{api="APIEntreprise",environment="production",name="tt",namespace="jeton-system"}`
	wantHist := header(ProbeDurationName, probeDurationHelp, "histogram") + `
jeton_probe_duration_seconds_bucket` + bucket(h, "0.05") + ` 0
jeton_probe_duration_seconds_bucket` + bucket(h, "0.1") + ` 1
jeton_probe_duration_seconds_bucket` + bucket(h, "0.25") + ` 1
jeton_probe_duration_seconds_bucket` + bucket(h, "0.5") + ` 2
jeton_probe_duration_seconds_bucket` + bucket(h, "1") + ` 2
jeton_probe_duration_seconds_bucket` + bucket(h, "2.5") + ` 2
jeton_probe_duration_seconds_bucket` + bucket(h, "5") + ` 3
jeton_probe_duration_seconds_bucket` + bucket(h, "10") + ` 3
jeton_probe_duration_seconds_bucket` + bucket(h, "30") + ` 3
jeton_probe_duration_seconds_bucket` + bucket(h, "+Inf") + ` 3
jeton_probe_duration_seconds_sum` + h + ` 3.38
jeton_probe_duration_seconds_count` + h + ` 3
`
	if err := testutil.CollectAndCompare(probeDuration, strings.NewReader(wantHist)); err != nil {
		t.Fatal(err)
	}

	// Same name in another namespace, and a name sharing a prefix: Forget must spare both.
	ObserveProbe("other", "tt", "APIEntreprise", "production", "ProbeSucceeded", time.Second)
	ObserveProbe("jeton-system", "tt-2", "APIEntreprise", "staging", "Timeout", 10*time.Second)
	want := header(ProbeTotalName, probeTotalHelp, "counter") + `
jeton_probe_total{api="APIEntreprise",environment="production",name="tt",namespace="jeton-system",result="ProbeSucceeded"} 2
jeton_probe_total{api="APIEntreprise",environment="production",name="tt",namespace="jeton-system",result="RateLimited"} 1
jeton_probe_total{api="APIEntreprise",environment="production",name="tt",namespace="other",result="ProbeSucceeded"} 1
jeton_probe_total{api="APIEntreprise",environment="staging",name="tt-2",namespace="jeton-system",result="Timeout"} 1
`
	if err := testutil.CollectAndCompare(probeTotal, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}

	ForgetTechnicalToken("jeton-system", "tt")
	want = header(ProbeTotalName, probeTotalHelp, "counter") + `
jeton_probe_total{api="APIEntreprise",environment="production",name="tt",namespace="other",result="ProbeSucceeded"} 1
jeton_probe_total{api="APIEntreprise",environment="staging",name="tt-2",namespace="jeton-system",result="Timeout"} 1
`
	if err := testutil.CollectAndCompare(probeTotal, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(probeDuration); n != 2 {
		t.Errorf("ForgetTechnicalToken must delete the histogram series too: %d left, want 2", n)
	}
}

func bucket(labels, le string) string {
	return strings.TrimSuffix(labels, "}") + `,le="` + le + `"}`
}

func TestWorkloadRestartedAndForgetHabilitation(t *testing.T) {
	resetEventMetrics(t)
	for _, tc := range []struct {
		name, hab string
		n         int
	}{
		{"counts restarts", "acme", 2},
		{"accumulates", "acme", 1},
		{"zero records nothing", "beta", 0},
		{"negative records nothing", "beta", -1},
		{"other habilitation", "gamma", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			WorkloadRestarted("jeton-system", tc.hab, "client-"+tc.hab, "APIEntreprise", "production", tc.n)
		})
	}
	want := header(WorkloadRestartName, workloadRestartsHelp, "counter") + `
jeton_workload_restarts_total{api="APIEntreprise",client="client-acme",environment="production",name="acme",namespace="jeton-system"} 3
jeton_workload_restarts_total{api="APIEntreprise",client="client-gamma",environment="production",name="gamma",namespace="jeton-system"} 1
`
	if err := testutil.CollectAndCompare(workloadRestarts, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}

	ForgetHabilitation("jeton-system", "acme")
	want = header(WorkloadRestartName, workloadRestartsHelp, "counter") + `
jeton_workload_restarts_total{api="APIEntreprise",client="client-gamma",environment="production",name="gamma",namespace="jeton-system"} 1
`
	if err := testutil.CollectAndCompare(workloadRestarts, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestRegister(t *testing.T) {
	reader := fake.NewClientBuilder().WithScheme(testScheme(t)).Build()

	reg := prometheus.NewPedanticRegistry()
	if err := Register(reg, reader); err != nil {
		t.Fatalf("first Register: %v", err)
	}
	err := Register(reg, reader)
	if err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("second Register on the same registry: got %v, want an error saying it was called twice", err)
	}
	// Another registry (e.g. a test's) may hold the same event vectors.
	if err := Register(prometheus.NewRegistry(), reader); err != nil {
		t.Fatalf("Register on a second registry: %v", err)
	}
	if err := Register(prometheus.NewRegistry(), nil); err == nil {
		t.Fatal("Register with a nil reader must fail")
	}
}

// TestAlertRulesUseExposedMetrics catches a renamed metric that would silently turn an
// alert into one that can never fire.
func TestAlertRulesUseExposedMetrics(t *testing.T) {
	rules, err := os.ReadFile("../../config/prometheus/prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	known := []string{TokenExpirationName, ResourceReadyName, ProbeSuccessName, ProbeLastName, ProbeIntervalName,
		ProbeDurationName, ProbeTotalName, WorkloadRestartName, CollectErrorsName, HostUnreachableName}
	known = append(known, gatewayMetricNames(t)...)
	used := regexp.MustCompile(`jeton_[a-z_]+`).FindAllString(string(rules), -1)
	if len(used) == 0 {
		t.Fatal("no jeton metric found in the PrometheusRule")
	}
	for _, name := range used {
		if !slices.Contains(known, name) {
			t.Errorf("PrometheusRule uses %s, which jeton does not expose", name)
		}
	}
}

// gatewayMetricNames are the metrics the gateway (a separate binary) exposes, read from its
// own definitions (internal/gateway.NewMetrics), with the suffixes of histograms.
func gatewayMetricNames(t *testing.T) []string {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := gateway.NewMetrics(reg)
	// Vectors expose a family only once they have a child.
	m.Requests.WithLabelValues("", "", "", "", "200").Inc()
	m.Refusals.WithLabelValues("", "", "", "", "throttled").Inc()
	m.UpstreamDuration.WithLabelValues("").Observe(1)
	m.Upstream429.WithLabelValues("", "").Inc()
	m.BudgetRemaining.WithLabelValues("").Set(1)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
		if f.GetType() == dto.MetricType_HISTOGRAM {
			names = append(names, f.GetName()+"_bucket", f.GetName()+"_sum", f.GetName()+"_count")
		}
	}
	return names
}
