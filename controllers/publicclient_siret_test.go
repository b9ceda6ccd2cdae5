package controllers

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// The CRD rejects a bad SIRET at admission, so the reconciler's own check (for CRDs
// installed without the CEL rule) is tested against a fake API server that has no CEL.
func TestPublicClientInvalidSIRETIsStalled(t *testing.T) {
	pc := &jetonv1alpha1.PublicClient{
		ObjectMeta: metav1.ObjectMeta{Name: "typo", Generation: 1},
		Spec:       jetonv1alpha1.PublicClientSpec{DisplayName: "Typo", SIRET: "73282932000075"},
	}
	var namespaceWrites int
	c := fake.NewClientBuilder().
		WithScheme(testenv.NewScheme()).
		WithObjects(pc).
		WithStatusSubresource(pc).
		WithIndex(&jetonv1alpha1.Habilitation{}, IndexHabilitationClient, func(o client.Object) []string {
			return []string{o.(*jetonv1alpha1.Habilitation).Spec.ClientRef.Name}
		}).
		WithInterceptorFuncs(interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.CreateOption) error {
				namespaceWrites++
				return c.Create(ctx, o, opts...)
			},
			Apply: func(ctx context.Context, c client.WithWatch, o runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
				namespaceWrites++
				return c.Apply(ctx, o, opts...)
			},
		}).
		Build()
	rec := events.NewFakeRecorder(10)
	r := &PublicClientReconciler{Client: c, APIReader: c, Recorder: rec, Options: Options{CredentialsNamespaces: []string{credNS}}}

	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Name: "typo"}}); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	got := &jetonv1alpha1.PublicClient{}
	if err := c.Get(context.Background(), client.ObjectKey{Name: "typo"}, got); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{jetonv1alpha1.ConditionReady, jetonv1alpha1.ConditionStalled} {
		cond := meta.FindStatusCondition(got.Status.Conditions, typ)
		if cond == nil || cond.Reason != jetonv1alpha1.ReasonInvalidSIRET {
			t.Fatalf("%s = %+v, want reason InvalidSIRET", typ, cond)
		}
		if !strings.Contains(cond.Message, "spec.siret") {
			t.Errorf("%s message %q does not say what to fix", typ, cond.Message)
		}
	}
	if meta.IsStatusConditionTrue(got.Status.Conditions, jetonv1alpha1.ConditionReady) {
		t.Errorf("Ready is True with an invalid SIRET")
	}
	if namespaceWrites != 0 {
		t.Errorf("%d namespace or policy writes for a client with an invalid SIRET, want none", namespaceWrites)
	}
	select {
	case e := <-rec.Events:
		if !strings.Contains(e, "Warning") || !strings.Contains(e, jetonv1alpha1.ReasonInvalidSIRET) {
			t.Errorf("event %q, want a Warning InvalidSIRET", e)
		}
	default:
		t.Errorf("no event recorded")
	}
}
