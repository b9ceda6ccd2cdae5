package packaging

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// gatewaySA is the gateway's ServiceAccount in config/default and the chart's release "jeton".
const gatewaySA = "jeton-gateway"

// flagValue returns the value of --name=value in args, and whether it is there.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// checkGatewayDeployment checks what the gateway's Deployment must hold whatever the values:
// the manager's image with command /jeton-gateway, the restricted security context, probes on
// 8081, POD_NAMESPACE from the downward API, replicas spread over nodes, its own
// ServiceAccount, and a prober share equal to the manager's per-host budget (the two draw on
// one per-address budget: a mismatch would let jeton exceed it).
func checkGatewayDeployment(t *testing.T, objs objects, managerName string, replicas int) {
	t.Helper()
	d := objs.get(t, "Deployment", operatorNamespace, "jeton-gateway")
	mgr := container(t, objs.get(t, "Deployment", operatorNamespace, managerName))
	c := gatewayContainer(t, d)
	if c["image"] != mgr["image"] {
		t.Errorf("gateway image %v, manager image %v: one image holds both binaries", c["image"], mgr["image"])
	}
	if cmd := stringList(c["command"]); !slices.Equal(cmd, []string{"/jeton-gateway"}) {
		t.Errorf("gateway command %q, want [/jeton-gateway] (the image's entrypoint is the manager)", cmd)
	}
	if n := fmt.Sprint(nested(t, d, "spec", "replicas")); n != fmt.Sprint(replicas) {
		t.Errorf("gateway replicas %s, want %d", n, replicas)
	}
	args := stringList(c["args"])
	if v, _ := flagValue(args, "replicas"); v != fmt.Sprint(replicas) {
		t.Errorf("gateway --replicas=%q, want the Deployment's %d (the fewest replicas the budgets are split among)", v, replicas)
	}
	share, ok := flagValue(args, "prober-share-per-minute")
	budget, _ := flagValue(stringList(mgr["args"]), "api-host-budget-per-minute")
	if !ok || share != budget {
		t.Errorf("gateway --prober-share-per-minute=%q, manager --api-host-budget-per-minute=%q: they must be equal", share, budget)
	}
	if v, _ := flagValue(args, "service-name"); v != "jeton-gateway" {
		t.Errorf("gateway --service-name=%q, want its Service jeton-gateway", v)
	}
	for _, want := range []string{"--health-probe-bind-address=:8081", "--metrics-bind-address=:8082"} {
		if !slices.Contains(args, want) {
			t.Errorf("gateway args %q lack %s", args, want)
		}
	}

	spec := nested(t, d, "spec", "template", "spec").(map[string]any)
	if spec["serviceAccountName"] != gatewaySA {
		t.Errorf("gateway runs as ServiceAccount %v, want its own %s (never the manager's)", spec["serviceAccountName"], gatewaySA)
	}
	psc := spec["securityContext"].(map[string]any)
	if psc["runAsNonRoot"] != true || psc["seccompProfile"].(map[string]any)["type"] != "RuntimeDefault" {
		t.Errorf("gateway pod securityContext %v: want runAsNonRoot and seccomp RuntimeDefault", psc)
	}
	sc := c["securityContext"].(map[string]any)
	if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false ||
		!slices.Equal(stringList(sc["capabilities"].(map[string]any)["drop"]), []string{"ALL"}) {
		t.Errorf("gateway container securityContext %v: want read-only root, no privilege escalation, drop ALL", sc)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		get, _ := c[probe].(map[string]any)["httpGet"].(map[string]any)
		if get["path"] != path || get["port"] != "health" {
			t.Errorf("gateway %s %v, want %s on port health", probe, get, path)
		}
	}
	if !slices.ContainsFunc(c["ports"].([]any), func(p any) bool {
		m := p.(map[string]any)
		return m["name"] == "health" && fmt.Sprint(m["containerPort"]) == "8081"
	}) {
		t.Errorf("gateway ports %v lack health 8081", c["ports"])
	}
	podNS := false
	for _, e := range c["env"].([]any) {
		ev := e.(map[string]any)
		if ev["name"] == "POD_NAMESPACE" {
			ref, _ := ev["valueFrom"].(map[string]any)["fieldRef"].(map[string]any)
			podNS = ref["fieldPath"] == "metadata.namespace"
		}
	}
	if !podNS {
		t.Errorf("gateway env %v lacks POD_NAMESPACE from metadata.namespace", c["env"])
	}
	if res, _ := c["resources"].(map[string]any); res["requests"] == nil || res["limits"].(map[string]any)["memory"] == nil {
		t.Errorf("gateway resources %v: want requests and a memory limit", res)
	}
	spread := false
	for _, tsc := range spec["topologySpreadConstraints"].([]any) {
		m := tsc.(map[string]any)
		sel := m["labelSelector"].(map[string]any)["matchLabels"].(map[string]any)
		if m["topologyKey"] == "kubernetes.io/hostname" && m["whenUnsatisfiable"] == "DoNotSchedule" && sel["app.kubernetes.io/name"] == "jeton-gateway" {
			spread = true
		}
	}
	if !spread {
		t.Errorf("gateway topologySpreadConstraints %v: want replicas on different nodes (hostname, DoNotSchedule)", spec["topologySpreadConstraints"])
	}

	// Nothing of the manager's selects the gateway's pods, and the other way round: the
	// manager's Service, PDB and ServiceMonitor (job="jeton") must not pick up gateway pods.
	podLabels := nested(t, d, "spec", "template", "metadata", "labels").(map[string]any)
	mgrSel := nested(t, objs.get(t, "Deployment", operatorNamespace, managerName), "spec", "selector", "matchLabels").(map[string]any)
	matches := true
	for k, v := range mgrSel {
		matches = matches && podLabels[k] == v
	}
	if matches {
		t.Errorf("the manager's selector %v selects the gateway's pods %v", mgrSel, podLabels)
	}
}

