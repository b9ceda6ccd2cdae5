package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// typoClient is a PublicClient whose SIRET fails the checksum.
func typoClient() *jetonv1alpha1.PublicClient {
	return &jetonv1alpha1.PublicClient{
		ObjectMeta: metav1.ObjectMeta{Name: "typo", Generation: 1},
		Spec:       jetonv1alpha1.PublicClientSpec{DisplayName: "Typo", SIRET: "73282932000075"},
	}
}

// fakePublicClientReconciler is a reconciler of pc against a fake API server (which has no
// CEL), whose calls go through funcs.
func fakePublicClientReconciler(pc *jetonv1alpha1.PublicClient, funcs interceptor.Funcs) (*PublicClientReconciler, client.Client, *events.FakeRecorder) {
	c := fake.NewClientBuilder().
		WithScheme(testenv.NewScheme()).
		WithObjects(pc).
		WithStatusSubresource(pc).
		WithIndex(&jetonv1alpha1.Habilitation{}, IndexHabilitationClient, func(o client.Object) []string {
			return []string{o.(*jetonv1alpha1.Habilitation).Spec.ClientRef.Name}
		}).
		WithInterceptorFuncs(funcs).
		Build()
	rec := events.NewFakeRecorder(10)
	return &PublicClientReconciler{Client: c, APIReader: c, Recorder: rec, Options: Options{CredentialsNamespaces: []string{credNS}}}, c, rec
}

// The CRD rejects a bad SIRET at admission, so the reconciler's own check (for CRDs
// installed without the CEL rule) is tested against a fake API server that has no CEL.
func TestPublicClientInvalidSIRETIsStalled(t *testing.T) {
	var namespaceWrites int
	r, c, rec := fakePublicClientReconciler(typoClient(), interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.CreateOption) error {
			namespaceWrites++
			return c.Create(ctx, o, opts...)
		},
		Apply: func(ctx context.Context, c client.WithWatch, o runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			namespaceWrites++
			return c.Apply(ctx, o, opts...)
		},
	})

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

// A pass whose status write conflicts (it read a stale copy) tells nothing: the pass that
// writes the transition tells it, once.
func TestPublicClientTellsEventsOnlyOnceStatusIsWritten(t *testing.T) {
	conflicts := 1
	r, _, rec := fakePublicClientReconciler(typoClient(), interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			if conflicts > 0 {
				conflicts--
				return apierrors.NewConflict(schema.GroupResource{Group: "jeton.dev", Resource: "publicclients"}, o.GetName(), nil)
			}
			return c.Status().Patch(ctx, o, p, opts...)
		},
	})
	req := ctrl.Request{NamespacedName: client.ObjectKey{Name: "typo"}}

	res, err := r.Reconcile(context.Background(), req)
	if err != nil || res.RequeueAfter != time.Second {
		t.Fatalf("Reconcile with a conflicting status write = %+v, %v; want a requeue after 1s and no error", res, err)
	}
	if len(rec.Events) != 0 {
		t.Fatalf("an event was told although status was not written: %q", <-rec.Events)
	}
	for range 2 {
		if _, err := r.Reconcile(context.Background(), req); err != nil {
			t.Fatalf("Reconcile: %v", err)
		}
	}
	if n := len(rec.Events); n != 1 {
		t.Fatalf("%d events told over the passes, want the one InvalidSIRET", n)
	}
}
