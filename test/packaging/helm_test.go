package packaging

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// cluster is a control plane of its own: the Helm lifecycle needs one without the CRDs
// envtest installs, so that the chart installs them (Helm refuses to adopt objects it did
// not create).
type cluster struct {
	kubeconfig string
	client     client.Client
	env        *envtest.Environment
	dir        string
}

func startBareCluster(t *testing.T) *cluster {
	t.Helper()
	e := &envtest.Environment{
		BinaryAssetsDirectory:    env.Environment.BinaryAssetsDirectory,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	cfg, err := e.Start()
	if err != nil {
		t.Fatalf("starting a second control plane: %v", err)
	}
	c := &cluster{env: e, dir: t.TempDir()}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("stopping the second control plane: %v", err)
		}
	})
	if c.client, err = client.New(cfg, client.Options{Scheme: env.Scheme}); err != nil {
		t.Fatal(err)
	}
	c.kubeconfig = c.userKubeconfig(t, envtest.User{Name: "platform-admin", Groups: []string{"system:masters"}})
	return c
}

// userKubeconfig writes a kubeconfig authenticating as user (RBAC matches its name and groups).
func (c *cluster) userKubeconfig(t *testing.T, u envtest.User) string {
	t.Helper()
	au, err := c.env.AddUser(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := au.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(c.dir, strings.NewReplacer(":", "_", "/", "_").Replace(u.Name)+".kubeconfig")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (c *cluster) kubectl(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	return must(t, stdin, nil, filepath.Join(env.Environment.BinaryAssetsDirectory, "kubectl"), append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
}

// helm runs bin/helm against the cluster, with its own configuration and cache directories.
func (c *cluster) helm(t *testing.T, args ...string) result {
	t.Helper()
	home := filepath.Join(c.dir, "helm")
	vars := []string{"KUBECONFIG=" + c.kubeconfig, "HELM_CONFIG_HOME=" + home + "/config",
		"HELM_CACHE_HOME=" + home + "/cache", "HELM_DATA_HOME=" + home + "/data"}
	return must(t, nil, vars, helmBin(t), args...)
}

// TestHelmLifecycle installs the chart as the README says, runs the manager with the
// Deployment's own arguments and environment as the chart's ServiceAccount, then upgrades
// and uninstalls: RBAC suffices, an upgrade keeps every jeton resource, an uninstall keeps
// the CRDs and the users' resources, and a new install adopts the kept CRDs.
func TestHelmLifecycle(t *testing.T) {
	ctx := t.Context()
	c := startBareCluster(t)

	// README, "Install with Helm".
	c.kubectl(t, nil, "create", "namespace", operatorNamespace)
	c.kubectl(t, nil, "label", "namespace", operatorNamespace,
		"pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/warn=restricted")
	// The samples' baseURL is make dev's emulator: allow it, as an egress proxy would be.
	c.helm(t, "install", "jeton", chartDir, "--namespace", operatorNamespace, "--set", "allowedAPIHosts={127.0.0.1:18080}")
	c.kubectl(t, nil, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/publicclients.jeton.dev", "crd/habilitations.jeton.dev", "crd/technicaltokens.jeton.dev")

	manifest := c.helm(t, "get", "manifest", "jeton", "--namespace", operatorNamespace).stdout
	// What a pod of this Deployment would be told by the restricted Pod Security level.
	if r := c.kubectl(t, []byte(manifest), "apply", "--dry-run=server", "-f", "-"); strings.Contains(r.stderr, "PodSecurity") {
		t.Errorf("the chart's Deployment violates the restricted Pod Security level:\n%s", r.stderr)
	}

	sa := envtest.User{Name: "system:serviceaccount:" + operatorNamespace + ":jeton-controller-manager",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + operatorNamespace, "system:authenticated"}}
	saKubeconfig := c.userKubeconfig(t, sa)
	c.kubectl(t, nil, "apply", "-k", repoPath("config/samples"))

	p := startChartManager(t, parseManifests(t, manifest), saKubeconfig)
	p.eventually(t, time.Minute, "the lease", func() error { return testenv.LeaseHeld(ctx, c.client, operatorNamespace) })
	reconciled := func(obj client.Object, conds func() []metav1.Condition) func() error {
		return func() error {
			if err := c.client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
				return err
			}
			cond := meta.FindStatusCondition(conds(), jetonv1alpha1.ConditionReady)
			if cond == nil || cond.ObservedGeneration != obj.GetGeneration() {
				return fmt.Errorf("%s not reconciled yet", obj.GetName())
			}
			return nil
		}
	}
	pc := &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: "trifouilly"}}
	p.eventually(t, time.Minute, "PublicClient trifouilly", reconciled(pc, func() []metav1.Condition { return pc.Status.Conditions }))
	if cond := meta.FindStatusCondition(pc.Status.Conditions, jetonv1alpha1.ConditionReady); cond.Status != metav1.ConditionTrue {
		t.Errorf("PublicClient trifouilly not Ready as the chart's ServiceAccount: %s: %s", cond.Reason, cond.Message)
	}
	hab := &jetonv1alpha1.Habilitation{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "trifouilly-api-entreprise"}}
	p.eventually(t, time.Minute, "Habilitation trifouilly-api-entreprise", reconciled(hab, func() []metav1.Condition { return hab.Status.Conditions }))
	if cond := meta.FindStatusCondition(hab.Status.Conditions, jetonv1alpha1.ConditionReady); cond.Reason != jetonv1alpha1.ReasonSecretNotFound {
		t.Errorf("Habilitation without its token Secret: reason %s (%s), want %s", cond.Reason, cond.Message, jetonv1alpha1.ReasonSecretNotFound)
	}
	tt := &jetonv1alpha1.TechnicalToken{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "api-entreprise"}}
	p.eventually(t, time.Minute, "TechnicalToken api-entreprise", reconciled(tt, func() []metav1.Condition { return tt.Status.Conditions }))
	p.stop(t)
	p.noForbidden(t, "the chart's ServiceAccount")

	before := jetonUIDs(t, c)

	// Upgrade with new values: every jeton object stays (same UIDs), the new values apply.
	c.helm(t, "upgrade", "jeton", chartDir, "--namespace", operatorNamespace, "--reuse-values",
		"--set", "replicaCount=3,logLevel=debug")
	manifest = c.helm(t, "get", "manifest", "jeton", "--namespace", operatorNamespace).stdout
	objs := parseManifests(t, manifest)
	d := objs.get(t, "Deployment", operatorNamespace, "jeton-controller-manager")
	if n := fmt.Sprint(nested(t, d, "spec", "replicas")); n != "3" {
		t.Errorf("after helm upgrade --set replicaCount=3: replicas %s", n)
	}
	if args := stringList(container(t, d)["args"]); !slices.Contains(args, "--zap-log-level=debug") || !slices.Contains(args, "--allowed-api-hosts=127.0.0.1:18080") {
		t.Errorf("after helm upgrade --reuse-values --set logLevel=debug: args %v", args)
	}
	sameUIDs(t, "helm upgrade", before, jetonUIDs(t, c))
	// The upgraded arguments still start the manager.
	p = startChartManager(t, objs, saKubeconfig)
	p.ready(t)
	p.stop(t)
	p.noForbidden(t, "the chart's ServiceAccount after the upgrade")

	// Uninstall: the CRDs, and with them every user resource, stay.
	out := c.helm(t, "uninstall", "jeton", "--namespace", operatorNamespace).stdout
	if !strings.Contains(out, "kept due to the resource policy") {
		t.Errorf("helm uninstall does not report the kept CRDs:\n%s", out)
	}
	sameUIDs(t, "helm uninstall", before, jetonUIDs(t, c))
	for _, gone := range []client.Object{
		&unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"namespace": operatorNamespace, "name": "jeton-controller-manager"}}},
		&unstructured.Unstructured{Object: map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": map[string]any{"name": "jeton-manager-role"}}},
	} {
		if err := c.client.Get(ctx, client.ObjectKeyFromObject(gone), gone); err == nil {
			t.Errorf("%s %s survived helm uninstall", gone.GetObjectKind().GroupVersionKind().Kind, gone.GetName())
		}
	}

	// Installing again adopts the kept CRDs (they still carry the release's annotations).
	c.helm(t, "install", "jeton", chartDir, "--namespace", operatorNamespace)
	sameUIDs(t, "a new helm install", before, jetonUIDs(t, c))
}

