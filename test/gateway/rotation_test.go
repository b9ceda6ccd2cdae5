package gateway

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// TestTokenRotationThroughTheGateway rotates a client's API token while its calls are in
// flight: the calls in flight finish (with the old token), the gateway uses the new token
// within seconds, and nothing changes in the client namespace: same Secret, no restart.
func TestTokenRotationThroughTheGateway(t *testing.T) {
	w := newWorld(t, "gw-rotation", worldOptions{})
	a := w.addClient("gw-rotation-a", jetonv1alpha1.APIEntreprise)
	ctx := t.Context()
	app := testenv.Workload(a.namespace, "teleservice", a.hab.TargetSecretName())
	if err := env.Client.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	injected := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: a.namespace, Name: a.hab.TargetSecretName()}, injected); err != nil {
		t.Fatal(err)
	}

	// Calls in flight: the old token answers after 3 s.
	if err := w.emu.SetDelay(a.tokenID, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	inFlight := make([]int, 3)
	for i := range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := w.call(0, "GET", aePath(a, ""), a.credential, nil)
			inFlight[i] = resp.StatusCode
		}()
	}
	testenv.WaitFor(t, 10*time.Second, "the calls in flight upstream", func(context.Context) error {
		if n := w.emu.MaxInFlight(a.tokenID); n < 1 {
			return fmt.Errorf("%d in flight", n)
		}
		return nil
	})

	newTok, newID, err := w.emu.Mint(jetonv1alpha1.APIEntreprise, emulator.MintOptions{Scopes: []string{"unites_legales_etablissements_insee"}})
	if err != nil {
		t.Fatal(err)
	}
	w.remember(newTok)
	src := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: w.credNS, Name: a.hab.Spec.TokenSecretRef.Name}, src); err != nil {
		t.Fatal(err)
	}
	src.Data["token"] = []byte(newTok)
	rotated := time.Now()
	if err := env.Client.Update(ctx, src); err != nil {
		t.Fatal(err)
	}
	var took time.Duration
	testenv.WaitFor(t, 30*time.Second, "a call served with the new token", func(context.Context) error {
		resp, _ := w.call(0, "GET", aePath(a, ""), a.credential, nil)
		if resp.StatusCode != http.StatusOK || len(w.requestsSince(newID, 0)) == 0 {
			return fmt.Errorf("status %d, %d calls with the new token", resp.StatusCode, len(w.requestsSince(newID, 0)))
		}
		took = time.Since(rotated)
		return nil
	})
	t.Logf("the gateway used the new token %s after the Secret's update", took.Round(time.Millisecond))
	wg.Wait()
	for i, code := range inFlight {
		if code != http.StatusOK {
			t.Errorf("call %d in flight during the rotation: status %d, want 200", i, code)
		}
	}

	after := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(injected), after); err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != injected.ResourceVersion {
		t.Errorf("the injected Secret was rewritten by a token rotation in gateway mode")
	}
	d := &appsv1.Deployment{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(app), d); err != nil {
		t.Fatal(err)
	}
	if v, ok := d.Spec.Template.Annotations[jetonv1alpha1.AnnotationRestartedFor]; ok {
		t.Errorf("the workload was restarted (%s=%q) by a token rotation in gateway mode", jetonv1alpha1.AnnotationRestartedFor, v)
	}
}
