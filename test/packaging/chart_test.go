package packaging

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// TestChartLint runs helm lint --strict with the default values and each values file of
// dist/chart/ci (chart-testing's convention).
func TestChartLint(t *testing.T) {
	files, err := filepath.Glob(repoPath(chartDir + "/ci/*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no values files in %s/ci (%v)", chartDir, err)
	}
	must(t, nil, nil, helmBin(t), "lint", "--strict", chartDir)
	for _, f := range files {
		must(t, nil, nil, helmBin(t), "lint", "--strict", chartDir, "--values", f)
	}
}

// TestChartRendersEveryOption renders the values files and checks that each option lands
// where the manager and Kubernetes read it, then has the API server validate the result.
func TestChartRendersEveryOption(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		objs := mustTemplate(t, "jeton", operatorNamespace)
		d := objs.get(t, "Deployment", operatorNamespace, "jeton-controller-manager")
		c := container(t, d)
		if img := c["image"]; img != "ghcr.io/jeton-dev/jeton:"+chartAppVersion(t) {
			t.Errorf("default image %v, want the chart's appVersion as tag", img)
		}
		if n := fmt.Sprint(nested(t, d, "spec", "replicas")); n != "2" {
			t.Errorf("replicas %v, want 2", n)
		}
		for _, kind := range []string{"ServiceMonitor", "PrometheusRule", "ConfigMap"} {
			if len(objs.ofKind(kind)) > 0 {
				t.Errorf("%s rendered by default; it is opt-in (it needs the Prometheus Operator or Grafana)", kind)
			}
		}
		if args := stringList(c["args"]); !slices.Contains(args, "--api-host-budget-per-minute=60") {
			t.Errorf("args %q lack the prober's share of the address budget (60/min, the gateway's --prober-share-per-minute)", args)
		}
		objs.get(t, "PodDisruptionBudget", operatorNamespace, "jeton-controller-manager")
		crds := objs.ofKind("CustomResourceDefinition")
		if len(crds) != 3 {
			t.Fatalf("%d CRDs rendered, want 3", len(crds))
		}
		for _, crd := range crds {
			if crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
				t.Errorf("CRD %s lacks helm.sh/resource-policy: keep: helm uninstall would delete every %s", crd.GetName(), crd.GetName())
			}
		}
	})

	t.Run("ci/full-values.yaml", func(t *testing.T) {
		objs := mustTemplate(t, "jeton", operatorNamespace, "--values", chartDir+"/ci/full-values.yaml")
		d := objs.get(t, "Deployment", operatorNamespace, "jeton-controller-manager")
		c := container(t, d)
		args := stringList(c["args"])
		for _, want := range []string{
			"--credentials-namespaces=jeton-system,vendor-credentials",
			"--allowed-api-hosts=egress-proxy.example:8443,127.0.0.1:18080",
			"--reserved-namespaces=monitoring,ingress-nginx",
			"--api-host-budget-per-minute=600",
			"--zap-log-level=debug",
			"--max-concurrent-reconciles=8",
			"--kube-api-qps=100",
		} {
			if !slices.Contains(args, want) {
				t.Errorf("args %q lack %s", args, want)
			}
		}
		if img := c["image"]; img != "registry.example:5000/platform/jeton@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
			t.Errorf("image %v: the digest must win over the tag", img)
		}
		spec := nested(t, d, "spec", "template", "spec").(map[string]any)
		for field, want := range map[string]any{
			"priorityClassName": "system-cluster-critical",
			"nodeSelector":      map[string]any{"kubernetes.io/os": "linux"},
			"imagePullSecrets":  []any{map[string]any{"name": "registry-credentials"}},
		} {
			if !reflect.DeepEqual(spec[field], want) {
				t.Errorf("pod %s = %v, want %v", field, spec[field], want)
			}
		}
		for _, field := range []string{"tolerations", "affinity", "topologySpreadConstraints"} {
			if spec[field] == nil {
				t.Errorf("pod %s not rendered", field)
			}
		}
		if a := nested(t, d, "spec", "template", "metadata", "annotations").(map[string]any); a["example.com/team"] != "platform" || a["kubectl.kubernetes.io/default-container"] != "manager" {
			t.Errorf("pod annotations %v", a)
		}
		if l := nested(t, d, "spec", "template", "metadata", "labels").(map[string]any); l["example.com/cost-center"] != "42" {
			t.Errorf("pod labels %v", l)
		}
		if n := fmt.Sprint(nested(t, objs.get(t, "PodDisruptionBudget", operatorNamespace, "jeton-controller-manager"), "spec", "minAvailable")); n != "2" {
			t.Errorf("PodDisruptionBudget minAvailable %v, want 2", n)
		}
		sm := objs.get(t, "ServiceMonitor", operatorNamespace, "jeton-metrics")
		if sm.GetLabels()["release"] != "kube-prometheus-stack" {
			t.Errorf("ServiceMonitor labels %v lack serviceMonitor.labels", sm.GetLabels())
		}
		ep := nested(t, sm, "spec", "endpoints").([]any)[0].(map[string]any)
		if ep["interval"] != "1m" || ep["tlsConfig"].(map[string]any)["serverName"] != "jeton-metrics.jeton-system.svc" {
			t.Errorf("ServiceMonitor endpoint %v lacks serviceMonitor.interval or tlsConfig", ep)
		}
		objs.get(t, "PrometheusRule", operatorNamespace, "jeton-alerts")

		// The dashboard ConfigMap goes to Grafana's namespace and holds config/grafana/jeton.json.
		cm := objs.get(t, "ConfigMap", "monitoring", "jeton-dashboard")
		if cm.GetLabels()["grafana_dashboard"] != "1" || cm.GetAnnotations()["grafana_folder"] != "jeton" {
			t.Errorf("dashboard ConfigMap labels %v annotations %v", cm.GetLabels(), cm.GetAnnotations())
		}
		want, err := os.ReadFile(repoPath("config/grafana/jeton.json"))
		if err != nil {
			t.Fatal(err)
		}
		if got := nested(t, cm, "data", "jeton.json"); got != strings.TrimRight(string(want), "\n") {
			t.Errorf("the dashboard ConfigMap does not hold config/grafana/jeton.json (run make manifests)")
		}
		serverDryRun(t, objs, "monitoring", "vendor-credentials")
	})

	t.Run("ci/minimal-values.yaml", func(t *testing.T) {
		objs := mustTemplate(t, "jeton", operatorNamespace, "--values", chartDir+"/ci/minimal-values.yaml")
		for _, kind := range []string{"PodDisruptionBudget", "CustomResourceDefinition", "ServiceAccount", "NetworkPolicy"} {
			if got := objs.ofKind(kind); len(got) > 0 {
				t.Errorf("%s rendered with minimal values (one replica, crd.enable false, serviceAccount.create false, no gateway)", kind)
			}
		}
		for _, k := range objs.keys() {
			if strings.Contains(k, "gateway") {
				t.Errorf("%s rendered with gateway.enabled false", k)
			}
		}
		d := objs.get(t, "Deployment", operatorNamespace, "jeton-minimal-controller-manager")
		if sa := nested(t, d, "spec", "template", "spec", "serviceAccountName"); sa != "jeton-operator" {
			t.Errorf("serviceAccountName %v, want the existing jeton-operator", sa)
		}
		subjects := nested(t, objs.get(t, "ClusterRoleBinding", "", "jeton-minimal-manager-rolebinding"), "subjects").([]any)
		if s := subjects[0].(map[string]any); s["name"] != "jeton-operator" || s["namespace"] != operatorNamespace {
			t.Errorf("manager role bound to %v, want jeton-operator in %s", s, operatorNamespace)
		}
		c := container(t, d)
		if !slices.Contains(stringList(c["args"]), "--zap-log-level=2") {
			t.Errorf("args %v lack --zap-log-level=2", c["args"])
		}
		for _, a := range stringList(c["args"]) {
			if strings.HasPrefix(a, "--gateway-url=") || strings.HasPrefix(a, "--default-delivery=") {
				t.Errorf("manager arg %s without the gateway: Habilitations asking for it must fail, not point at nothing", a)
			}
		}
		if c["image"] != "ghcr.io/jeton-dev/jeton:v0.1.0-rc.1" {
			t.Errorf("image %v, want the tag of image.tag", c["image"])
		}
		serverDryRun(t, objs)
	})
}