// checkGatewayService: the Service the gateway counts its replicas with, on the API port.
func checkGatewayService(t *testing.T, objs objects, port int, name string) {
	t.Helper()
	svc := objs.get(t, "Service", operatorNamespace, "jeton-gateway")
	var ports []string
	for _, p := range nested(t, svc, "spec", "ports").([]any) {
		m := p.(map[string]any)
		ports = append(ports, fmt.Sprintf("%v/%v", m["name"], m["port"]))
	}
	if want := []string{fmt.Sprintf("%s/%d", name, port), "metrics/8082"}; !slices.Equal(ports, want) {
		t.Errorf("Service jeton-gateway ports %v, want %v", ports, want)
	}
	if sel := nested(t, svc, "spec", "selector").(map[string]any); sel["app.kubernetes.io/name"] != "jeton-gateway" {
		t.Errorf("Service jeton-gateway selects %v", sel)
	}
	if n := fmt.Sprint(nested(t, objs.get(t, "PodDisruptionBudget", operatorNamespace, "jeton-gateway"), "spec", "minAvailable")); n == "0" {
		t.Errorf("gateway PodDisruptionBudget minAvailable 0")
	}
}

// checkGatewayNetworkPolicy: the API port from client namespaces (any jeton.dev/client value)
// and the operator's namespace; metrics from every namespace but the client namespaces.
func checkGatewayNetworkPolicy(t *testing.T, objs objects) {
	t.Helper()
	np := objs.get(t, "NetworkPolicy", operatorNamespace, "jeton-gateway")
	if sel := nested(t, np, "spec", "podSelector", "matchLabels").(map[string]any); sel["app.kubernetes.io/name"] != "jeton-gateway" {
		t.Errorf("NetworkPolicy selects %v", sel)
	}
	rules := nested(t, np, "spec", "ingress").([]any)
	if len(rules) != 2 {
		t.Fatalf("NetworkPolicy ingress %v, want two rules (API, metrics)", rules)
	}
	portsOf := func(r map[string]any) []string {
		var out []string
		for _, p := range r["ports"].([]any) {
			out = append(out, fmt.Sprint(p.(map[string]any)["port"]))
		}
		return out
	}
	api, metrics := rules[0].(map[string]any), rules[1].(map[string]any)
	if got := portsOf(api); !slices.Equal(got, []string{"8080", "8443"}) {
		t.Errorf("API rule ports %v, want 8080 and 8443", got)
	}
	from := api["from"].([]any)
	clientNS := fmt.Sprint(from[0].(map[string]any)["namespaceSelector"])
	if len(from) != 2 || !strings.Contains(clientNS, "jeton.dev/client") || !strings.Contains(clientNS, "Exists") ||
		fmt.Sprint(from[1]) != "map[podSelector:map[]]" {
		t.Errorf("API rule admits %v, want client namespaces (jeton.dev/client Exists) and the operator's namespace", from)
	}
	if got := portsOf(metrics); !slices.Equal(got, []string{"8082"}) {
		t.Errorf("metrics rule ports %v, want 8082", got)
	}
	if m := fmt.Sprint(metrics["from"]); !strings.Contains(m, "jeton.dev/client") || !strings.Contains(m, "DoesNotExist") {
		t.Errorf("metrics rule admits %v, want every namespace but the client namespaces", m)
	}
}

