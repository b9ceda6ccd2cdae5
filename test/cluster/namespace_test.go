package cluster

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/testenv"
	"github.com/jeton-dev/jeton/internal/token"
)

// TestNamespacePolicy deletes a PublicClient whose namespace runs a workload with an
// injected token. The PublicClient goes away (its finalizer released) and the injected
// Secret with it; with Delete the namespace is really deleted (emptied and finalized by
// the namespace controller, its pods gone), with Retain it stays, its workload running.
func TestNamespacePolicy(t *testing.T) {
	for _, policy := range []jetonv1alpha1.NamespacePolicy{jetonv1alpha1.NamespacePolicyDelete, jetonv1alpha1.NamespacePolicyRetain} {
		t.Run(string(policy), func(t *testing.T) {
			ctx := context.Background()
			sfx := suffix()
			pc := readyClient(t, "policy-"+sfx, policy)
			ns := pc.TargetNamespace()
			tok := mint(t)
			h := habilitation(t, "policy-"+sfx, pc.Name, tok)
			testenv.WaitFor(t, waitTimeout, "the token injected", injected(ns, h.Name, token.Fingerprint(tok)))
			d := workload(ns, "teleservice", h.Name)
			if err := env.Client.Create(ctx, d); err != nil {
				t.Fatal(err)
			}
			rolledOut(t, d, "")

			if err := env.Client.Delete(ctx, pc); err != nil {
				t.Fatal(err)
			}
			testenv.WaitFor(t, waitTimeout, "PublicClient "+pc.Name+" gone (its finalizer released)", func(ctx context.Context) error {
				return gone(ctx, pc)
			})
			switch policy {
			case jetonv1alpha1.NamespacePolicyDelete:
				testenv.WaitFor(t, waitTimeout, "namespace "+ns+" deleted", func(ctx context.Context) error {
					return gone(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
				})
			case jetonv1alpha1.NamespacePolicyRetain:
				// jeton is done with the client: whatever it would do is done once it is idle.
				testenv.WaitFor(t, waitTimeout, "the operator idle", op.quiet(0))
				got := &corev1.Namespace{}
				if err := env.Client.Get(ctx, client.ObjectKey{Name: ns}, got); err != nil {
					t.Fatalf("namespace %s of a Retain client: %v", ns, err)
				}
				if got.DeletionTimestamp != nil {
					t.Errorf("namespace %s of a Retain client is being deleted", ns)
				}
				if err := gone(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: h.Name}}); err != nil {
					t.Errorf("the client is deleted but its injected Secret stays: %v", err)
				}
				if rev := rolledOut(t, d, ""); rev != 1 {
					t.Errorf("the workload of a retained namespace rolled out %d times", rev-1)
				}
			}
		})
	}
}

// gone returns nil once obj no longer exists.
func gone(ctx context.Context, obj client.Object) error {
	err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return err
	case obj.GetDeletionTimestamp() != nil:
		return fmt.Errorf("%s is being deleted (finalizers %v)", obj.GetName(), obj.GetFinalizers())
	default:
		return fmt.Errorf("%s still exists", obj.GetName())
	}
}
