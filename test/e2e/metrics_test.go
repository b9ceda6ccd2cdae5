package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/token"
)

// documentedMetrics are jeton's metric families and their label names, as docs/alerts.md
// and DESIGN.md give them (histogram and counter suffixes included).
var documentedMetrics = map[string][]string{
	"jeton_token_expiration_timestamp_seconds": {"api", "client", "environment", "kind", "name", "namespace"},
	"jeton_resource_ready":                     {"api", "client", "environment", "kind", "name", "namespace", "reason"},
	"jeton_probe_success":                      {"api", "environment", "name", "namespace"},
	"jeton_probe_duration_seconds":             {"api", "environment", "name", "namespace"},
	"jeton_probe_total":                        {"api", "environment", "name", "namespace", "result"},
	"jeton_workload_restarts_total":            {"api", "client", "environment", "name", "namespace"},
	"jeton_metrics_collect_errors_total":       {"kind"},
}

// The manager binary's /metrics, as Prometheus scrapes it, exposes exactly the documented
// families and labels, never a token or a token fingerprint, and a deleted TechnicalToken
// leaves no series behind.
func TestMetricsEndpoint(t *testing.T) {
	ctx := context.Background()
	credNS := "metrics-credentials"
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: credNS}}); err != nil {
		t.Fatal(err)
	}
	emu := emulator.New()
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	habToken, _, err := emu.Mint(jetonv1alpha1.APIEntreprise, emulator.MintOptions{Scopes: []string{"attestations_fiscales"}})
	if err != nil {
		t.Fatal(err)
	}
	techToken, _, err := emu.Mint(jetonv1alpha1.APIEntreprise, emulator.MintOptions{Scopes: []string{"attestations_fiscales"}})
	if err != nil {
		t.Fatal(err)
	}
	objects := []client.Object{
		&jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: "metrics-mairie"},
			Spec: jetonv1alpha1.PublicClientSpec{DisplayName: "Mairie", SIRET: "73282932000074"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: "hab-token"}, Data: map[string][]byte{"token": []byte(habToken)}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: "tech-token"}, Data: map[string][]byte{"token": []byte(techToken)}},
		&jetonv1alpha1.Habilitation{ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: "entreprise"},
			Spec: jetonv1alpha1.HabilitationSpec{ClientRef: jetonv1alpha1.ClientReference{Name: "metrics-mairie"}, API: jetonv1alpha1.APIEntreprise,
				TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: "hab-token", Key: "token"}}},
		&jetonv1alpha1.TechnicalToken{ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: "technical"},
			Spec: jetonv1alpha1.TechnicalTokenSpec{API: jetonv1alpha1.APIEntreprise, BaseURL: srv.URL,
				TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: "tech-token", Key: "token"}}},
	}
	for _, o := range objects {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	p := startManager(t, env.Kubeconfig, "--leader-elect=false", "--credentials-namespaces", credNS, "--test-probe-interval", "1s")

	var families map[string]*dto.MetricFamily
	var body string
	p.eventually(t, "the Habilitation ready and the technical token probed on /metrics", func() error {
		if families, body, err = scrape(p.metricsAddr); err != nil {
			return err
		}
		if v, ok := sample(families, "jeton_resource_ready", map[string]string{"kind": "Habilitation", "name": "entreprise", "client": "metrics-mairie"}); !ok || v != 1 {
			return fmt.Errorf("jeton_resource_ready of the Habilitation: %v (present %v)", v, ok)
		}
		if v, ok := sample(families, "jeton_probe_success", map[string]string{"name": "technical"}); !ok || v != 1 {
			return fmt.Errorf("jeton_probe_success of the technical token: %v (present %v)", v, ok)
		}
		if _, ok := sample(families, "jeton_token_expiration_timestamp_seconds", map[string]string{"kind": "TechnicalToken", "name": "technical"}); !ok {
			return fmt.Errorf("no expiry series for the technical token")
		}
		return nil
	})

	for name, mf := range families {
		if !strings.HasPrefix(name, "jeton_") {
			continue
		}
		want, documented := documentedMetrics[name]
		if !documented {
			t.Errorf("undocumented metric family %s", name)
			continue
		}
		for _, m := range mf.GetMetric() {
			var got []string
			for _, l := range m.GetLabel() {
				got = append(got, l.GetName())
			}
			slices.Sort(got)
			// Prometheus drops labels with empty values; the ones present must be documented.
			for _, l := range got {
				if !slices.Contains(want, l) {
					t.Errorf("%s has label %q; documented labels are %v", name, l, want)
				}
			}
		}
	}
	for _, tok := range []string{habToken, techToken} {
		for what, needle := range map[string]string{"token": tok, "JWT signature": tok[strings.LastIndexByte(tok, '.')+1:], "token fingerprint": token.Fingerprint(tok)} {
			if strings.Contains(body, needle) {
				t.Errorf("/metrics contains a %s", what)
			}
		}
	}

	// A deleted TechnicalToken leaves no series: neither the gauges computed at scrape time
	// nor the probe counters and histogram.
	if err := env.Client.Delete(ctx, objects[4]); err != nil {
		t.Fatal(err)
	}
	p.eventually(t, "no series left for the deleted technical token", func() error {
		if families, _, err = scrape(p.metricsAddr); err != nil {
			return err
		}
		for name, mf := range families {
			if !strings.HasPrefix(name, "jeton_") {
				continue
			}
			for _, m := range mf.GetMetric() {
				if labelsOf(m)["name"] == "technical" {
					return fmt.Errorf("%s still has a series for the deleted TechnicalToken", name)
				}
			}
		}
		return nil
	})
}

// scrape reads /metrics as Prometheus does, in the text format.
func scrape(addr string) (map[string]*dto.MetricFamily, string, error) {
	code, body, err := httpGet("http://" + addr + "/metrics")
	if err != nil {
		return nil, "", err
	}
	if code != 200 {
		return nil, "", fmt.Errorf("GET /metrics: %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	return families, body, err
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// sample returns the value of the first series of family name whose labels include want.
func sample(families map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := families[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		got := labelsOf(m)
		match := true
		for k, v := range want {
			if got[k] != v {
				match = false
				break
			}
		}
		if match {
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			}
			return 0, true
		}
	}
	return 0, false
}
