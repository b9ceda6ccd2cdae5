package attack

import (
	"context"
	"fmt"
	"maps"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/testenv"
	"github.com/jeton-dev/jeton/internal/token"
)

// Finding 7. A tenant of a client namespace edits its injected Secret to fake a rotation
// (the fingerprint annotation, the token itself, or deletes it), hoping jeton restarts the
// workloads or records a rotation. jeton repairs the drift without a Rotated or Restarted
// event, without touching status.lastRotationTime or the workloads' pod template. A real
// rotation (the source Secret replaced) then restarts exactly once: the check can fail.
func TestForgedRotation(t *testing.T) {
	ctx := context.Background()
	sfx := suffix()
	clientR := "rot-" + sfx
	habName := "rot-" + sfx
	readyClient(t, clientR)
	tenant := tenantClient(t, clientR)
	dep := testenv.Workload(clientR, "teleservice", habName)
	if err := tenant.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	tok, _ := mint(t, jetonv1alpha1.APIEntreprise)
	h := injectedHabilitation(t, habName, clientR, tok, jetonv1alpha1.APIEntreprise)

	// The state a fake rotation must not change. The first injection restarted nothing.
	depBefore := &appsv1.Deployment{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(dep), depBefore); err != nil {
		t.Fatal(err)
	}
	if a, ok := depBefore.Spec.Template.Annotations[jetonv1alpha1.AnnotationRestartedFor]; ok {
		t.Errorf("the first injection restarted Deployment %s/%s (%s=%q)", clientR, dep.Name, jetonv1alpha1.AnnotationRestartedFor, a)
	}
	hBefore := &jetonv1alpha1.Habilitation{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(h), hBefore); err != nil {
		t.Fatal(err)
	}

	otherTok, _ := mint(t, jetonv1alpha1.APIEntreprise) // a token the tenant pretends was rotated in
	registerToken("a token the tenant of "+clientR+" holds", false, otherTok, clientR+"/"+habName)
	tokenKey, _, _ := injection.Keys(&jetonv1alpha1.Habilitation{})
	forgeries := []struct {
		name string
		edit func(s *corev1.Secret) error
	}{
		{"fingerprint-annotation", func(s *corev1.Secret) error {
			s.Annotations[jetonv1alpha1.AnnotationTokenFingerprint] = "0123456789abcdef"
			return tenant.Update(ctx, s)
		}},
		{"fingerprint-of-another-token", func(s *corev1.Secret) error {
			s.Annotations[jetonv1alpha1.AnnotationTokenFingerprint] = token.Fingerprint(otherTok)
			return tenant.Update(ctx, s)
		}},
		{"annotation-removed", func(s *corev1.Secret) error {
			delete(s.Annotations, jetonv1alpha1.AnnotationTokenFingerprint)
			return tenant.Update(ctx, s)
		}},
		{"token-and-fingerprint", func(s *corev1.Secret) error {
			s.Data[tokenKey] = []byte(otherTok)
			s.Annotations[jetonv1alpha1.AnnotationTokenFingerprint] = token.Fingerprint(otherTok)
			return tenant.Update(ctx, s)
		}},
		{"deleted", func(s *corev1.Secret) error {
			return tenant.Delete(ctx, s)
		}},
	}
	for _, f := range forgeries {
		t.Run(f.name, func(t *testing.T) {
			s := &corev1.Secret{}
			if err := tenant.Get(ctx, client.ObjectKey{Namespace: clientR, Name: habName}, s); err != nil {
				t.Fatal(err)
			}
			if err := f.edit(s); err != nil {
				t.Fatalf("the tenant's edit: %v", err)
			}
			// Positive sign: the drift is repaired, and the pass that repaired it is over.
			waitInjected(t, clientR, habName, tok)
			habilitationsQuiet(t)
			noRotation(t, h, hBefore, depBefore)
		})
	}

	// Control: a real rotation restarts the workload exactly once.
	newTok, _ := mint(t, jetonv1alpha1.APIEntreprise)
	registerToken("client "+clientR+"'s rotated token", false, newTok, credNS+"/"+h.Spec.TokenSecretRef.Name, clientR+"/"+habName)
	src := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: h.Spec.TokenSecretRef.Name}, Data: map[string][]byte{"token": []byte(newTok)}}
	if err := env.Client.Update(ctx, src); err != nil {
		t.Fatal(err)
	}
	newFP := token.Fingerprint(newTok)
	waitInjected(t, clientR, habName, newTok)
	want := injection.RestartedFor("", habName, newFP)
	depAfter := &appsv1.Deployment{}
	waitFor(t, waitTimeout, "the Deployment restarted for the new token", func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(dep), depAfter); err != nil {
			return err
		}
		if got := depAfter.Spec.Template.Annotations[jetonv1alpha1.AnnotationRestartedFor]; got != want {
			return fmt.Errorf("%s=%q, want %q", jetonv1alpha1.AnnotationRestartedFor, got, want)
		}
		return nil
	})
	waitFor(t, waitTimeout, "Rotated and Restarted events", func(ctx context.Context) error {
		n, err := countEvents(ctx, h)
		if err != nil {
			return err
		}
		if n["Rotated"] < 1 || n["Restarted"] < 1 {
			return fmt.Errorf("events %v", n)
		}
		return nil
	})
	habilitationsQuiet(t)
	hAfter := &jetonv1alpha1.Habilitation{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(h), hAfter); err != nil {
		t.Fatal(err)
	}
	if hAfter.Status.LastRotationTime == nil || (hBefore.Status.LastRotationTime != nil && !hAfter.Status.LastRotationTime.After(hBefore.Status.LastRotationTime.Time)) {
		t.Errorf("status.lastRotationTime %v after a real rotation, was %v", hAfter.Status.LastRotationTime, hBefore.Status.LastRotationTime)
	}
	if depAfter.Generation != depBefore.Generation+1 {
		t.Errorf("Deployment %s/%s: generation %d after one real rotation, was %d: restarted %d times", clientR, dep.Name, depAfter.Generation, depBefore.Generation, depAfter.Generation-depBefore.Generation)
	}
	// Counted once the real rotation's events are there: a forged rotation's events, older,
	// would be there too.
	n, err := countEvents(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if n["Rotated"] != 1 || n["Restarted"] != 1 {
		t.Errorf("Habilitation %s: %d Rotated and %d Restarted event(s) after 5 forged rotations and 1 real one, want 1 and 1", habName, n["Rotated"], n["Restarted"])
	}
	checkGlobal(t)
}