// TestChartGateway renders the gateway with the default values (HTTP, as config/default) and
// ci/full-values.yaml (TLS from a Secret, three replicas, two credentials namespaces, lower
// per-token limits, gateway delivery by default), and checks that each value lands where the
// gateway and the manager read it.
func TestChartGateway(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		objs := mustTemplate(t, "jeton", operatorNamespace)
		checkGatewayDeployment(t, objs, "jeton-controller-manager", 2)
		checkGatewayService(t, objs, 8080, "http")
		checkGatewayNetworkPolicy(t, objs)
		args := stringList(container(t, objs.get(t, "Deployment", operatorNamespace, "jeton-controller-manager"))["args"])
		for _, want := range []string{"--default-delivery=Direct", "--gateway-url=http://jeton-gateway.jeton-system.svc:8080"} {
			if !slices.Contains(args, want) {
				t.Errorf("manager args %q lack %s", args, want)
			}
		}
		gw := stringList(gatewayContainer(t, objs.get(t, "Deployment", operatorNamespace, "jeton-gateway"))["args"])
		if !slices.Contains(gw, "--listen-address=:8080") || !slices.Contains(gw, "--address-budget-per-minute=850") {
			t.Errorf("gateway args %q: want plain HTTP on :8080 and the 850/min address budget", gw)
		}
		for _, a := range gw {
			if strings.HasPrefix(a, "--tls-cert-dir") || strings.HasPrefix(a, "--credentials-namespaces") || strings.HasPrefix(a, "--per-token-limits") {
				t.Errorf("gateway arg %s with the default values", a)
			}
		}
		if sms := objs.ofKind("ServiceMonitor"); len(sms) > 0 {
			t.Errorf("a gateway ServiceMonitor rendered by default; it is opt-in")
		}
	})

	t.Run("ci/full-values.yaml", func(t *testing.T) {
		objs := mustTemplate(t, "jeton", operatorNamespace, "--values", chartDir+"/ci/full-values.yaml")
		checkGatewayDeployment(t, objs, "jeton-controller-manager", 3)
		checkGatewayService(t, objs, 8443, "https")
		checkGatewayNetworkPolicy(t, objs)
		d := objs.get(t, "Deployment", operatorNamespace, "jeton-gateway")
		c := gatewayContainer(t, d)
		args := stringList(c["args"])
		for _, want := range []string{
			"--listen-address=:8443", "--tls-cert-dir=/tls",
			"--address-budget-per-minute=900", "--prober-share-per-minute=600",
			"--credentials-namespaces=jeton-system,vendor-credentials",
			"--allowed-api-hosts=egress-proxy.example:8443,127.0.0.1:18080",
			"--per-token-limits=APIEntreprise=100/1m,APIParticulier=10/1s",
			"--upstream-timeout=20s",
		} {
			if !slices.Contains(args, want) {
				t.Errorf("gateway args %q lack %s", args, want)
			}
		}
		// The certificate Secret, mounted read-only where --tls-cert-dir points.
		mounts := fmt.Sprint(c["volumeMounts"])
		vols := fmt.Sprint(nested(t, d, "spec", "template", "spec", "volumes"))
		if !strings.Contains(mounts, "mountPath:/tls") || !strings.Contains(mounts, "readOnly:true") || !strings.Contains(vols, "secretName:jeton-gateway-tls") {
			t.Errorf("gateway volumeMounts %s volumes %s: want Secret jeton-gateway-tls read-only at /tls", mounts, vols)
		}
		margs := stringList(container(t, objs.get(t, "Deployment", operatorNamespace, "jeton-controller-manager"))["args"])
		for _, want := range []string{"--default-delivery=Gateway", "--gateway-url=https://jeton-gateway.jeton-system.svc:8443"} {
			if !slices.Contains(margs, want) {
				t.Errorf("manager args %q lack %s", margs, want)
			}
		}
		spec := nested(t, d, "spec", "template", "spec").(map[string]any)
		if fmt.Sprint(spec["nodeSelector"]) != "map[kubernetes.io/os:linux]" || spec["tolerations"] == nil ||
			spec["priorityClassName"] != "system-cluster-critical" || spec["imagePullSecrets"] == nil {
			t.Errorf("gateway pod spec lacks nodeSelector, tolerations, priorityClassName or imagePullSecrets: %v", spec)
		}
		if n := fmt.Sprint(nested(t, objs.get(t, "PodDisruptionBudget", operatorNamespace, "jeton-gateway"), "spec", "minAvailable")); n != "2" {
			t.Errorf("gateway PodDisruptionBudget minAvailable %s, want 2", n)
		}
		sm := objs.get(t, "ServiceMonitor", operatorNamespace, "jeton-gateway-metrics")
		if sm.GetLabels()["release"] != "kube-prometheus-stack" {
			t.Errorf("gateway ServiceMonitor labels %v lack serviceMonitor.labels", sm.GetLabels())
		}
		if ep := nested(t, sm, "spec", "endpoints").([]any)[0].(map[string]any); ep["port"] != "metrics" || ep["interval"] != "1m" {
			t.Errorf("gateway ServiceMonitor endpoint %v", ep)
		}
		serverDryRun(t, objs, "monitoring", "vendor-credentials")
	})

	t.Run("without the gateway", func(t *testing.T) {
		// Monitoring on, gateway off: no gateway ServiceMonitor, and no gateway alert (the
		// replicas alert would only say, for good, that there is no gateway).
		objs := mustTemplate(t, "jeton", operatorNamespace, "--set", "gateway.enabled=false,prometheusRule.enabled=true,serviceMonitor.enabled=true")
		for _, k := range objs.keys() {
			if strings.Contains(k, "gateway") {
				t.Errorf("%s rendered with gateway.enabled false", k)
			}
		}
		rules := fmt.Sprint(nested(t, objs.get(t, "PrometheusRule", operatorNamespace, "jeton-alerts"), "spec", "groups"))
		if strings.Contains(rules, "JetonGateway") || !strings.Contains(rules, "JetonOperatorDown") {
			t.Errorf("PrometheusRule without the gateway: want the other alerts and no JetonGateway*: %s", rules)
		}
	})

	t.Run("explicit URL", func(t *testing.T) {
		objs := mustTemplate(t, "jeton", operatorNamespace, "--set", "gateway.url=https://jeton.example/gw")
		if args := stringList(container(t, objs.get(t, "Deployment", operatorNamespace, "jeton-controller-manager"))["args"]); !slices.Contains(args, "--gateway-url=https://jeton.example/gw") {
			t.Errorf("manager args %q: gateway.url not passed as --gateway-url", args)
		}
	})
}

