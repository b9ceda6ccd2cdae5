package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// serviceAccount is the identity config/default gives the manager.
const serviceAccount = "jeton-controller-manager"

// TestDefaultDeploymentRBACSuffices applies config/default as `make deploy` would, then
// runs the manager binary as its ServiceAccount: the generated ClusterRole and the
// leader-election Role must be enough to elect a leader and reconcile the samples, with no
// "forbidden" error anywhere in the logs.
func TestDefaultDeploymentRBACSuffices(t *testing.T) {
	ctx := context.Background()
	manifests, stderr, err := kubectl(t, "", "kustomize", filepath.Join(env.Root, "config", "default"))
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v\n%s", err, stderr)
	}
	// --force-conflicts: the CRDs were first created by envtest, another field manager.
	_, stderr, err = kubectl(t, manifests, "apply", "--server-side", "--force-conflicts", "-f", "-")
	if err != nil {
		t.Fatalf("applying config/default: %v\n%s", err, stderr)
	}
	// The namespace warns on the restricted Pod Security level: the Deployment must comply.
	ns := &corev1.Namespace{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: operatorNamespace}, ns); err != nil {
		t.Fatal(err)
	}
	if ns.Labels["pod-security.kubernetes.io/warn"] != "restricted" {
		t.Fatalf("namespace %s does not warn on the restricted Pod Security level: labels %v", operatorNamespace, ns.Labels)
	}
	if strings.Contains(stderr, "PodSecurity") {
		t.Errorf("the manager Deployment violates the restricted Pod Security level:\n%s", stderr)
	}
	for _, obj := range []string{"deployment/jeton-controller-manager", "service/jeton-metrics", "serviceaccount/" + serviceAccount} {
		if _, stderr, err := kubectl(t, "", "get", "-n", operatorNamespace, obj); err != nil {
			t.Errorf("config/default did not create %s: %s", obj, stderr)
		}
	}

	// Act as the ServiceAccount: RBAC matches its user name and groups.
	user, err := env.Environment.AddUser(envtest.User{
		Name:   "system:serviceaccount:" + operatorNamespace + ":" + serviceAccount,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + operatorNamespace, "system:authenticated"},
	}, nil)
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

	if _, stderr, err := kubectl(t, "", "apply", "-k", filepath.Join(env.Root, "config", "samples")); err != nil {
		t.Fatalf("kubectl apply -k config/samples: %v\n%s", err, stderr)
	}
	p := startManager(t, kubeconfigPath)
	p.eventually(t, "the lease", func() error { return testenv.LeaseHeld(ctx, env.Client, operatorNamespace) })

	// Each kind gets a Ready condition: the PublicClient's namespace, NetworkPolicy and
	// status were written; the Habilitation and the TechnicalToken read their (absent)
	// token Secrets and wrote their status.
	readyReason := func(obj client.Object, conds func() []metav1.Condition) func() error {
		return func() error {
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
				return err
			}
			c := meta.FindStatusCondition(conds(), jetonv1alpha1.ConditionReady)
			if c == nil {
				return fmt.Errorf("%s has no Ready condition yet", obj.GetName())
			}
			if c.ObservedGeneration != obj.GetGeneration() {
				return fmt.Errorf("%s: Ready condition is for generation %d, not %d", obj.GetName(), c.ObservedGeneration, obj.GetGeneration())
			}
			return nil
		}
	}
	pc := &jetonv1alpha1.PublicClient{}
	pc.Name = "trifouilly"
	p.eventually(t, "PublicClient trifouilly", readyReason(pc, func() []metav1.Condition { return pc.Status.Conditions }))
	if c := meta.FindStatusCondition(pc.Status.Conditions, jetonv1alpha1.ConditionReady); c.Status != "True" {
		t.Errorf("PublicClient trifouilly is not Ready as the ServiceAccount: %s: %s", c.Reason, c.Message)
	}
	hab := &jetonv1alpha1.Habilitation{}
	hab.Namespace, hab.Name = operatorNamespace, "trifouilly-api-entreprise"
	p.eventually(t, "Habilitation trifouilly-api-entreprise", readyReason(hab, func() []metav1.Condition { return hab.Status.Conditions }))
	if c := meta.FindStatusCondition(hab.Status.Conditions, jetonv1alpha1.ConditionReady); c.Reason != jetonv1alpha1.ReasonSecretNotFound {
		t.Errorf("Habilitation without its token Secret: reason %s (%s), want %s", c.Reason, c.Message, jetonv1alpha1.ReasonSecretNotFound)
	}
	tt := &jetonv1alpha1.TechnicalToken{}
	tt.Namespace, tt.Name = operatorNamespace, "api-entreprise"
	p.eventually(t, "TechnicalToken api-entreprise", readyReason(tt, func() []metav1.Condition { return tt.Status.Conditions }))

	p.stop(t)
	forbidden := regexp.MustCompile(`(?i).*forbidden.*`)
	if lines := forbidden.FindAllString(p.Out.String(), -1); len(lines) > 0 {
		t.Errorf("the manager hit RBAC denials as its ServiceAccount; add +kubebuilder:rbac markers and run make manifests:\n%s",
			strings.Join(lines, "\n"))
	}
}
