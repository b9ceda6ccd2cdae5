package packaging

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// observed is what the real manager produced in TestArgoCDHealthAndGrafanaDashboard.
type observed struct {
	// objects: each resource as the API server returned it, by "Kind/name".
	objects map[string]map[string]any
	// metrics: one scrape of the manager's /metrics, and when it was taken.
	metrics   string
	scrapedAt time.Time
}

// scenarioManifest puts jeton's resources in every state the health checks and the dashboard
// distinguish. %[1]s is the emulator's host:port.
const scenarioManifest = `
apiVersion: jeton.dev/v1alpha1
kind: PublicClient
metadata: {name: pkg-ville}
spec: {displayName: Ville de Paquetage, siret: "21310001600012"}
---
# Its namespace exists and is not labelled for it: NamespaceOwnedElsewhere (Stalled).
apiVersion: jeton.dev/v1alpha1
kind: PublicClient
metadata: {name: pkg-squat}
spec: {displayName: Squatted, siret: "73282932000074", namespace: pkg-squatted}
---
apiVersion: v1
kind: Namespace
metadata: {name: pkg-elsewhere}
---
# Outside the credentials namespaces: NamespaceNotAllowed (Stalled).
apiVersion: jeton.dev/v1alpha1
kind: Habilitation
metadata: {name: hab-elsewhere, namespace: pkg-elsewhere}
spec:
  clientRef: {name: pkg-ville}
  api: APIEntreprise
  baseURL: http://%[1]s
  tokenSecretRef: {name: hab-elsewhere-token}
---
# No token Secret: SecretNotFound (Ready=False, not stalled: the Secret may come later).
apiVersion: jeton.dev/v1alpha1
kind: Habilitation
metadata: {name: hab-nosecret, namespace: jeton-system}
spec:
  clientRef: {name: pkg-ville}
  api: APIEntreprise
  baseURL: http://%[1]s
  tokenSecretRef: {name: hab-nosecret-token}
`

// habilitation returns a Habilitation of pkg-ville whose token Secret is <name>-token.
func habilitationManifest(name, host string) string {
	return fmt.Sprintf(`---
apiVersion: jeton.dev/v1alpha1
kind: Habilitation
metadata: {name: %[1]s, namespace: jeton-system}
spec:
  clientRef: {name: pkg-ville}
  api: APIEntreprise
  baseURL: http://%[2]s
  tokenSecretRef: {name: %[1]s-token}
  target: {secretName: %[1]s}
`, name, host)
}

// technicalTokenManifest returns a TechnicalToken whose token Secret is <name>-token;
// extra adds lines to its spec.
func technicalTokenManifest(name, host, interval, extra string) string {
	return fmt.Sprintf(`---
apiVersion: jeton.dev/v1alpha1
kind: TechnicalToken
metadata: {name: %[1]s, namespace: jeton-system}
spec:
  api: APIEntreprise
  baseURL: http://%[2]s
  tokenSecretRef: {name: %[1]s-token}
  interval: %[3]s
%[4]s`, name, host, interval, extra)
}

// TestArgoCDHealthAndGrafanaDashboard runs the manager binary against the API emulator with
// jeton resources in every state users see (Ready, expiring in 5, 20 and 60 days, expired,
// Secret missing, outside the credentials namespaces, namespace owned elsewhere, probe
// succeeding, failing, in flight, suspended, a rotation that restarts a workload), then
// checks the Argo CD health scripts on the statuses it wrote and the Grafana dashboard's
// queries on the metrics it exposed.
func TestArgoCDHealthAndGrafanaDashboard(t *testing.T) {
	obs := runScenario(t)
	t.Run("ArgoCDHealth", func(t *testing.T) { testArgoCDHealth(t, obs) })
	t.Run("GrafanaDashboard", func(t *testing.T) { testGrafanaDashboard(t, obs) })
}

