package controllers

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/token"
)

func TestRestartDelay(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name             string
		first, last, now time.Duration // after t0
		want             time.Duration
	}{
		{"just requested: waits the quiet period", 0, 0, 0, restartQuiet},
		{"quiet period over", 0, 0, restartQuiet, 0},
		{"another rotation came: waits again from it", 0, 200 * time.Millisecond, 300 * time.Millisecond, 150 * time.Millisecond},
		{"rotations keep coming: due at the latest after the maximum wait", 0, restartMaxWait - 10*time.Millisecond, restartMaxWait - 50*time.Millisecond, 50 * time.Millisecond},
		{"past the maximum wait", 0, restartMaxWait, restartMaxWait + time.Millisecond, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := restartDelay(t0.Add(tt.now), t0.Add(tt.first), t0.Add(tt.last)); got != tt.want {
				t.Errorf("restartDelay = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRotationsTogetherRestartOnce: tokens of one client rotated together restart a
// workload using them all once, for all of them; none of its annotation's entries is lost.
func TestRotationsTogetherRestartOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pc := habClient(t, "together")
	ns := pc.TargetNamespace()
	const n = 4
	srcs := make([]*corev1.Secret, n)
	habs := make([]*jetonv1alpha1.Habilitation, n)
	var refs []corev1.EnvFromSource
	for i := range n {
		srcs[i] = tokenSecret(t, credNS, tokenData(validToken(t)))
		habs[i] = habFor(t, credNS, pc.Name, srcs[i].Name, nil)
		refs = append(refs, corev1.EnvFromSource{Prefix: fmt.Sprintf("T%d_", i), SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: habs[i].Name}}})
	}
	all := deployment(ns, "uses-all", corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app", EnvFrom: refs}}})
	if err := k8sClient.Create(ctx, all); err != nil {
		t.Fatal(err)
	}
	for _, h := range habs {
		waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	}

	newToks := make([]string, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, src := range srcs {
		newToks[i] = validToken(t)
		src.Data = tokenData(newToks[i])
		wg.Go(func() { errs[i] = k8sClient.Update(ctx, src) })
	}
	wg.Wait()
	want := ""
	for i, h := range habs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		want = injection.RestartedFor(want, h.Name, token.Fingerprint(newToks[i]))
	}
	for i, h := range habs {
		waitFor(t, habTimeout, h.Name+" records its rotation", func(ctx context.Context) error {
			if fp := getHab(t, h).Status.TokenFingerprint; fp != token.Fingerprint(newToks[i]) {
				return fmt.Errorf("fingerprint %s", fp)
			}
			return nil
		})
	}
	got := getObj(t, all)
	if a := podTemplate(got).Annotations[jetonv1alpha1.AnnotationRestartedFor]; a != want {
		t.Errorf("restarted-for %q, want %q", a, want)
	}
	if g := got.GetGeneration(); g != 2 {
		t.Errorf("%d tokens rotated together restarted the Deployment %d times, want once", n, g-1)
	}
}
