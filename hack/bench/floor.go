package main

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/isolation"
	"github.com/jeton-dev/jeton/internal/publicapi"
	"github.com/jeton-dev/jeton/internal/token"
)

// floorWritesPerClient is what runFloor writes for one client: the writes the operator
// cannot avoid (see runFloor).
const floorWritesPerClient = 9

// runFloor does, with a plain client throttled like the operator and as many workers as
// the operator has reconcile workers, the writes that bring one client from applied to
// converged, for every client of f:
//
//	PublicClient finalizer, namespace, NetworkPolicy, NamespaceCreated event, PublicClient
//	status, Habilitation finalizer, injected Secret, Habilitation status, Injected event.
//
// It reads nothing from the API server (an operator reads from its cache), so it is the
// floor: no controller doing this work can be faster with the same QPS.
func runFloor(ctx context.Context, cfg *rest.Config, c *cluster, f *fleet, qps float64, burst, workers int) (time.Duration, error) {
	fc, err := client.New(throttled(cfg, qps, burst), client.Options{Scheme: c.env.Scheme})
	if err != nil {
		return 0, err
	}
	const owner = client.FieldOwner(jetonv1alpha1.ManagedByValue)
	start := time.Now()
	err = parallel(ctx, len(f.clients), workers, func(ctx context.Context, i int) error {
		pc, h := f.clients[i].DeepCopy(), f.habs[i].DeepCopy()
		target := pc.TargetNamespace()

		before := pc.DeepCopy()
		controllerutil.AddFinalizer(pc, jetonv1alpha1.FinalizerCleanup)
		if err := fc.Patch(ctx, pc, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("floor: PublicClient finalizer: %w", err)
		}
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: target, Labels: isolation.NamespaceLabels(pc.Name, pc.Spec.Isolation.PodSecurity)}}
		if err := fc.Create(ctx, ns, owner); err != nil {
			return fmt.Errorf("floor: namespace: %w", err)
		}
		if err := fc.Apply(ctx, isolation.NetworkPolicy(target, pc.Name), owner, client.ForceOwnership); err != nil {
			return fmt.Errorf("floor: NetworkPolicy: %w", err)
		}
		if err := fc.Create(ctx, event(pc, "PublicClient", "NamespaceCreated", "Created namespace "+target)); err != nil {
			return fmt.Errorf("floor: event: %w", err)
		}
		base := pc.DeepCopy()
		pc.Status.Namespace, pc.Status.Habilitations, pc.Status.ObservedGeneration = target, 1, pc.Generation
		conditions.MarkReady(&pc.Status.Conditions, pc.Generation, jetonv1alpha1.ReasonReady, "namespace "+target+" is ready: Pod Security restricted, NetworkPolicy")
		if err := fc.Status().Patch(ctx, pc, client.MergeFrom(base)); err != nil {
			return fmt.Errorf("floor: PublicClient status: %w", err)
		}

		before2 := h.DeepCopy()
		controllerutil.AddFinalizer(h, jetonv1alpha1.FinalizerCleanup)
		if err := fc.Patch(ctx, h, client.MergeFrom(before2)); err != nil {
			return fmt.Errorf("floor: Habilitation finalizer: %w", err)
		}
		tok := string(f.sources[i].Data["token"])
		fp := token.Fingerprint(tok)
		info, err := token.Decode(h.Spec.API, tok)
		if err != nil {
			return err
		}
		desired := injection.DesiredSecret(h, pc, tok, fp, publicapi.BaseURL(h.Spec.API, h.Spec.Environment, h.Spec.BaseURL))
		ac := corev1ac.Secret(desired.Name, desired.Namespace).WithLabels(desired.Labels).
			WithAnnotations(desired.Annotations).WithType(desired.Type).WithData(desired.Data)
		if err := fc.Apply(ctx, ac, owner, client.ForceOwnership); err != nil {
			return fmt.Errorf("floor: injected Secret: %w", err)
		}
		base2 := h.DeepCopy()
		st := &h.Status
		st.TokenFingerprint, st.TokenID, st.Scopes = fp, info.ID, info.Scopes
		if info.IssuedAt != nil {
			st.IssuedAt = &metav1.Time{Time: info.IssuedAt.Truncate(time.Second)}
		}
		if info.ExpiresAt != nil {
			st.ExpiresAt = &metav1.Time{Time: info.ExpiresAt.Truncate(time.Second)}
		}
		st.TargetSecret = &jetonv1alpha1.SecretReference{Namespace: target, Name: desired.Name}
		st.ObservedGeneration = h.Generation
		conditions.MarkReady(&st.Conditions, h.Generation, jetonv1alpha1.ReasonInjected, "token injected into Secret "+target+"/"+desired.Name)
		if err := fc.Status().Patch(ctx, h, client.MergeFrom(base2)); err != nil {
			return fmt.Errorf("floor: Habilitation status: %w", err)
		}
		if err := fc.Create(ctx, event(h, "Habilitation", jetonv1alpha1.ReasonInjected, "Token injected into Secret "+target+"/"+desired.Name)); err != nil {
			return fmt.Errorf("floor: event: %w", err)
		}
		return nil
	})
	return time.Since(start), err
}

// event is an events.k8s.io/v1 Event about obj, as the operator's recorder writes them.
func event(obj client.Object, kind, reason, note string) *eventsv1.Event {
	ns := obj.GetNamespace()
	if ns == "" {
		ns = metav1.NamespaceDefault // events about cluster-scoped objects
	}
	return &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{GenerateName: obj.GetName() + "-", Namespace: ns},
		EventTime:           metav1.NowMicro(),
		ReportingController: "jeton",
		ReportingInstance:   "jeton-bench-floor",
		Action:              "Reconcile",
		Reason:              reason,
		Note:                note,
		Type:                corev1.EventTypeNormal,
		Regarding: corev1.ObjectReference{Kind: kind, APIVersion: jetonv1alpha1.GroupVersion.String(),
			Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: obj.GetUID()},
	}
}