func runScenario(t *testing.T) observed {
	t.Helper()
	ctx := t.Context()
	emu := emulator.New()
	srv := httptest.NewServer(emu)
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	host := srv.Listener.Addr().String()

	now := time.Now()
	mint := func(name string, o emulator.MintOptions) string {
		tok, id, err := emu.Mint(jetonv1alpha1.APIEntreprise, o)
		if err != nil {
			t.Fatal(err)
		}
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: name + "-token"},
			StringData: map[string]string{"token": tok}}
		if err := env.Client.Create(ctx, secret); err != nil {
			t.Fatal(err)
		}
		return id
	}
	days := func(n int) time.Time { return now.Add(time.Duration(n) * 24 * time.Hour) }
	manifests := fmt.Sprintf(scenarioManifest, host)
	okID := ""
	for name, o := range map[string]emulator.MintOptions{
		"hab-ok":      {},
		"hab-7d":      {ExpiresAt: days(5)},
		"hab-30d":     {ExpiresAt: days(20)},
		"hab-90d":     {ExpiresAt: days(60)},
		"hab-expired": {IssuedAt: days(-30), ExpiresAt: days(-1)},
	} {
		id := mint(name, o)
		if name == "hab-ok" {
			okID = id
		}
		manifests += habilitationManifest(name, host)
	}
	mint("tt-ok", emulator.MintOptions{})
	revoked := mint("tt-revoked", emulator.MintOptions{})
	slow := mint("tt-slow", emulator.MintOptions{})
	mint("tt-suspended", emulator.MintOptions{})
	for _, err := range []error{
		emu.SetBehaviour(revoked, emulator.Revoked),
		emu.SetBehaviour(slow, emulator.Slow),
		// In flight for the whole test: the probe waits for its timeout (4m).
		emu.SetDelay(slow, 10*time.Minute),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	manifests += technicalTokenManifest("tt-ok", host, "30s", "") +
		technicalTokenManifest("tt-revoked", host, "30s", "  failureThreshold: 1\n") +
		technicalTokenManifest("tt-slow", host, "5m", "  timeout: 4m\n") +
		technicalTokenManifest("tt-suspended", host, "30s", "  suspend: true\n")
	if _, stderr, err := env.Kubectl(ctx, nil, "create", "namespace", "pkg-squatted"); err != nil {
		t.Fatal(stderr)
	}
	if _, stderr, err := env.Kubectl(ctx, []byte(manifests), "apply", "-f", "-"); err != nil {
		t.Fatalf("applying the scenario: %v\n%s", err, stderr)
	}

	p := startManager(t, env.Kubeconfig, nil,
		"--leader-elect", "--leader-election-namespace", operatorNamespace,
		"--credentials-namespaces", operatorNamespace, "--allowed-api-hosts", host,
		// Plain HTTP on loopback: the test reads the metrics as Prometheus would.
		"--metrics-secure=false")

	// Each resource reaches the state it is here for, for its current generation.
	want := []struct {
		kind, namespace, name, reason string
	}{
		{"PublicClient", "", "pkg-ville", jetonv1alpha1.ReasonReady},
		{"PublicClient", "", "pkg-squat", jetonv1alpha1.ReasonNamespaceOwnedElsewhere},
		{"Habilitation", operatorNamespace, "hab-ok", jetonv1alpha1.ReasonInjected},
		{"Habilitation", operatorNamespace, "hab-7d", jetonv1alpha1.ReasonTokenExpiringSoon},
		{"Habilitation", operatorNamespace, "hab-30d", jetonv1alpha1.ReasonTokenExpiringSoon},
		{"Habilitation", operatorNamespace, "hab-90d", jetonv1alpha1.ReasonTokenExpiringSoon},
		{"Habilitation", operatorNamespace, "hab-expired", jetonv1alpha1.ReasonTokenExpired},
		{"Habilitation", operatorNamespace, "hab-nosecret", jetonv1alpha1.ReasonSecretNotFound},
		{"Habilitation", "pkg-elsewhere", "hab-elsewhere", jetonv1alpha1.ReasonNamespaceNotAllowed},
		{"TechnicalToken", operatorNamespace, "tt-ok", jetonv1alpha1.ReasonProbeSucceeded},
		{"TechnicalToken", operatorNamespace, "tt-revoked", jetonv1alpha1.ReasonRevoked},
		{"TechnicalToken", operatorNamespace, "tt-slow", jetonv1alpha1.ReasonProbePending},
		{"TechnicalToken", operatorNamespace, "tt-suspended", jetonv1alpha1.ReasonSuspended},
	}
	for _, w := range want {
		p.eventually(t, 90*time.Second, fmt.Sprintf("%s %s Ready reason %s", w.kind, w.name, w.reason), func() error {
			u, err := getJeton(ctx, w.kind, w.namespace, w.name)
			if err != nil {
				return err
			}
			return readyReason(u, w.reason)
		})
	}

	// A rotation: the emulator renews hab-ok's token (new expiry), the source Secret follows,
	// jeton rewrites the injected Secret and restarts the workload that reads it.
	workload := testenv.Workload("pkg-ville", "teleservice", "hab-ok")
	if err := env.Client.Create(ctx, workload); err != nil {
		t.Fatal(err)
	}
	renewed, err := emu.Renew(okID, now.Add(400*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	src := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "hab-ok-token"}, src); err != nil {
		t.Fatal(err)
	}
	src.Data = map[string][]byte{"token": []byte(renewed)}
	if err := env.Client.Update(ctx, src); err != nil {
		t.Fatal(err)
	}
	p.eventually(t, time.Minute, "the workload restarted after the rotation", func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(workload), workload); err != nil {
			return err
		}
		if workload.Spec.Template.Annotations[jetonv1alpha1.AnnotationRestartedFor] == "" {
			return fmt.Errorf("no %s annotation yet", jetonv1alpha1.AnnotationRestartedFor)
		}
		return nil
	})

	// The scrape: once every family the dashboard reads is there.
	obs := observed{objects: map[string]map[string]any{}}
	p.eventually(t, time.Minute, "the metrics of the scenario", func() error {
		body, err := scrape("http://" + p.MetricsAddr + "/metrics")
		if err != nil {
			return err
		}
		for _, family := range []string{"jeton_workload_restarts_total", "jeton_probe_last_timestamp_seconds",
			"jeton_probe_interval_seconds", "jeton_probe_duration_seconds_bucket", "leader_election_master_status"} {
			if !strings.Contains(body, "\n"+family) {
				return fmt.Errorf("no %s yet", family)
			}
		}
		obs.metrics, obs.scrapedAt = body, time.Now()
		return nil
	})
	for _, w := range want {
		capture(t, obs, w.kind, w.namespace, w.name, w.name)
	}

	// Two states a running manager hides: a spec it has not observed yet, and a resource it
	// never reconciled. Stopped, it can show them.
	p.stop(t)
	if _, stderr, err := env.Kubectl(ctx, nil, "patch", "habilitation", "hab-ok", "-n", operatorNamespace,
		"--type", "merge", "-p", `{"spec":{"renewBefore":"2400h"}}`); err != nil {
		t.Fatal(stderr)
	}
	capture(t, obs, "Habilitation", operatorNamespace, "hab-ok", "hab-ok (spec edited, not observed)")
	if _, stderr, err := env.Kubectl(ctx, []byte(`{"apiVersion":"jeton.dev/v1alpha1","kind":"PublicClient","metadata":{"name":"pkg-new"},"spec":{"displayName":"New","siret":"21310001600012"}}`), "apply", "-f", "-"); err != nil {
		t.Fatal(stderr)
	}
	capture(t, obs, "PublicClient", "", "pkg-new", "pkg-new (never reconciled)")
	return obs
}