// gatewayRBAC collects the rules bound to the gateway's ServiceAccount in objs: by
// ClusterRoleBinding (cluster-wide) or RoleBinding (in the binding's namespace).
type boundRule struct {
	namespace string // "" for cluster-wide
	role      string
	rule      map[string]any
}

func gatewayRBAC(t *testing.T, objs objects) []boundRule {
	t.Helper()
	var out []boundRule
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, b := range objs.ofKind(kind) {
			bound := false
			for _, s := range nested(t, b, "subjects").([]any) {
				m := s.(map[string]any)
				bound = bound || (m["kind"] == "ServiceAccount" && m["name"] == gatewaySA && m["namespace"] == operatorNamespace)
			}
			if !bound {
				continue
			}
			ref := nested(t, b, "roleRef").(map[string]any)
			var role *unstructured.Unstructured
			if ref["kind"] == "ClusterRole" {
				role = objs.get(t, "ClusterRole", "", ref["name"].(string))
			} else {
				role = objs.get(t, "Role", b.GetNamespace(), ref["name"].(string))
			}
			for _, r := range nested(t, role, "rules").([]any) {
				out = append(out, boundRule{namespace: b.GetNamespace(), role: kind + " " + b.GetNamespace() + "/" + b.GetName(), rule: r.(map[string]any)})
			}
		}
	}
	return out
}

