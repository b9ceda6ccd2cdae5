package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

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
	"jeton_probe_last_timestamp_seconds":       {"api", "environment", "name", "namespace"},
	"jeton_probe_interval_seconds":             {"api", "environment", "name", "namespace"},
	"jeton_probe_duration_seconds":             {"api", "environment", "name", "namespace"},
	"jeton_probe_total":                        {"api", "environment", "name", "namespace", "result"},
	"jeton_workload_restarts_total":            {"api", "client", "environment", "name", "namespace"},
	"jeton_metrics_collect_errors_total":       {"kind"},
	"jeton_api_host_unreachable":               {"host"},
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
	readerToken := metricsReaderToken(t, credNS, "prometheus")
	p := startManager(t, env.Kubeconfig, "--leader-elect=false", "--credentials-namespaces", credNS, "--test-probe-interval", "1s",
		"--allowed-api-hosts", strings.TrimPrefix(srv.URL, "http://"))
	// Scraped as Prometheus does: HTTPS (the default) with a token allowed to GET /metrics.
	prometheus := secureScraper(p.MetricsAddr, readerToken)

	var families map[string]*dto.MetricFamily
	var body string
	p.eventually(t, "the Habilitation ready and the technical token probed on /metrics", func() error {
		if families, body, err = prometheus.scrape(); err != nil {
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
		if families, _, err = prometheus.scrape(); err != nil {
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

// TestMetricsRequireAuthentication proves finding 10 fixed: the manager binary, with its
// default (secure) metrics, serves /metrics over HTTPS only, and only to a bearer token that
// the API server authenticates and authorizes for GET /metrics. The manager runs with
// nothing but the generated ClusterRole manager-role, so this also proves that
// role lets it make the TokenReviews and SubjectAccessReviews.
func TestMetricsRequireAuthentication(t *testing.T) {
	ctx := context.Background()
	ns := "metrics-auth"
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	// Something for the jeton gauges to show: every PublicClient has a jeton_resource_ready series.
	pc := &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: "metrics-auth-client"},
		Spec: jetonv1alpha1.PublicClientSpec{DisplayName: "Direction interministérielle", SIRET: "13002526500013"}}
	if err := env.Client.Create(ctx, pc); err != nil {
		t.Fatal(err)
	}

	// The manager's identity: a user bound to the ClusterRole of config/rbac/role.yaml only.
	if _, stderr, err := kubectl(t, "", "apply", "-f", filepath.Join(env.Root, "config", "rbac", "role.yaml")); err != nil {
		t.Fatalf("kubectl apply -f config/rbac/role.yaml: %v\n%s", err, stderr)
	}
	managerUser := "jeton-metrics-auth-manager"
	bindClusterRole(t, "manager-role", rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: managerUser})
	user, err := env.Environment.AddUser(envtest.User{Name: managerUser}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfigPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}

	readerToken := metricsReaderToken(t, ns, "prometheus")
	// A genuine ServiceAccount token, valid for the API server, but not bound to metrics-reader.
	intruderToken := serviceAccountToken(t, ns, "intruder")

	// No --metrics-secure: the default.
	p := startManager(t, kubeconfigPath, "--leader-elect=false", "--credentials-namespaces", ns)
	anonymous := secureScraper(p.MetricsAddr, "")
	p.eventually(t, "/metrics over HTTPS refusing a request without a token (401)", func() error {
		return anonymous.wantStatus(http.StatusUnauthorized)
	})
	// A bearer token the API server rejects is refused too. controller-runtime's filter answers
	// 500 there, not 401 (it treats the TokenReview's error as its own), so only the refusal
	// is asserted.
	if code, body, err := secureScraper(p.MetricsAddr, "not-a-token").get(); err != nil {
		t.Errorf("a bearer token the API server does not know: %v", err)
	} else if code == http.StatusOK || strings.Contains(body, "jeton_") {
		t.Errorf("a bearer token the API server does not know got %d and metrics, want a refusal", code)
	}
	if err := secureScraper(p.MetricsAddr, intruderToken).wantStatus(http.StatusForbidden); err != nil {
		t.Errorf("a ServiceAccount token not bound to metrics-reader: %v", err)
	}

	prometheus := secureScraper(p.MetricsAddr, readerToken)
	p.eventually(t, "the jeton series for a metrics-reader token", func() error {
		families, _, err := prometheus.scrape()
		if err != nil {
			return err
		}
		if _, ok := sample(families, "jeton_resource_ready", map[string]string{"kind": "PublicClient", "name": pc.Name}); !ok {
			return fmt.Errorf("no jeton_resource_ready series for PublicClient %s", pc.Name)
		}
		return nil
	})

	// Plain HTTP on the same port gets no metrics (Go's TLS server answers 400 to it).
	code, body, err := httpGet("http://" + p.MetricsAddr + "/metrics")
	if err == nil && (code == http.StatusOK || strings.Contains(body, "jeton_")) {
		t.Errorf("plain HTTP on the metrics port answered %d with metrics; want a TLS-only endpoint", code)
	}

	out := p.Out.String()
	if !strings.Contains(out, `"metricsSecure":true`) {
		t.Errorf("the manager did not log metricsSecure=true at start")
	}
	for what, tok := range map[string]string{"metrics-reader token": readerToken, "intruder token": intruderToken} {
		if strings.Contains(out, tok) {
			t.Errorf("the manager logged the %s", what)
		}
	}
}

// With --metrics-cert-path the manager serves the given certificate (a cert-manager Secret
// in a deployment), so a scraper can verify it instead of skipping verification.
func TestMetricsCertificateFromDirectory(t *testing.T) {
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("127.0.0.1", []net.IP{net.ParseIP("127.0.0.1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{"metrics.crt": certPEM, "metrics.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(certPEM) {
		t.Fatal("no certificate in the generated PEM")
	}
	p := startManager(t, env.Kubeconfig, "--leader-elect=false",
		"--metrics-cert-path", dir, "--metrics-cert-name", "metrics.crt", "--metrics-cert-key", "metrics.key")
	verifying := secureScraper(p.MetricsAddr, "")
	verifying.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
	p.eventually(t, "/metrics over HTTPS with the given certificate, verified", func() error {
		return verifying.wantStatus(http.StatusUnauthorized)
	})
}

// metricsScraper reads the manager's /metrics as Prometheus does. The token is never
// logged, nor put in an error.
type metricsScraper struct {
	url    string
	token  string
	client *http.Client
}

// secureScraper scrapes https://addr/metrics with token as bearer ("" for none). The
// manager's certificate is self-signed, generated at start: there is no CA to verify it with.
func secureScraper(addr, token string) *metricsScraper {
	return &metricsScraper{url: "https://" + addr + "/metrics", token: token, client: &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // self-signed test certificate
	}}
}

func (s *metricsScraper) get() (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, s.url, nil)
	if err != nil {
		return 0, "", err
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// wantStatus fails unless GET /metrics answers code, and never with metrics.
func (s *metricsScraper) wantStatus(code int) error {
	got, body, err := s.get()
	if err != nil {
		return err
	}
	if got != code {
		return fmt.Errorf("GET %s answered %d, want %d", s.url, got, code)
	}
	if strings.Contains(body, "jeton_") || strings.Contains(body, "# HELP") {
		return errors.New("the refusal carries metrics")
	}
	return nil
}

// scrape reads /metrics in the text format.
func (s *metricsScraper) scrape() (map[string]*dto.MetricFamily, string, error) {
	code, body, err := s.get()
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

// serviceAccountToken creates ServiceAccount ns/name (if missing) and returns a token for it
// from the TokenRequest API, as the kubelet would mount in a pod. Never log it.
func serviceAccountToken(t *testing.T, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := env.Client.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("requesting a token for ServiceAccount %s/%s: %v", ns, name, err)
	}
	if tr.Status.Token == "" {
		t.Fatalf("the TokenRequest for ServiceAccount %s/%s returned no token", ns, name)
	}
	return tr.Status.Token
}

// metricsReaderToken returns the token of ServiceAccount ns/name bound to the ClusterRole
// metrics-reader of config/rbac/metrics_reader_role.yaml (applied here as shipped): what
// Prometheus's ServiceAccount gets once bound as that file says.
func metricsReaderToken(t *testing.T, ns, name string) string {
	t.Helper()
	if _, stderr, err := kubectl(t, "", "apply", "-f", filepath.Join(env.Root, "config", "rbac", "metrics_reader_role.yaml")); err != nil {
		t.Fatalf("kubectl apply -f config/rbac/metrics_reader_role.yaml: %v\n%s", err, stderr)
	}
	tok := serviceAccountToken(t, ns, name)
	bindClusterRole(t, "metrics-reader", rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name})
	return tok
}

// bindClusterRole binds ClusterRole role to subject until the test ends.
func bindClusterRole(t *testing.T, role string, subject rbacv1.Subject) {
	t.Helper()
	ctx := context.Background()
	name := role + "-" + strings.ToLower(subject.Kind) + "-" + subject.Namespace + "-" + subject.Name
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: strings.ReplaceAll(name, "--", "-")},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{subject},
	}
	if err := env.Client.Create(ctx, crb); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, crb) })
}