func getJeton(ctx context.Context, kind, namespace, name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(jetonv1alpha1.GroupVersion.WithKind(kind))
	err := env.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, u)
	return u, err
}

// readyReason checks that u's Ready condition has reason and is about its generation.
func readyReason(u *unstructured.Unstructured, reason string) error {
	raw, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	var conds []metav1.Condition
	for _, r := range raw {
		m := r.(map[string]any)
		gen, _, _ := unstructured.NestedInt64(m, "observedGeneration")
		conds = append(conds, metav1.Condition{Type: fmt.Sprint(m["type"]), Status: metav1.ConditionStatus(fmt.Sprint(m["status"])),
			Reason: fmt.Sprint(m["reason"]), ObservedGeneration: gen})
	}
	c := meta.FindStatusCondition(conds, jetonv1alpha1.ConditionReady)
	switch {
	case c == nil:
		return fmt.Errorf("%s has no Ready condition yet", u.GetName())
	case c.ObservedGeneration != u.GetGeneration():
		return fmt.Errorf("%s: Ready is about generation %d, not %d", u.GetName(), c.ObservedGeneration, u.GetGeneration())
	case c.Reason != reason:
		return fmt.Errorf("%s: Ready reason %s, want %s", u.GetName(), c.Reason, reason)
	}
	return nil
}

func capture(t *testing.T, obs observed, kind, namespace, name, as string) {
	t.Helper()
	u, err := getJeton(t.Context(), kind, namespace, name)
	if err != nil {
		t.Fatal(err)
	}
	obs.objects[kind+"/"+as] = u.Object
}

func scrape(url string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
