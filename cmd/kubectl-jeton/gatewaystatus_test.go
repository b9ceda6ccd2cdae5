package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/jeton-dev/jeton/internal/gateway"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// nonLoopbackIP is an address of this machine the API server agrees to proxy to: it
// refuses loopback, link-local and unspecified pod IPs.
func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
			return ipn.IP.String()
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address: the API server would not proxy to a pod here")
	return ""
}

// serveGatewayMetrics serves a registry like the gateway's (cmd/gateway/run.go: the
// process collector and gateway.NewMetrics) on ip, and returns its metrics and port.
func serveGatewayMetrics(t *testing.T, ip string) (*gateway.Metrics, int32) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := gateway.NewMetrics(reg)
	m.ExpectedReplicas.Set(2)
	m.ReadyReplicas.Set(1)
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return m, int32(l.Addr().(*net.TCPAddr).Port)
}

// gatewayPod creates a Pod shaped like config/gateway's (label, port "metrics") and, when
// ip is set, gives it that pod IP, as a kubelet would.
func gatewayPod(t *testing.T, namespace, name, ip string, port int32) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app.kubernetes.io/name": "jeton-gateway"}},
		Spec: restricted(corev1.Container{Name: "gateway", Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: port}}}),
	}
	create(t, pod)
	if ip == "" {
		return
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = ip
	pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	if err := k8sClient.Status().Update(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
}

// status reads the gateway's metrics through the API server's pod proxy: one replica
// serving the gateway's real metrics, one not running yet. Counts sum what the replica
// reports, -n keeps that namespace's Habilitations, an upstream 429 makes the exit status
// 1, and no gateway pod or no right to read them is one line that fails nothing.
func TestStatusGateway(t *testing.T) {
	ip := nonLoopbackIP(t)
	gwNS := uniqueName("gateway")
	create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: gwNS}})
	m, port := serveGatewayMetrics(t, ip)
	gatewayPod(t, gwNS, "jeton-gateway-a", ip, port)
	gatewayPod(t, gwNS, "jeton-gateway-b", "", 8082)
	// A replica with an IP where nothing listens: the API server's proxy cannot reach it.
	closed, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	closedPort := int32(closed.Addr().(*net.TCPAddr).Port)
	_ = closed.Close()
	gatewayPod(t, gwNS, "jeton-gateway-c", ip, closedPort)

	// Rows of two credentials namespaces: gwNS (empty of jeton resources, so the fleet
	// part needs no action) and another.
	m.Requests.WithLabelValues(gwNS, "mairie-ae", "mairie", "APIEntreprise", "200").Add(40)
	m.Requests.WithLabelValues(gwNS, "mairie-ae", "mairie", "APIEntreprise", "429").Add(5)
	m.Requests.WithLabelValues("elsewhere", "ccas-ap", "ccas", "APIParticulier", "200").Add(2)
	m.Refusals.WithLabelValues(gwNS, "mairie-ae", "mairie", "APIEntreprise", gateway.ReasonThrottled).Add(5)
	m.Refusals.WithLabelValues("elsewhere", "ccas-ap", "ccas", "APIParticulier", gateway.ReasonUpstreamHeld).Add(3)
	m.Refusals.WithLabelValues("", "", "", "", gateway.ReasonMissingCredential).Add(9)

	args := []string{"status", "--gateway-namespace", gwNS}
	// Every namespace: the exit status is the other tests' fleets' business here.
	r := kubectlJeton(t, "", args...)
	contains(t, r, "status (gateway)",
		"GATEWAY (namespace "+gwNS+") - 1 of 3 replica(s) reached; 1 ready of 2 expected",
		"not reached: jeton-gateway-b: not running (phase Pending, no pod IP)",
		"not reached: jeton-gateway-c: the API server could not reach it (does a NetworkPolicy keep the control plane off its metrics port?)",
		"counts since each replica started (up ",
		"requests: 47, 2xx 42, 4xx 5 (429 5)",
		"refused by the gateway: 17, missing_credential 9, throttled 5, upstream_held 3",
		"Habilitation "+gwNS+"/mairie-ae client=mairie api=APIEntreprise throttled 5, upstream_held 0",
		"Habilitation elsewhere/ccas-ap client=ccas api=APIParticulier throttled 0, upstream_held 3",
		"upstream 429s: none")

	// -n: that namespace's Habilitations only; its fleet is empty, so nothing needs action.
	r = kubectlJeton(t, "", append(args, "-n", gwNS)...)
	wantCode(t, r, exitOK, "status -n (gateway)")
	contains(t, r, "status -n (gateway)", "Habilitations of namespace "+gwNS+" only", "requests: 45, 2xx 40, 4xx 5 (429 5)",
		"refused by the gateway: 5, throttled 5", "Habilitation "+gwNS+"/mairie-ae")
	notContains(t, r, "status -n (gateway)", "ccas", "missing_credential")

	// An upstream 429: needs action, whatever the namespace.
	m.Upstream429.WithLabelValues("entreprise.api.gouv.fr", "APIEntreprise").Inc()
	r = kubectlJeton(t, "", append(args, "-n", gwNS)...)
	wantCode(t, r, exitNeedsAction, "status -n (upstream 429)")
	contains(t, r, "status -n (upstream 429)", "nothing needs action", "UPSTREAM 429s - needs action", "entreprise.api.gouv.fr 1")

	// No gateway there: one line, nothing fails.
	r = kubectlJeton(t, "", "status", "-n", gwNS, "--gateway-namespace", uniqueName("nogateway"))
	wantCode(t, r, exitOK, "status (no gateway)")
	contains(t, r, "status (no gateway)", "GATEWAY - no gateway pod (label app.kubernetes.io/name=jeton-gateway) in namespace nogateway-")

	// A user who may read jeton's resources and list the pods, but not proxy to them; then
	// one who may not even list them.
	user := uniqueName("gateway-viewer")
	kc := userKubeconfig(t, user)
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: uniqueName("gateway-viewer")}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"jeton.dev"}, Resources: []string{"publicclients", "habilitations", "technicaltokens"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}},
	}}
	create(t, role)
	create(t, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}}})
	testenv.WaitFor(t, time.Minute, "the binding to take effect", func(context.Context) error {
		if r = kubectlJetonAs(t, kc, "", append(args, "-n", gwNS)...); r.code == exitError {
			return errString(r.stderr)
		}
		return nil
	})
	wantCode(t, r, exitOK, "status (no pods/proxy)")
	contains(t, r, "status (no pods/proxy)", `GATEWAY - not shown: you may not read the gateway pods' metrics through the API server (RBAC verb "get" on "pods/proxy" in namespace `+gwNS+")")
	notContains(t, r, "status (no pods/proxy)", "not reached", "requests:")

	role.Rules = role.Rules[:1]
	if err := k8sClient.Update(context.Background(), role); err != nil {
		t.Fatal(err)
	}
	want := `GATEWAY - not shown: you may not list pods in namespace ` + gwNS + ` (RBAC verb "list" on "pods")`
	testenv.WaitFor(t, time.Minute, "the role to lose pods", func(context.Context) error {
		if r = kubectlJetonAs(t, kc, "", append(args, "-n", gwNS)...); !strings.Contains(r.stdout, want) {
			return errString(r.stdout + r.stderr)
		}
		return nil
	})
	wantCode(t, r, exitOK, "status (no pods)")
}

func notContains(t *testing.T, r result, args string, unwanted ...string) {
	t.Helper()
	for _, u := range unwanted {
		if strings.Contains(r.stdout+r.stderr, u) {
			t.Errorf("kubectl jeton %s: output holds %q\nstdout:\n%s\nstderr:\n%s", args, u, r.stdout, r.stderr)
		}
	}
}
