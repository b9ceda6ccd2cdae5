package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/testenv"
	"github.com/jeton-dev/jeton/internal/token"
)

const (
	credentialsNamespace = "jeton-system"
	// setupWorkers is how many requests the benchmark itself has in flight when it builds
	// the cluster; its client is not rate limited (only the measured clients are).
	setupWorkers = 16
)

// cluster is a fresh control plane with a client for the benchmark's own setup.
type cluster struct {
	stopped bool
	env     *testenv.Env
	// setup is not rate limited: building the scenario is not what is measured.
	setup client.Client
}

func startCluster(ctx context.Context) (*cluster, error) {
	env, err := testenv.Start()
	if err != nil {
		return nil, err
	}
	c, err := client.New(unthrottled(env.Config), client.Options{Scheme: env.Scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: credentialsNamespace}}
	if err := c.Create(ctx, ns); err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("creating namespace %s: %w", credentialsNamespace, err)
	}
	return &cluster{env: env, setup: c}, nil
}

// stop stops the control plane; stopping twice is a no-op.
func (c *cluster) stop() {
	if c.stopped {
		return
	}
	c.stopped = true
	if err := c.env.Stop(); err != nil {
		logf("stopping the control plane: %v", err)
	}
}

func unthrottled(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 1e6, 1e6
	return cfg
}

// throttled is the rest config of a measured client: the operator's QPS and burst.
func throttled(cfg *rest.Config, qps float64, burst int) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = float32(qps), burst
	return cfg
}

// parallel runs f(0..n-1) on workers goroutines and returns the first error.
func parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}

// fleet is N public clients, each with one API Entreprise Habilitation whose token
// Secret sits in the credentials namespace.
type fleet struct {
	prefix  string
	clients []*jetonv1alpha1.PublicClient
	habs    []*jetonv1alpha1.Habilitation
	sources []*corev1.Secret
	// fingerprints of the current token of each Habilitation, by index.
	fingerprints []string
}

func (f *fleet) name(i int) string { return fmt.Sprintf("%s%05d", f.prefix, i) }

// index maps the name of each client of f to its index.
func (f *fleet) index() map[string]int {
	want := make(map[string]int, len(f.clients))
	for i := range f.clients {
		want[f.name(i)] = i
	}
	return want
}

// createFleet creates the token Secrets, PublicClients and Habilitations of clients
// [from, to) (tokens minted by emu), with the benchmark's unthrottled client.
func createFleet(ctx context.Context, c client.Client, emu *emulator.Server, f *fleet, from, to int) error {
	for i := len(f.clients); i < to; i++ {
		f.clients = append(f.clients, nil)
		f.habs = append(f.habs, nil)
		f.sources = append(f.sources, nil)
		f.fingerprints = append(f.fingerprints, "")
	}
	return parallel(ctx, to-from, setupWorkers, func(ctx context.Context, j int) error {
		i := from + j
		name := f.name(i)
		tok, _, err := emu.Mint(jetonv1alpha1.APIEntreprise, emulator.MintOptions{
			Scopes: []string{"unites_legales_etablissements_insee"}, Subject: "bench " + name})
		if err != nil {
			return err
		}
		src := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-ae-token", Namespace: credentialsNamespace},
			Data:       map[string][]byte{"token": []byte(tok)},
		}
		pc := &jetonv1alpha1.PublicClient{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       jetonv1alpha1.PublicClientSpec{DisplayName: "Bench client " + name, SIRET: siretFor(i)},
		}
		h := &jetonv1alpha1.Habilitation{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-ae", Namespace: credentialsNamespace},
			Spec: jetonv1alpha1.HabilitationSpec{
				ClientRef:      jetonv1alpha1.ClientReference{Name: name},
				API:            jetonv1alpha1.APIEntreprise,
				BaseURL:        "http://" + benchEmulatorHost,
				TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: src.Name, Key: "token"},
			},
		}
		for _, o := range []client.Object{src, pc, h} {
			if err := c.Create(ctx, o); err != nil {
				return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
			}
		}
		f.clients[i], f.habs[i], f.sources[i], f.fingerprints[i] = pc, h, src, token.Fingerprint(tok)
		return nil
	})
}

// createDeployments gives each client namespace a Deployment that reads the injected
// Secret through envFrom, so a rotation has a workload to restart.
func createDeployments(ctx context.Context, c client.Client, f *fleet) error {
	yes, no := true, false
	return parallel(ctx, len(f.habs), setupWorkers, func(ctx context.Context, i int) error {
		h := f.habs[i]
		sel := map[string]string{"app": "web"}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: f.clients[i].TargetNamespace()},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: sel},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: sel},
					Spec: corev1.PodSpec{
						// Pod Security "restricted" (the client namespace's level), so restart
						// patches draw no admission warnings.
						SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: &yes,
							SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
						Containers: []corev1.Container{{
							Name: "web", Image: "registry.invalid/web:1",
							SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: &no,
								Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
							EnvFrom: []corev1.EnvFromSource{{Prefix: "API_ENTREPRISE_",
								SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: h.TargetSecretName()}}}},
						}}},
				},
			},
		}
		return c.Create(ctx, d)
	})
}