// serverDryRun has the test API server validate the rendered objects (schemas, admission),
// leaving out the Prometheus Operator's kinds, whose CRDs it lacks.
func serverDryRun(t *testing.T, objs objects, extraNamespaces ...string) {
	t.Helper()
	for _, ns := range extraNamespaces {
		if _, stderr, err := env.Kubectl(t.Context(), nil, "create", "namespace", ns); err != nil && !strings.Contains(stderr, "AlreadyExists") {
			t.Fatal(stderr)
		}
	}
	var docs []string
	for _, k := range objs.keys() {
		u := objs[k]
		if u.GetAPIVersion() == "monitoring.coreos.com/v1" {
			continue
		}
		b, err := yaml.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	_, stderr, err := env.Kubectl(t.Context(), []byte(strings.Join(docs, "---\n")), "apply", "--dry-run=server", "--server-side", "--force-conflicts", "-f", "-")
	if err != nil {
		t.Fatalf("the API server rejects the rendered chart: %v\n%s", err, stderr)
	}
}

func chartAppVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(repoPath(chartDir + "/Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.AppVersion
}

// TestChartSchemaRejectsBadValues: values.schema.json stops a mistake at `helm install`
// with a message naming the value, instead of a manager that crashes or an option ignored.
func TestChartSchemaRejectsBadValues(t *testing.T) {
	cases := []struct {
		name, values string
		// want are substrings of helm's error: the value's path and what is wrong.
		want []string
	}{
		{"misspelt key", "replicas: 3", []string{"replicas", "not allowed"}},
		{"no replica", "replicaCount: 0", []string{"/replicaCount", "minimum"}},
		{"no API host budget", "apiHostBudgetPerMinute: 0", []string{"/apiHostBudgetPerMinute", "minimum"}},
		{"replicas as a string", `replicaCount: "2"`, []string{"/replicaCount", "integer"}},
		{"namespace not a DNS label", "credentialsNamespaces: [Vendor_Credentials]", []string{"/credentialsNamespaces/0", "does not match pattern"}},
		{"URL instead of host", "allowedAPIHosts: ['https://proxy.example']", []string{"/allowedAPIHosts/0", "does not match pattern"}},
		{"unknown log level", "logLevel: verbose", []string{"/logLevel", "does not match pattern"}},
		{"positional argument", "extraArgs: [max-concurrent-reconciles=8]", []string{"/extraArgs/0", "does not match pattern"}},
		{"annotation not a string", "podAnnotations: {example.com/enabled: true}", []string{"/podAnnotations/example.com~1enabled", "string"}},
		{"short digest", "image: {digest: 'sha256:abc'}", []string{"/image/digest", "does not match pattern"}},
		{"tag in the repository", "image: {repository: 'ghcr.io/jeton-dev/jeton:v1'}", []string{"/image/repository", "does not match pattern"}},
		{"pull policy", "image: {pullPolicy: Sometimes}", []string{"/image/pullPolicy"}},
		{"interval without unit", "serviceMonitor: {enabled: true, interval: 30}", []string{"/serviceMonitor/interval"}},
		{"toggle as a string", `prometheusRule: {enabled: "yes"}`, []string{"/prometheusRule/enabled", "boolean"}},
		{"existing ServiceAccount without its name", "serviceAccount: {create: false}", []string{"serviceAccount.name is required when serviceAccount.create is false"}},
		{"unknown delivery", "gateway: {defaultDelivery: Proxy}", []string{"/gateway/defaultDelivery"}},
		{"gateway delivery without the gateway", "gateway: {enabled: false, defaultDelivery: Gateway}", []string{"gateway.defaultDelivery Gateway needs gateway.enabled true"}},
		{"address budget above the APIs' limit", "gateway: {addressBudgetPerMinute: 1200}", []string{"/gateway/addressBudgetPerMinute", "maximum"}},
		{"no room for the gateway", "{apiHostBudgetPerMinute: 850, gateway: {addressBudgetPerMinute: 850}}", []string{"gateway.addressBudgetPerMinute (850) must be above apiHostBudgetPerMinute (850)"}},
		{"no gateway replica", "gateway: {replicas: 0}", []string{"/gateway/replicas", "minimum"}},
		{"per-token limit without a period", "gateway: {perTokenLimits: APIEntreprise=100}", []string{"/gateway/perTokenLimits", "does not match pattern"}},
		{"gateway URL with a query", "gateway: {url: 'http://gw.example:8080/?token=x'}", []string{"/gateway/url", "does not match pattern"}},
		{"TLS Secret not a name", "gateway: {tls: {secretName: Gateway_TLS}}", []string{"/gateway/tls/secretName", "does not match pattern"}},
		{"misspelt gateway key", "gateway: {replicaCount: 3}", []string{"replicaCount", "not allowed"}},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".yaml")
			if err := os.WriteFile(f, []byte(c.values+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := helmTemplate(t, "jeton", operatorNamespace, "--values", f)
			if err == nil {
				t.Fatalf("helm template accepted %q", c.values)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("helm's error for %q does not say %q:\n%v", c.values, w, err)
				}
			}
		})
	}
}