// checkGatewayLeastPrivilege: the gateway's identity reads and never writes; Secrets only in
// the credentials namespaces, EndpointSlices only in its own, jeton resources (Habilitations,
// PublicClients) cluster-wide; nothing else.
func checkGatewayLeastPrivilege(t *testing.T, objs objects, credentialsNamespaces []string) {
	t.Helper()
	rules := gatewayRBAC(t, objs)
	if len(rules) == 0 {
		t.Fatal("no role bound to the gateway's ServiceAccount")
	}
	secretNS := map[string]bool{}
	for _, br := range rules {
		r := br.rule
		verbs := stringList(r["verbs"])
		for _, v := range verbs {
			if v != "get" && v != "list" && v != "watch" {
				t.Errorf("%s grants the gateway verb %q: it only reads", br.role, v)
			}
		}
		if r["nonResourceURLs"] != nil || r["resourceNames"] != nil {
			t.Errorf("%s: unexpected rule %v", br.role, r)
		}
		groups, resources := stringList(r["apiGroups"]), stringList(r["resources"])
		for _, res := range resources {
			grant := groups[0] + "/" + res
			if len(groups) != 1 {
				t.Errorf("%s: rule over several API groups %v", br.role, groups)
			}
			switch {
			case grant == "jeton.dev/habilitations" || grant == "jeton.dev/publicclients":
			case grant == "/secrets":
				if br.namespace == "" {
					t.Errorf("%s grants Secrets cluster-wide", br.role)
				}
				secretNS[br.namespace] = true
			case grant == "discovery.k8s.io/endpointslices":
				if br.namespace != operatorNamespace {
					t.Errorf("%s grants EndpointSlices outside the gateway's namespace (%q)", br.role, br.namespace)
				}
			default:
				t.Errorf("%s grants the gateway %s: not needed", br.role, grant)
			}
		}
	}
	var got []string
	for ns := range secretNS {
		got = append(got, ns)
	}
	slices.Sort(got)
	want := slices.Clone(credentialsNamespaces)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the gateway reads Secrets in %v, want exactly the credentials namespaces %v", got, want)
	}
	// The manager's roles are not bound to the gateway, nor the gateway's to the manager.
	for _, b := range append(objs.ofKind("ClusterRoleBinding"), objs.ofKind("RoleBinding")...) {
		ref := nested(t, b, "roleRef").(map[string]any)["name"].(string)
		for _, s := range nested(t, b, "subjects").([]any) {
			name := s.(map[string]any)["name"]
			if (name == gatewaySA) != strings.HasPrefix(ref, "jeton-gateway-") {
				t.Errorf("%s binds %s to %v", b.GetName(), ref, name)
			}
		}
	}
}

// TestChartGatewayLeastPrivilege checks the gateway's RBAC as rendered by the chart (default
// values, and two credentials namespaces) and by config/default.
func TestChartGatewayLeastPrivilege(t *testing.T) {
	t.Run("chart defaults", func(t *testing.T) {
		checkGatewayLeastPrivilege(t, mustTemplate(t, "jeton", operatorNamespace), []string{operatorNamespace})
	})
	t.Run("chart with two credentials namespaces", func(t *testing.T) {
		checkGatewayLeastPrivilege(t, mustTemplate(t, "jeton", operatorNamespace, "--values", chartDir+"/ci/full-values.yaml"),
			[]string{operatorNamespace, "vendor-credentials"})
	})
	t.Run("config/default", func(t *testing.T) {
		checkGatewayLeastPrivilege(t, kustomize(t, "config/default"), []string{operatorNamespace})
	})
}