// startChartManager runs the manager binary as the Deployment of objs would run it: its
// args (bind addresses moved to free loopback ports) and its environment as the kubelet
// resolves it.
func startChartManager(t *testing.T, objs objects, kubeconfig string) *manager {
	t.Helper()
	d := objs.get(t, "Deployment", operatorNamespace, "jeton-controller-manager")
	ctr := container(t, d)
	var args []string
	for _, a := range stringList(ctr["args"]) {
		// startManager sets the addresses, on free loopback ports. The secure metrics default
		// stays: HTTPS, TokenReview and SubjectAccessReview as the SA.
		if strings.HasPrefix(a, "--metrics-bind-address=") || strings.HasPrefix(a, "--health-probe-bind-address=") {
			continue
		}
		args = append(args, a)
	}
	var vars []string
	for _, e := range ctr["env"].([]any) {
		ev := e.(map[string]any)
		name := ev["name"].(string)
		from, _ := ev["valueFrom"].(map[string]any)
		switch {
		case from["fieldRef"] != nil && from["fieldRef"].(map[string]any)["fieldPath"] == "metadata.namespace":
			vars = append(vars, name+"="+operatorNamespace)
		case from["resourceFieldRef"] != nil && from["resourceFieldRef"].(map[string]any)["resource"] == "limits.memory":
			limits, _ := ctr["resources"].(map[string]any)["limits"].(map[string]any)
			q := resource.MustParse(fmt.Sprint(limits["memory"]))
			vars = append(vars, fmt.Sprintf("%s=%d", name, q.Value()))
		case ev["value"] != nil:
			vars = append(vars, fmt.Sprintf("%s=%v", name, ev["value"]))
		default:
			t.Fatalf("the Deployment's env %v is not resolved by this test: add it", ev)
		}
	}
	return startManager(t, kubeconfig, vars, args...)
}