// TestChartMatchesConfigDefault: the chart (release "jeton" in jeton-system, default values)
// and config/default render the same operator, so neither install path drifts from the
// other: same objects, RBAC rules, CRDs, container, security contexts and Service; and the
// chart's opt-in monitoring objects match config/prometheus.
func TestChartMatchesConfigDefault(t *testing.T) {
	chart := mustTemplate(t, "jeton", operatorNamespace, "--set", "serviceMonitor.enabled=true,prometheusRule.enabled=true")
	kust := kustomize(t, "config/default")

	// Helm does not own its release namespace (helm install --create-namespace creates it).
	delete(kust, key("Namespace", "", operatorNamespace))
	monitoring := map[string]bool{"ServiceMonitor": true, "PrometheusRule": true}
	var chartKeys []string
	for _, k := range chart.keys() {
		if !monitoring[chart[k].GetKind()] {
			chartKeys = append(chartKeys, k)
		}
	}
	if !slices.Equal(chartKeys, kust.keys()) {
		t.Fatalf("the chart and config/default render different objects:\nchart:          %s\nconfig/default: %s",
			strings.Join(chartKeys, ", "), strings.Join(kust.keys(), ", "))
	}

	for _, k := range kust.keys() {
		want, got := kust[k], chart[k]
		switch want.GetKind() {
		case "ClusterRole", "Role":
			sameField(t, k, got, want, "rules")
		case "ClusterRoleBinding", "RoleBinding":
			sameField(t, k, got, want, "roleRef")
			sameField(t, k, got, want, "subjects")
		case "CustomResourceDefinition":
			sameField(t, k, got, want, "spec")
		case "Service":
			sameField(t, k, got, want, "spec", "ports")
			sameField(t, k, got, want, "spec", "selector")
		case "PodDisruptionBudget":
			sameField(t, k, got, want, "spec", "minAvailable")
			sameField(t, k, got, want, "spec", "selector")
		case "NetworkPolicy":
			sameField(t, k, got, want, "spec")
		case "Deployment":
			if strings.Contains(k, "gateway") {
				sameGatewayDeployment(t, k, got, want)
				continue
			}
			// The selector is immutable: the same one lets Helm adopt a kustomize install.
			for _, f := range [][]string{{"spec", "replicas"}, {"spec", "selector"}, {"spec", "template", "spec", "securityContext"},
				{"spec", "template", "spec", "terminationGracePeriodSeconds"}} {
				sameField(t, k, got, want, f...)
			}
			gc, wc := container(t, got), container(t, want)
			for _, f := range []string{"command", "args", "env", "ports", "livenessProbe", "readinessProbe", "resources", "securityContext"} {
				if !reflect.DeepEqual(gc[f], wc[f]) {
					t.Errorf("%s container %s differs:\nchart:          %v\nconfig/default: %v", k, f, gc[f], wc[f])
				}
			}
		case "ServiceAccount":
		default:
			t.Errorf("%s: no comparison for kind %s: add one", k, want.GetKind())
		}
	}

	// The chart's CRDs are config/crd/bases exactly, as the API server will store them.
	for _, crd := range chart.ofKind("CustomResourceDefinition") {
		// controller-gen names the file <group>_<plural>.yaml.
		plural, group, _ := strings.Cut(crd.GetName(), ".")
		b, err := os.ReadFile(repoPath("config/crd/bases/" + group + "_" + plural + ".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		base := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(b, &base.Object); err != nil {
			t.Fatal(err)
		}
		sameField(t, "CRD "+crd.GetName()+" vs config/crd/bases", crd, base, "spec")
	}

	// Monitoring: as config/prometheus (the PrometheusRule is the one promtool tests).
	prom := kustomize(t, "config/prometheus")
	sameField(t, "PrometheusRule", chart.get(t, "PrometheusRule", operatorNamespace, "jeton-alerts"),
		prom.get(t, "PrometheusRule", "system", "alerts"), "spec")
	sm := chart.get(t, "ServiceMonitor", operatorNamespace, "jeton-metrics")
	wantSM := prom.get(t, "ServiceMonitor", "system", "metrics")
	sameField(t, "ServiceMonitor", sm, wantSM, "spec", "endpoints")
	sameField(t, "ServiceMonitor", sm, wantSM, "spec", "jobLabel")
	subset(t, "ServiceMonitor selector", nested(t, sm, "spec", "selector", "matchLabels"), nested(t, wantSM, "spec", "selector", "matchLabels"))
	gwSM := chart.get(t, "ServiceMonitor", operatorNamespace, "jeton-gateway-metrics")
	wantGwSM := prom.get(t, "ServiceMonitor", "system", "gateway-metrics")
	sameField(t, "gateway ServiceMonitor", gwSM, wantGwSM, "spec", "endpoints")
	sameField(t, "gateway ServiceMonitor", gwSM, wantGwSM, "spec", "jobLabel")
	subset(t, "gateway ServiceMonitor selector", nested(t, gwSM, "spec", "selector", "matchLabels"), nested(t, wantGwSM, "spec", "selector", "matchLabels"))
}

// sameGatewayDeployment compares the gateway's Deployment in the chart and config/default.
func sameGatewayDeployment(t *testing.T, k string, got, want *unstructured.Unstructured) {
	t.Helper()
	for _, f := range [][]string{{"spec", "replicas"}, {"spec", "selector"}, {"spec", "strategy"}, {"spec", "template", "spec", "securityContext"},
		{"spec", "template", "spec", "terminationGracePeriodSeconds"}, {"spec", "template", "spec", "topologySpreadConstraints"}} {
		sameField(t, k, got, want, f...)
	}
	gc, wc := gatewayContainer(t, got), gatewayContainer(t, want)
	for _, f := range []string{"command", "args", "env", "ports", "livenessProbe", "readinessProbe", "resources", "securityContext"} {
		if !reflect.DeepEqual(gc[f], wc[f]) {
			t.Errorf("%s container %s differs:\nchart:          %v\nconfig/default: %v", k, f, gc[f], wc[f])
		}
	}
}

func sameField(t *testing.T, what string, got, want *unstructured.Unstructured, path ...string) {
	t.Helper()
	g, w := nested(t, got, path...), nested(t, want, path...)
	if !reflect.DeepEqual(normalize(t, g), normalize(t, w)) {
		gj, _ := json.MarshalIndent(g, "", "  ")
		wj, _ := json.MarshalIndent(w, "", "  ")
		t.Errorf("%s: %s differs between the chart and config/ (run make manifests?)\nchart:\n%s\nconfig:\n%s", what, strings.Join(path, "."), gj, wj)
	}
}

// normalize round-trips v through JSON so that int64 and float64 compare equal.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// subset checks that every label of want is in got (the chart's ServiceMonitor adds
// app.kubernetes.io/instance).
func subset(t *testing.T, what string, got, want any) {
	t.Helper()
	g, w := got.(map[string]any), want.(map[string]any)
	for k, v := range w {
		if g[k] != v {
			t.Errorf("%s: chart has %v, config/default has %v", what, g, w)
			return
		}
	}
}