// createUnrelatedSecrets creates m Secrets jeton has nothing to do with, spread over ten
// namespaces, each with 2 KiB of data (a small certificate or a config file).
func createUnrelatedSecrets(ctx context.Context, c client.Client, m int) error {
	const namespaces = 10
	for n := range namespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("unrelated-%d", n)}}
		if err := client.IgnoreAlreadyExists(c.Create(ctx, ns)); err != nil {
			return err
		}
	}
	payload := make([]byte, 2048)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	return parallel(ctx, m, setupWorkers, func(ctx context.Context, i int) error {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("unrelated-%06d", i), Namespace: fmt.Sprintf("unrelated-%d", i%namespaces),
				Labels: map[string]string{"app.kubernetes.io/name": "something-else"}},
			Data: map[string][]byte{"tls.crt": payload},
		}
		return c.Create(ctx, s)
	})
}

func deleteUnrelatedSecrets(ctx context.Context, c client.Client) error {
	return parallel(ctx, 10, 10, func(ctx context.Context, n int) error {
		return c.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(fmt.Sprintf("unrelated-%d", n)))
	})
}

// watcher is the benchmark's own view of the cluster: an informer cache of what it
// checks, so waiting costs the API server one watch per kind instead of repeated lists.
type watcher struct {
	cache cache.Cache
}

func startWatcher(ctx context.Context, cfg *rest.Config, env *testenv.Env) (*watcher, error) {
	managed := labels.SelectorFromSet(labels.Set{jetonv1alpha1.LabelManagedBy: jetonv1alpha1.ManagedByValue})
	c, err := cache.New(unthrottled(cfg), cache.Options{
		Scheme:           env.Scheme,
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject:         map[client.Object]cache.ByObject{&corev1.Secret{}: {Label: managed}},
	})
	if err != nil {
		return nil, err
	}
	// Informers start on first use; ask for them all before the cache starts.
	for _, o := range []client.Object{&jetonv1alpha1.PublicClient{}, &jetonv1alpha1.Habilitation{}, &corev1.Secret{}, &appsv1.Deployment{}} {
		if _, err := c.GetInformer(ctx, o); err != nil {
			return nil, err
		}
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("the benchmark's informers did not sync")
	}
	return &watcher{cache: c}, nil
}

func isReady(conds []metav1.Condition, gen int64) bool {
	c := meta.FindStatusCondition(conds, jetonv1alpha1.ConditionReady)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == gen
}

// converged counts, in f, the Ready PublicClients, the Ready Habilitations that report
// the current token, and the injected Secrets holding it. want indexes f's clients by
// name (fleet.index).
func (w *watcher) converged(ctx context.Context, f *fleet, want map[string]int) (clients, habs, secrets int, err error) {
	var pcs jetonv1alpha1.PublicClientList
	if err := w.cache.List(ctx, &pcs, client.UnsafeDisableDeepCopy); err != nil {
		return 0, 0, 0, err
	}
	for _, pc := range pcs.Items {
		if _, ok := want[pc.Name]; ok && isReady(pc.Status.Conditions, pc.Generation) && pc.Status.ObservedGeneration == pc.Generation {
			clients++
		}
	}
	var hl jetonv1alpha1.HabilitationList
	if err := w.cache.List(ctx, &hl, client.InNamespace(credentialsNamespace), client.UnsafeDisableDeepCopy); err != nil {
		return 0, 0, 0, err
	}
	for _, h := range hl.Items {
		i, ok := want[h.Spec.ClientRef.Name]
		if ok && isReady(h.Status.Conditions, h.Generation) && h.Status.TargetSecret != nil && h.Status.TokenFingerprint == f.fingerprints[i] {
			habs++
		}
	}
	var sl corev1.SecretList
	if err := w.cache.List(ctx, &sl, client.UnsafeDisableDeepCopy); err != nil {
		return 0, 0, 0, err
	}
	for _, s := range sl.Items {
		i, ok := want[s.Labels[jetonv1alpha1.LabelClient]]
		if ok && s.Annotations[jetonv1alpha1.AnnotationTokenFingerprint] == f.fingerprints[i] && len(s.Data) == 3 {
			secrets++
		}
	}
	return clients, habs, secrets, nil
}

// waitConverged waits until every client, Habilitation and injected Secret of f is there
// and Ready, and returns when that was first seen.
//
// Each look walks every object of the fleet, in this process, on the cores the API server
// and the operator need: it looks every 50 ms per 1000 clients (500 ms at N=10,000), so
// that watching costs the same share of the machine at any N. Looking every 50 ms at
// N=10,000, the benchmark process took 44% of a core during convergence (top), a cost the
// floor, which times its own calls, does not pay. The convergence time is then known to within one interval.
func (w *watcher) waitConverged(ctx context.Context, f *fleet, timeout time.Duration) (time.Time, error) {
	n := len(f.clients)
	want := f.index()
	interval := time.Duration(max(1, n/1000)) * 50 * time.Millisecond
	var c, h, s int
	start, lastLog := time.Now(), time.Now()
	err := poll(ctx, timeout, interval, fmt.Sprintf("%d clients to converge", n), func() (bool, error) {
		var err error
		c, h, s, err = w.converged(ctx, f, want)
		// Progress, so a run shows which kind leads and which follows.
		if time.Since(lastLog) >= 30*time.Second {
			lastLog = time.Now()
			logf("  after %s: Ready clients %d, Ready Habilitations %d, injected Secrets %d", time.Since(start).Round(time.Second), c, h, s)
		}
		return c == n && h == n && s == n, err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("%w (Ready clients %d/%d, Ready Habilitations %d/%d, injected Secrets %d/%d)", err, c, n, h, n, s, n)
	}
	return time.Now(), nil
}