// jetonUIDs records the UID of every jeton CRD, jeton resource and client namespace.
func jetonUIDs(t *testing.T, c *cluster) map[string]string {
	t.Helper()
	uids := map[string]string{}
	for _, gvk := range []schema.GroupVersionKind{
		{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinitionList"},
		jetonv1alpha1.GroupVersion.WithKind("PublicClientList"),
		jetonv1alpha1.GroupVersion.WithKind("HabilitationList"),
		jetonv1alpha1.GroupVersion.WithKind("TechnicalTokenList"),
		{Version: "v1", Kind: "NamespaceList"},
	} {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk)
		if err := c.client.List(context.Background(), list); err != nil {
			t.Fatalf("listing %s: %v", gvk.Kind, err)
		}
		for _, o := range list.Items {
			if gvk.Kind == "CustomResourceDefinitionList" && !strings.HasSuffix(o.GetName(), ".jeton.dev") {
				continue
			}
			if gvk.Kind == "NamespaceList" && o.GetLabels()[jetonv1alpha1.LabelClient] == "" {
				continue
			}
			uids[strings.TrimSuffix(gvk.Kind, "List")+" "+o.GetNamespace()+"/"+o.GetName()] = string(o.GetUID())
		}
	}
	if len(uids) < 3+2+3+3 {
		t.Fatalf("expected the CRDs, the samples and the client namespaces, found %v", uids)
	}
	return uids
}

func sameUIDs(t *testing.T, after string, before, now map[string]string) {
	t.Helper()
	for k, uid := range before {
		switch got, ok := now[k]; {
		case !ok:
			t.Errorf("%s deleted %s", after, k)
		case got != uid:
			t.Errorf("%s recreated %s (UID %s, was %s)", after, k, got, uid)
		}
	}
}

// TestHelmTakesOverAnInstallerInstall: a cluster installed from install.yaml (or kustomize,
// or `make dev`, whose CRDs envtest installed) moves to Helm with --take-ownership, without
// deleting or recreating anything, the immutable Deployment selector included.
func TestHelmTakesOverAnInstallerInstall(t *testing.T) {
	ctx := t.Context()
	applyInstaller(t)
	c := &cluster{kubeconfig: env.Kubeconfig, client: env.Client, dir: t.TempDir()}
	before := map[string]string{}
	for _, k := range []string{"CustomResourceDefinition//habilitations.jeton.dev", "Deployment/jeton-system/jeton-controller-manager",
		"ClusterRole//jeton-manager-role", "ServiceAccount/jeton-system/jeton-controller-manager",
		// The gateway's too: its Deployment selector is config/gateway's.
		"Deployment/jeton-system/jeton-gateway", "ClusterRole//jeton-gateway-role", "ServiceAccount/jeton-system/jeton-gateway"} {
		before[k] = uidOf(ctx, t, k)
	}
	c.helm(t, "install", "jeton", chartDir, "--namespace", operatorNamespace, "--take-ownership")
	for k, uid := range before {
		if got := uidOf(ctx, t, k); got != uid {
			t.Errorf("helm install --take-ownership recreated %s", k)
		}
	}
	d := &unstructured.Unstructured{}
	d.SetGroupVersionKind(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"})
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "jeton-controller-manager"}, d); err != nil {
		t.Fatal(err)
	}
	if d.GetAnnotations()["meta.helm.sh/release-name"] != "jeton" || d.GetLabels()["app.kubernetes.io/managed-by"] != "Helm" {
		t.Errorf("the Deployment is not the release's now: labels %v annotations %v", d.GetLabels(), d.GetAnnotations())
	}
}

// uidOf returns the UID of "Kind/namespace/name" on the package's control plane.
func uidOf(ctx context.Context, t *testing.T, k string) string {
	t.Helper()
	parts := strings.SplitN(k, "/", 3)
	gvk := map[string]schema.GroupVersionKind{
		"CustomResourceDefinition": {Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"},
		"Deployment":               {Group: "apps", Version: "v1", Kind: "Deployment"},
		"ClusterRole":              {Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"},
		"ServiceAccount":           {Version: "v1", Kind: "ServiceAccount"},
	}[parts[0]]
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: parts[1], Name: parts[2]}, u); err != nil {
		t.Fatalf("%s: %v", k, err)
	}
	return string(u.GetUID())
}
