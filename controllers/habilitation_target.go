package controllers

import (
	"context"
	"fmt"
	"time"

	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/jeton-dev/jeton/internal/conditions"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/metrics"
)

// applyTarget writes desired with server-side apply, unless it is already there (no write
// in steady state) or a Secret of that name exists that is not this Habilitation's (clash:
// left untouched).
func (r *HabilitationReconciler) applyTarget(ctx context.Context, h *jetonv1alpha1.Habilitation, desired *corev1.Secret) (wrote, clash bool, err error) {
	key := client.ObjectKeyFromObject(desired)
	existing := &corev1.Secret{}
	err = r.Get(ctx, key, existing, client.UnsafeDisableDeepCopy)
	if err == nil && injection.ManagedBy(existing, h) && injection.UpToDate(existing, desired) {
		return false, false, nil
	}
	if apierrors.IsNotFound(err) {
		// The cache holds every Secret jeton manages, and no other Secret of a client
		// namespace: this one is absent, or someone else's. Create tells which in the one
		// request a new client needs anyway (no read first); it never touches a Secret that
		// exists. The Secret's later writes are server-side applies by the same field
		// manager: this first one is recorded as an update, which changes nothing in
		// practice, as jeton always applies the full Secret and recreates it when keys
		// must go (below).
		err = r.Create(ctx, desired.DeepCopy(), client.FieldOwner(jetonv1alpha1.ManagedByValue))
		if err == nil {
			log.FromContext(ctx).V(1).Info("injected token", "secret", key.String(), "fingerprint", desired.Annotations[jetonv1alpha1.AnnotationTokenFingerprint])
			return true, false, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return false, false, fmt.Errorf("creating Secret %s: %w", key, err)
		}
	}
	if err == nil || apierrors.IsAlreadyExists(err) {
		// The cache holds managed Secrets in digest form: read the Secret itself, to see
		// whose it is and what it holds.
		existing = &corev1.Secret{}
		err = r.APIReader.Get(ctx, key, existing)
		if apierrors.IsNotFound(err) {
			existing, err = nil, nil
		}
	}
	if err != nil {
		return false, false, fmt.Errorf("reading Secret %s: %w", key, err)
	}
	if existing != nil {
		if !injection.ManagedBy(existing, h) {
			return false, true, nil
		}
		if injection.UpToDate(existing, desired) {
			return false, false, nil
		}
		if existing.Type != desired.Type || injection.HasForeignKeys(existing.Data, desired.Data) {
			// Keys added by hand belong to their field manager and a Secret's type is
			// immutable: server-side apply can fix neither, so the Secret is recreated.
			if err := r.Delete(ctx, existing, client.Preconditions{UID: &existing.UID}); err != nil && !apierrors.IsNotFound(err) {
				return false, false, fmt.Errorf("recreating Secret %s: %w", key, err)
			}
		}
	}
	ac := corev1ac.Secret(desired.Name, desired.Namespace).
		WithLabels(desired.Labels).
		WithAnnotations(desired.Annotations).
		WithType(desired.Type).
		WithData(desired.Data)
	if err := r.Apply(ctx, ac, client.FieldOwner(jetonv1alpha1.ManagedByValue), client.ForceOwnership); err != nil {
		// API errors name the object and fields, never Secret values.
		return false, false, fmt.Errorf("applying Secret %s: %w", key, err)
	}
	log.FromContext(ctx).V(1).Info("injected token", "secret", key.String(), "fingerprint", desired.Annotations[jetonv1alpha1.AnnotationTokenFingerprint])
	return true, false, nil
}