// TestInstallerGatewayLeastPrivilege asks the API server's RBAC authorizer what the bundle's
// gateway ServiceAccount may do, impersonating it: read Habilitations and PublicClients
// anywhere, Secrets in the credentials namespace only, its own namespace's EndpointSlices;
// write nothing.
func TestInstallerGatewayLeastPrivilege(t *testing.T) {
	applyInstaller(t)
	as := "--as=system:serviceaccount:" + operatorNamespace + ":" + gatewaySA
	cases := []struct {
		verb, resource, namespace string
		want                      bool
	}{
		{"list", "habilitations.jeton.dev", "", true},
		{"watch", "habilitations.jeton.dev", "", true},
		{"get", "publicclients.jeton.dev", "", true},
		{"get", "secrets", operatorNamespace, true},
		{"watch", "secrets", operatorNamespace, true},
		{"list", "endpointslices.discovery.k8s.io", operatorNamespace, true},
		// Never anywhere else, never a write.
		{"get", "secrets", "default", false},
		{"list", "secrets", "", false},
		{"list", "endpointslices.discovery.k8s.io", "default", false},
		{"create", "secrets", operatorNamespace, false},
		{"update", "secrets", operatorNamespace, false},
		{"patch", "habilitations.jeton.dev", operatorNamespace, false},
		{"update", "habilitations.jeton.dev/status", operatorNamespace, false},
		{"delete", "publicclients.jeton.dev", "", false},
		{"list", "technicaltokens.jeton.dev", operatorNamespace, false},
		{"create", "events", operatorNamespace, false},
		{"create", "events.events.k8s.io", operatorNamespace, false},
		{"update", "leases.coordination.k8s.io", operatorNamespace, false},
		{"list", "pods", operatorNamespace, false},
		{"list", "namespaces", "", false},
		{"create", "tokenreviews.authentication.k8s.io", "", false},
	}
	for _, c := range cases {
		args := []string{"auth", "can-i", c.verb, c.resource, as}
		if c.namespace == "" {
			args = append(args, "--all-namespaces")
		} else {
			args = append(args, "-n", c.namespace)
		}
		out, _, _ := env.Kubectl(t.Context(), nil, args...) // can-i exits 1 on "no"
		if got := strings.TrimSpace(out) == "yes"; got != c.want {
			t.Errorf("gateway can %s %s in %q: %q, want %v", c.verb, c.resource, c.namespace, strings.TrimSpace(out), c.want)
		}
	}
}

// TestRenderGatewayTLSComponent: config/default with the component config/gateway/tls (as
// docs/gateway.md says to use it) serves HTTPS on 8443 from the Secret jeton-gateway-tls,
// mounted read-only where --tls-cert-dir points, behind the Service's port https; the API
// server accepts the result.
func TestRenderGatewayTLSComponent(t *testing.T) {
	overlay := t.TempDir()
	rel := func(p string) string {
		r, err := filepath.Rel(overlay, repoPath(p))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	kustomization := fmt.Sprintf("resources:\n- %s\ncomponents:\n- %s\n", rel("config/default"), rel("config/gateway/tls"))
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kustomization), 0o600); err != nil {
		t.Fatal(err)
	}
	objs := parseManifests(t, must(t, nil, nil, tool(t, "kustomize", "tools"), "build", overlay).stdout)
	checkGatewayService(t, objs, 8443, "https")
	d := objs.get(t, "Deployment", operatorNamespace, "jeton-gateway")
	c := gatewayContainer(t, d)
	args := stringList(c["args"])
	for _, want := range []string{"--listen-address=:8443", "--tls-cert-dir=/tls"} {
		if !slices.Contains(args, want) {
			t.Errorf("gateway args %q lack %s", args, want)
		}
	}
	if slices.Contains(args, "--listen-address=:8080") {
		t.Errorf("gateway args %q still listen on :8080", args)
	}
	if ports := fmt.Sprint(c["ports"]); !strings.Contains(ports, "containerPort:8443") || !strings.Contains(ports, "name:https") {
		t.Errorf("gateway container ports %s, want https 8443", ports)
	}
	mounts := fmt.Sprint(c["volumeMounts"])
	vols := fmt.Sprint(nested(t, d, "spec", "template", "spec", "volumes"))
	if !strings.Contains(mounts, "mountPath:/tls") || !strings.Contains(mounts, "readOnly:true") || !strings.Contains(vols, "secretName:jeton-gateway-tls") {
		t.Errorf("gateway volumeMounts %s volumes %s: want Secret jeton-gateway-tls read-only at /tls", mounts, vols)
	}
	serverDryRun(t, objs)
}
