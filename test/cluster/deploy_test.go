package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jeton-dev/jeton/internal/testenv"
)

// TestDefaultDeploymentBecomesAvailable applies config/default as `make deploy` does and
// waits for the manager Deployment, and the gateway's, to become Available (see available):
// the gateway's pods pass the restricted Pod Security level with their own ServiceAccount and
// land on different nodes.
func TestDefaultDeploymentBecomesAvailable(t *testing.T) {
	ctx := context.Background()
	manifests, stderr, err := env.Kubectl(ctx, nil, "kustomize", filepath.Join(env.Root, "config", "default"))
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v\n%s", err, stderr)
	}
	// --force-conflicts: testenv installed the CRDs first, as another field manager.
	if _, stderr, err := env.Kubectl(ctx, []byte(manifests), "apply", "--server-side", "--force-conflicts", "-f", "-"); err != nil {
		t.Fatalf("applying config/default: %v\n%s", err, stderr)
	}
	available(t, "jeton-system", "jeton-controller-manager", "jeton-controller-manager")
	available(t, "jeton-system", "jeton-gateway", "jeton-gateway")
	onDistinctNodes(t, "jeton-system", "jeton-gateway")
}

// onDistinctNodes: the Deployment's pods run on as many nodes as there are pods (the cluster
// has two nodes, the gateway two replicas spread over kubernetes.io/hostname).
func onDistinctNodes(t *testing.T, ns, name string) {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		t.Fatal(err)
	}
	pods := &corev1.PodList{}
	if err := env.Client.List(context.Background(), pods, client.InNamespace(ns), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]bool{}
	for _, p := range pods.Items {
		nodes[p.Spec.NodeName] = true
	}
	if len(nodes) != len(pods.Items) {
		t.Errorf("Deployment %s/%s: %d pods on nodes %v, want one per node", ns, name, len(pods.Items), nodes)
	}
}

// TestChartDeploymentBecomesAvailable installs the Helm chart (dist/chart) with bin/helm
// and waits for its manager Deployment to become Available (see available). Release
// "chart", so that its cluster-wide names do not collide with config/default's; the CRDs
// are left out, testenv installed them.
func TestChartDeploymentBecomesAvailable(t *testing.T) {
	helm := filepath.Join(env.Root, "bin", "helm")
	if _, err := os.Stat(helm); err != nil {
		t.Skip("bin/helm is missing: `make packaging-tools` installs it (`make test` does)")
	}
	const ns = "jeton-chart"
	home := t.TempDir()
	cmd := exec.Command(helm, "install", "chart", filepath.Join(env.Root, "dist", "chart"),
		"--namespace", ns, "--create-namespace", "--set", "crd.enable=false", "--wait=false")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig, "HELM_CONFIG_HOME="+home+"/config",
		"HELM_CACHE_HOME="+home+"/cache", "HELM_DATA_HOME="+home+"/data")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out.String())
	}
	available(t, ns, "chart-jeton-controller-manager", "chart-jeton-controller-manager")
	available(t, ns, "chart-jeton-gateway", "chart-jeton-gateway")
}

// available waits for Deployment ns/name to become Available and checks its pods: they
// passed admission (the namespace's Pod Security level, the ServiceAccount they name must
// exist), run as serviceAccount with its token mounted by the ServiceAccount admission
// plugin, were scheduled and turned Running. They are simulated: the image is never
// pulled, and the manager binary runs as a test process instead.
func available(t *testing.T, ns, name, serviceAccount string) {
	t.Helper()
	ctx := context.Background()
	d := &appsv1.Deployment{}
	d.Namespace, d.Name = ns, name
	testenv.WaitFor(t, rolloutTimeout, "Deployment "+ns+"/"+name+" Available", func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil {
			return err
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
				return nil
			}
			if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
				return fmt.Errorf("ReplicaFailure: %s", c.Message)
			}
		}
		return fmt.Errorf("not Available: %+v", d.Status.Conditions)
	})
	rolledOut(t, d, "")

	pods := &corev1.PodList{}
	if err := env.Client.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
		t.Fatal(err)
	}
	if int32(len(pods.Items)) != *d.Spec.Replicas {
		t.Fatalf("%d pods, want %d", len(pods.Items), *d.Spec.Replicas)
	}
	for _, p := range pods.Items {
		if p.Spec.ServiceAccountName != serviceAccount {
			t.Errorf("pod %s runs as ServiceAccount %q, want %q", p.Name, p.Spec.ServiceAccountName, serviceAccount)
		}
		mounted := false
		for _, v := range p.Spec.Volumes {
			mounted = mounted || (strings.HasPrefix(v.Name, "kube-api-access-") && v.Projected != nil)
		}
		if !mounted {
			t.Errorf("pod %s has no service-account token volume: the manager could not reach the API server", p.Name)
		}
		if p.Spec.NodeName == "" || p.Status.Phase != corev1.PodRunning {
			t.Errorf("pod %s: node %q, phase %s; want scheduled and Running", p.Name, p.Spec.NodeName, p.Status.Phase)
		}
	}
}