// removeInjected deletes the Secrets injected for the Habilitation namespace/name, except
// keep. It reads the cache, which holds every managed Secret; a Secret created too recently
// to be there is caught when its watch event maps back here.
//
// Labels alone prove nothing (anyone who can create a Secret can copy them), so a labelled
// Secret is removed only when jeton wrote it: it carries a valid owner proof for its name
// and labels, or it is the Secret the Habilitation's status records. Never anything else.
func (r *HabilitationReconciler) removeInjected(ctx context.Context, namespace, name string, recorded *jetonv1alpha1.SecretReference, keep *types.NamespacedName) (int, error) {
	list := &corev1.SecretList{}
	if err := r.List(ctx, list, client.MatchingFields{IndexInjectedFor: namespace + "/" + name}); err != nil {
		return 0, fmt.Errorf("listing injected Secrets: %w", err)
	}
	removed := 0
	var keyErr error
	for i := range list.Items {
		s := &list.Items[i]
		if keep != nil && client.ObjectKeyFromObject(s) == *keep {
			continue
		}
		// The recorded Secret goes even when the key cannot be read (fail closed).
		if recorded == nil || recorded.Namespace != s.Namespace || recorded.Name != s.Name {
			key, err := r.ownerKey.get(ctx)
			if err != nil {
				keyErr = err
				continue
			}
			if !injection.WrittenByJeton(key, s) {
				continue
			}
		}
		if err := r.Delete(ctx, s, client.Preconditions{UID: &s.UID}); err != nil && !apierrors.IsNotFound(err) {
			return removed, fmt.Errorf("deleting injected Secret %s/%s: %w", s.Namespace, s.Name, err)
		}
		removed++
		log.FromContext(ctx).Info("removed injected Secret", "secret", s.Namespace+"/"+s.Name)
		r.eventFor(ctx, namespace, name, eventRemoved, fmt.Sprintf("Removed injected Secret %s/%s.", s.Namespace, s.Name))
	}
	return removed, keyErr
}

// eventFor records a Removed event on the Habilitation if it still exists.
func (r *HabilitationReconciler) eventFor(ctx context.Context, namespace, name, reason, msg string) {
	h := &jetonv1alpha1.Habilitation{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, h); err == nil {
		record(r.Recorder, h, pendingEvent{false, reason, "Remove", msg})
	}
}

// finalize removes the injected Secrets, then the finalizer.
func (r *HabilitationReconciler) finalize(ctx context.Context, h *jetonv1alpha1.Habilitation) error {
	if !controllerutil.ContainsFinalizer(h, jetonv1alpha1.FinalizerCleanup) {
		return nil
	}
	if _, err := r.removeInjected(ctx, h.Namespace, h.Name, h.Status.TargetSecret, nil); err != nil {
		return err
	}
	metrics.ForgetHabilitation(h.Namespace, h.Name)
	orig := h.DeepCopy()
	controllerutil.RemoveFinalizer(h, jetonv1alpha1.FinalizerCleanup)
	if err := r.Patch(ctx, h, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing finalizer: %w", err)
	}
	return nil
}

// repairWait says how long the repair of h's injected Secret (desired) must wait: 0 when
// this pass writes no repair (the Secret is up to date, or this is a first injection or a
// rotation, never delayed) or when the repair may be made now, and is then counted. A
// repair is a rewrite of the token already injected (fp, recorded as prevFP) while the
// Habilitation reports it injected: whoever can edit Secrets in the client namespace can
// delete it in a loop, and each repair costs the manager's shared API budget.
func (r *HabilitationReconciler) repairWait(ctx context.Context, h *jetonv1alpha1.Habilitation, desired *corev1.Secret, fp, prevFP string) time.Duration {
	if fp != prevFP || !injection.IsInjected(conditions.ReadyReason(h.Status.Conditions)) {
		return 0
	}
	existing := &corev1.Secret{}
	if err := r.Get(ctx, client.ObjectKeyFromObject(desired), existing, client.UnsafeDisableDeepCopy); err == nil &&
		injection.ManagedBy(existing, h) && injection.UpToDate(existing, desired) {
		return 0
	}
	return r.repairs.Allow(client.ObjectKeyFromObject(desired), r.now())
}