// noRotation checks that nothing a rotation does happened: no Rotated or Restarted event,
// status.lastRotationTime unchanged, the Deployment's pod template unchanged.
func noRotation(t *testing.T, h, hBefore *jetonv1alpha1.Habilitation, depBefore *appsv1.Deployment) {
	t.Helper()
	ctx := context.Background()
	n, err := countEvents(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if n["Rotated"] > 0 || n["Restarted"] > 0 {
		t.Errorf("a tenant's edit of the injected Secret caused %d Rotated and %d Restarted event(s)", n["Rotated"], n["Restarted"])
	}
	got := &jetonv1alpha1.Habilitation{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(h), got); err != nil {
		t.Fatal(err)
	}
	if !got.Status.LastRotationTime.Equal(hBefore.Status.LastRotationTime) {
		t.Errorf("status.lastRotationTime changed to %v (was %v) by a tenant's edit", got.Status.LastRotationTime, hBefore.Status.LastRotationTime)
	}
	if got.Status.TokenFingerprint != hBefore.Status.TokenFingerprint {
		t.Errorf("status.tokenFingerprint changed to %s (was %s) by a tenant's edit", got.Status.TokenFingerprint, hBefore.Status.TokenFingerprint)
	}
	if err := readyIs(got, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected, false); err != nil {
		t.Errorf("Habilitation %s: %s", h.Name, redact(err.Error()))
	}
	dep := &appsv1.Deployment{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(depBefore), dep); err != nil {
		t.Fatal(err)
	}
	if dep.Generation != depBefore.Generation || !maps.Equal(dep.Spec.Template.Annotations, depBefore.Spec.Template.Annotations) {
		t.Errorf("a tenant's edit of the injected Secret restarted Deployment %s/%s: generation %d (was %d), pod-template annotations %v (were %v)",
			dep.Namespace, dep.Name, dep.Generation, depBefore.Generation, dep.Spec.Template.Annotations, depBefore.Spec.Template.Annotations)
	}
}

// countEvents counts the events about Habilitation h by reason, a series counting as many
// events as it holds.
func countEvents(ctx context.Context, h *jetonv1alpha1.Habilitation) (map[string]int, error) {
	_, evs, err := eventReasons(ctx, "Habilitation", h.Namespace, h.Name)
	if err != nil {
		return nil, err
	}
	n := map[string]int{}
	for _, e := range evs {
		n[e.Reason] += seriesCount(e)
	}
	return n, nil
}

func seriesCount(e eventsv1.Event) int {
	if e.Series != nil && e.Series.Count > 1 {
		return int(e.Series.Count)
	}
	return 1
}

// habilitationsQuiet waits until no Habilitation reconcile is running: the pass that made
// the change just observed is over, with all its side effects.
func habilitationsQuiet(t *testing.T) {
	t.Helper()
	waitFor(t, waitTimeout, "no Habilitation reconcile in flight", func(context.Context) error {
		active, found, err := op.Metric("controller_runtime_active_workers", `controller="habilitation"`)
		if err != nil {
			return err
		}
		if !found || active != 0 {
			return fmt.Errorf("%v active workers", active)
		}
		return nil
	})
}
