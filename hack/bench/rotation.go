package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/token"
)

// arrivals tells waiters when an object reached the state they wait for. Waiters register
// before the change they cause, so no event can be missed.
type arrivals struct {
	mu      sync.Mutex
	waiting map[string]arrival // by namespace/name
}

type arrival struct {
	fingerprint string
	done        chan time.Time
}

func newArrivals() *arrivals { return &arrivals{waiting: map[string]arrival{}} }

func (a *arrivals) expect(key, fingerprint string) <-chan time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := make(chan time.Time, 1)
	a.waiting[key] = arrival{fingerprint, ch}
	return ch
}

// seen is called from informer handlers with what an object now says about a fingerprint.
func (a *arrivals) seen(key string, has func(fp string) bool) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if w, ok := a.waiting[key]; ok && has(w.fingerprint) {
		w.done <- now
		delete(a.waiting, key)
	}
}

func handler(f func(obj any)) toolscache.ResourceEventHandlerFuncs {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { f(obj) },
		UpdateFunc: func(_, obj any) { f(obj) },
	}
}

// rotationResult holds one latency per rotation.
type rotationResult struct {
	toSecret, toWorkload []time.Duration
}

// runRotations regenerates the token of k clients of f one at a time and measures, from
// the source Secret update, when the injected Secret holds the new token and when the
// client's Deployment template carries the restart annotation with the new fingerprint.
func runRotations(ctx context.Context, c *cluster, w *watcher, emu *emulator.Server, f *fleet, k int) (rotationResult, error) {
	secrets, workloads := newArrivals(), newArrivals()
	si, err := w.cache.GetInformer(ctx, &corev1.Secret{})
	if err != nil {
		return rotationResult{}, err
	}
	sreg, err := si.AddEventHandler(handler(func(obj any) {
		if s, ok := obj.(*corev1.Secret); ok {
			secrets.seen(s.Namespace+"/"+s.Name, func(fp string) bool { return s.Annotations[jetonv1alpha1.AnnotationTokenFingerprint] == fp })
		}
	}))
	if err != nil {
		return rotationResult{}, err
	}
	defer func() { _ = si.RemoveEventHandler(sreg) }()
	di, err := w.cache.GetInformer(ctx, &appsv1.Deployment{})
	if err != nil {
		return rotationResult{}, err
	}
	dreg, err := di.AddEventHandler(handler(func(obj any) {
		if d, ok := obj.(*appsv1.Deployment); ok {
			workloads.seen(d.Namespace+"/"+d.Name, func(fp string) bool {
				return strings.Contains(d.Spec.Template.Annotations[jetonv1alpha1.AnnotationRestartedFor], "="+fp)
			})
		}
	}))
	if err != nil {
		return rotationResult{}, err
	}
	defer func() { _ = di.RemoveEventHandler(dreg) }()

	var res rotationResult
	n := len(f.clients)
	for r := range k {
		i := (r * 7919) % n // spread over the fleet (7919 is prime, so no repeats before n)
		tok, _, err := emu.Mint(jetonv1alpha1.APIEntreprise, emulator.MintOptions{
			Scopes: []string{"unites_legales_etablissements_insee"}, Subject: "bench rotation"})
		if err != nil {
			return res, err
		}
		fp := token.Fingerprint(tok)
		ns := f.clients[i].TargetNamespace()
		secretDone := secrets.expect(ns+"/"+f.habs[i].TargetSecretName(), fp)
		workloadDone := workloads.expect(ns+"/web", fp)

		src := f.sources[i].DeepCopy()
		src.Data = map[string][]byte{"token": []byte(tok)}
		src.ResourceVersion = "" // unconditional: the benchmark owns this Secret
		start := time.Now()
		if err := c.setup.Update(ctx, src); err != nil {
			return res, fmt.Errorf("rotating the token of %s: %w", src.Name, err)
		}
		f.fingerprints[i] = fp
		deadline := time.After(30 * time.Second)
		for got := 0; got < 2; got++ {
			select {
			case t := <-secretDone:
				res.toSecret = append(res.toSecret, t.Sub(start))
				secretDone = nil
			case t := <-workloadDone:
				res.toWorkload = append(res.toWorkload, t.Sub(start))
				workloadDone = nil
			case <-deadline:
				return res, fmt.Errorf("rotation %d (client %s): the injected Secret or the Deployment was not updated within 30s", r, f.name(i))
			case <-ctx.Done():
				return res, ctx.Err()
			}
		}
	}
	return res, nil
}
