package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/testenv"
	"github.com/jeton-dev/jeton/internal/token"
)

// The restart storm: every token of N clients rotated at once, on a cluster that rolls
// Deployments out (testenv.WithCluster). Its own flags, so that main.go only registers it.
var (
	stormClients = flag.Int("storm-clients", 0, "storm scenario: public clients, each with -storm-tokens Habilitations, a Deployment using all of them and one using none (default: N/10)")
	stormTokens  = flag.Int("storm-tokens", 5, "storm scenario: Habilitations (tokens) per client, all rotated at once")
)

// stormResult is one storm: rollouts per workload after every token was rotated at once.
type stormResult struct {
	clients, tokens int
	// rollouts is, per Deployment using the rotated tokens, how many times it rolled out.
	rollouts []int
	// bystanderRollouts is the total of the Deployments that use none of them (target 0).
	bystanderRollouts int
	// complete counts the using Deployments whose restart annotation names every new token
	// they use (target: all of them).
	complete int
	// toAnnotated: from the first rotation to the last change of a using Deployment's pod
	// template; toRolled: to the last of them rolled out (new pods Running, old ones gone).
	toAnnotated, toRolled time.Duration
}

// stormWorkloads are the two Deployments of each client namespace.
const (
	stormUser      = "web"   // reads every injected Secret of the client
	stormBystander = "batch" // reads a Secret of its own
)

// runStorm creates N clients with T tokens each and their workloads on a fuller cluster,
// lets everything converge and roll out, then rotates the N×T tokens at once and measures.
func runStorm(ctx context.Context, cfg benchConfig, opArgs operatorArgs) (res stormResult, err error) {
	n, t := *stormClients, *stormTokens
	if n == 0 {
		n = max(1, cfg.n/10)
	}
	if n < 1 || t < 1 {
		return res, fmt.Errorf("need -storm-clients >= 1 and -storm-tokens >= 1")
	}
	res.clients, res.tokens = n, t
	logf("storm: starting a cluster (kube-controller-manager, kube-scheduler, KWOK), %d clients × %d tokens", n, t)
	// Each node takes 1000 pods: two Deployments per client, and a surge pod each.
	env, err := testenv.Start(testenv.WithCluster(), testenv.WithNodes(max(2, (4*n+999)/1000)))
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := env.Stop(); serr != nil {
			logf("storm: stopping the cluster: %v", serr)
		}
	}()
	setup, err := client.New(unthrottled(env.Config), client.Options{Scheme: env.Scheme})
	if err != nil {
		return res, err
	}
	if err := setup.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: credentialsNamespace}}); err != nil {
		return res, err
	}
	// Stopped before the cluster: open watches would hold kube-apiserver's shutdown.
	wctx, stopWatcher := context.WithCancel(ctx)
	defer stopWatcher()
	w, err := newStormWatcher(wctx, env)
	if err != nil {
		return res, err
	}

	emu := emulator.New()
	mint := func() (string, error) {
		tok, _, err := emu.Mint(jetonv1alpha1.APIEntreprise, emulator.MintOptions{Scopes: []string{"unites_legales_etablissements_insee"}})
		return tok, err
	}
	clientName := func(i int) string { return fmt.Sprintf("storm-%04d", i) }
	habName := func(i, j int) string { return fmt.Sprintf("storm-%04d-%02d", i, j) }
	if err := parallel(ctx, n, setupWorkers, func(ctx context.Context, i int) error {
		objs := []client.Object{&jetonv1alpha1.PublicClient{
			ObjectMeta: metav1.ObjectMeta{Name: clientName(i)},
			Spec:       jetonv1alpha1.PublicClientSpec{DisplayName: "Storm client " + clientName(i), SIRET: siretFor(i)},
		}}
		for j := range t {
			tok, err := mint()
			if err != nil {
				return err
			}
			src := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: credentialsNamespace, Name: habName(i, j) + "-token"},
				Data: map[string][]byte{"token": []byte(tok)}}
			objs = append(objs, src, &jetonv1alpha1.Habilitation{
				ObjectMeta: metav1.ObjectMeta{Namespace: credentialsNamespace, Name: habName(i, j)},
				Spec: jetonv1alpha1.HabilitationSpec{
					ClientRef:      jetonv1alpha1.ClientReference{Name: clientName(i)},
					API:            jetonv1alpha1.APIEntreprise,
					BaseURL:        "http://" + benchEmulatorHost,
					TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: src.Name, Key: "token"},
				},
			})
		}
		for _, o := range objs {
			if err := setup.Create(ctx, o); err != nil {
				return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
			}
		}
		return nil
	}); err != nil {
		return res, err
	}

	opArgs.kubeconfig = env.Kubeconfig
	op, err := startOperator(ctx, opArgs, "storm")
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := op.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	if err := poll(ctx, 15*time.Minute, 250*time.Millisecond, "every token injected", func() (bool, error) {
		got, err := w.injected(ctx)
		return got == n*t, err
	}); err != nil {
		return res, err
	}

	logf("storm: %d tokens injected; creating %d Deployments and waiting for their pods", n*t, 2*n)
	if err := parallel(ctx, n, setupWorkers, func(ctx context.Context, i int) error {
		ns := clientName(i)
		secrets := make([]string, t)
		for j := range secrets {
			secrets[j] = habName(i, j)
		}
		own := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "smtp"}, StringData: map[string]string{"PASSWORD": "x"}}
		for _, o := range []client.Object{own, stormDeployment(ns, stormUser, secrets), stormDeployment(ns, stormBystander, []string{own.Name})} {
			if err := setup.Create(ctx, o); err != nil {
				return fmt.Errorf("creating %T %s/%s: %w", o, ns, o.GetName(), err)
			}
		}
		return nil
	}); err != nil {
		return res, err
	}
	initial := map[string]string{} // namespace/name → restarted-for jeton's first injection left (none)
	for i := range n {
		initial[clientName(i)+"/"+stormUser], initial[clientName(i)+"/"+stormBystander] = "", ""
	}
	if _, err := w.track(ctx, op, initial, nil, 15*time.Minute); err != nil {
		return res, err
	}
	if _, err := op.waitIdle(ctx, idleOptions{quiet: 3 * time.Second, timeout: 5 * time.Minute}); err != nil {
		return res, err
	}

	// The final state of each using Deployment's restart annotation, once every token rotated.
	newToks := make([][]string, n)
	newFPs := map[string]bool{}
	final := map[string]string{}
	for i := range n {
		newToks[i] = make([]string, t)
		a := ""
		for j := range t {
			if newToks[i][j], err = mint(); err != nil {
				return res, err
			}
			fp := token.Fingerprint(newToks[i][j])
			newFPs[fp] = true
			a = injection.RestartedFor(a, habName(i, j), fp)
		}
		final[clientName(i)+"/"+stormUser] = a
	}
	logf("storm: rotating the %d tokens at once", n*t)
	// As many writers as the API server takes at once: a vendor's script, a secret manager.
	start := time.Now()
	if err := parallel(ctx, n*t, 64, func(ctx context.Context, k int) error {
		i, j := k/t, k%t
		src := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: credentialsNamespace, Name: habName(i, j) + "-token"},
			Data: map[string][]byte{"token": []byte(newToks[i][j])}}
		return setup.Update(ctx, src)
	}); err != nil {
		return res, err
	}
	states, err := w.track(ctx, op, initial, newFPs, 15*time.Minute)
	if err != nil {
		return res, err
	}
	for key, st := range states {
		want, using := final[key]
		if !using {
			res.bystanderRollouts += st.revision - 1
			continue
		}
		res.rollouts = append(res.rollouts, st.revision-1)
		if st.annotation == want {
			res.complete++
		}
		if st.revision > 1 {
			res.toAnnotated = max(res.toAnnotated, st.changed.Sub(start))
			res.toRolled = max(res.toRolled, st.rolledOut.Sub(start))
		}
	}
	slices.Sort(res.rollouts)
	logf("storm: rollouts per workload min %d, median %d, max %d; bystanders %d; last template change after %s, all rolled out after %s",
		res.rollouts[0], res.rollouts[len(res.rollouts)/2], res.rollouts[len(res.rollouts)-1], res.bystanderRollouts,
		fmtSeconds(res.toAnnotated.Seconds()), fmtSeconds(res.toRolled.Seconds()))
	return res, nil
}

// stormDeployment is a one-replica Deployment reading every one of secrets through envFrom,
// compliant with the client namespace's restricted Pod Security level.
func stormDeployment(ns, name string, secrets []string) *appsv1.Deployment {
	d := testenv.Workload(ns, name, secrets[0])
	c := &d.Spec.Template.Spec.Containers[0]
	c.EnvFrom = nil
	for k, s := range secrets {
		c.EnvFrom = append(c.EnvFrom, corev1.EnvFromSource{Prefix: fmt.Sprintf("API%d_", k),
			SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: s}}})
	}
	return d
}

// stormWatcher is the benchmark's informer cache of what the storm checks.
type stormWatcher struct{ cache cache.Cache }

func newStormWatcher(ctx context.Context, env *testenv.Env) (*stormWatcher, error) {
	managed := labels.SelectorFromSet(labels.Set{jetonv1alpha1.LabelManagedBy: jetonv1alpha1.ManagedByValue})
	c, err := cache.New(unthrottled(env.Config), cache.Options{
		Scheme:           env.Scheme,
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject:         map[client.Object]cache.ByObject{&corev1.Secret{}: {Label: managed}},
	})
	if err != nil {
		return nil, err
	}
	for _, o := range []client.Object{&corev1.Secret{}, &jetonv1alpha1.Habilitation{}, &appsv1.Deployment{}, &appsv1.ReplicaSet{}, &corev1.Pod{}} {
		if _, err := c.GetInformer(ctx, o); err != nil {
			return nil, err
		}
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("the storm's informers did not sync")
	}
	return &stormWatcher{cache: c}, nil
}

// injected counts the Secrets jeton injected.
func (w *stormWatcher) injected(ctx context.Context) (int, error) {
	var l corev1.SecretList
	err := w.cache.List(ctx, &l, client.UnsafeDisableDeepCopy)
	return len(l.Items), err
}

// rollState is what track saw of one Deployment: its last revision, when that revision
// appeared (its pod template last changed), when its rollout completed, and the restart
// annotation it ended with.
type rollState struct {
	revision           int
	changed, rolledOut time.Time
	annotation         string
}

// track follows the Deployments of keys (namespace/name) every 100ms until they are all
// rolled out, every injected Secret and every Habilitation's status hold one of the
// fingerprints of wantFPs (nil: no rotation to wait for), and the operator has been idle
// for 3s: no rollout is still to come. It returns what it saw of each.
func (w *stormWatcher) track(ctx context.Context, op *operator, keys map[string]string, wantFPs map[string]bool, timeout time.Duration) (map[string]*rollState, error) {
	states := map[string]*rollState{}
	for key := range keys {
		states[key] = &rollState{}
	}
	var idleSince time.Time
	var pending []string
	err := poll(ctx, timeout, 100*time.Millisecond, "every Deployment to roll out", func() (bool, error) {
		now := time.Now()
		pending = pending[:0]
		for key, st := range states {
			d := &appsv1.Deployment{}
			if err := w.cache.Get(ctx, objectKey(key), d); apierrors.IsNotFound(err) {
				pending = append(pending, key) // just created: not in the cache yet
				continue
			} else if err != nil {
				return false, err
			}
			if rev, _ := strconv.Atoi(d.Annotations[testenv.RevisionAnnotation]); rev != st.revision {
				st.revision, st.changed, st.rolledOut = rev, now, time.Time{}
			}
			st.annotation = d.Spec.Template.Annotations[jetonv1alpha1.AnnotationRestartedFor]
			if st.rolledOut.IsZero() {
				if rev, err := testenv.RolledOut(ctx, w.cache, objectKey(key)); err == nil && rev == st.revision {
					st.rolledOut = now
				}
			}
			if st.rolledOut.IsZero() {
				pending = append(pending, key)
			}
		}
		if wantFPs != nil {
			var l corev1.SecretList
			if err := w.cache.List(ctx, &l, client.UnsafeDisableDeepCopy); err != nil {
				return false, err
			}
			for _, s := range l.Items {
				if !wantFPs[s.Annotations[jetonv1alpha1.AnnotationTokenFingerprint]] {
					pending = append(pending, "Secret "+s.Namespace+"/"+s.Name)
				}
			}
			// jeton records a rotation in status after its restarts: until then one may still
			// come (a failed reconcile waiting for its retry does not look busy).
			var hl jetonv1alpha1.HabilitationList
			if err := w.cache.List(ctx, &hl, client.UnsafeDisableDeepCopy); err != nil {
				return false, err
			}
			for _, h := range hl.Items {
				if !wantFPs[h.Status.TokenFingerprint] {
					pending = append(pending, "Habilitation "+h.Namespace+"/"+h.Name)
				}
			}
		}
		ss, err := op.scrape(ctx)
		if err != nil {
			return false, err
		}
		if ss.sum("workqueue_depth", nil) > 0 || ss.sum("controller_runtime_active_workers", nil) > 0 || len(pending) > 0 {
			idleSince = time.Time{}
			return false, nil
		}
		if idleSince.IsZero() {
			idleSince = now
		}
		return now.Sub(idleSince) >= 3*time.Second, nil
	})
	if err != nil {
		slices.Sort(pending)
		return nil, fmt.Errorf("%w: %d pending, e.g. %v", err, len(pending), pending[:min(3, len(pending))])
	}
	return states, nil
}

func objectKey(key string) client.ObjectKey {
	for i := range key {
		if key[i] == '/' {
			return client.ObjectKey{Namespace: key[:i], Name: key[i+1:]}
		}
	}
	return client.ObjectKey{Name: key}
}

// write prints the storm's figures as markdown.
func (s *stormResult) write(w io.Writer) {
	exact := 0
	for _, r := range s.rollouts {
		if r == 1 {
			exact++
		}
	}
	fmt.Fprintf(w, "### Restart storm: every token of %d clients (%d each, %d in all) rotated at once, on a cluster with simulated nodes\n\n", s.clients, s.tokens, s.clients*s.tokens)
	fmt.Fprintf(w, "| Measure | Value | Target | |\n|---|---|---|---|\n")
	fmt.Fprintf(w, "| Rollouts per Deployment using %d rotated tokens: min / median / max | %d / %d / %d | 1 | %s |\n", s.tokens,
		s.rollouts[0], s.rollouts[len(s.rollouts)/2], s.rollouts[len(s.rollouts)-1], yesNo(exact == len(s.rollouts)))
	fmt.Fprintf(w, "| Deployments that rolled out exactly once | %d of %d | all | %s |\n", exact, len(s.rollouts), yesNo(exact == len(s.rollouts)))
	fmt.Fprintf(w, "| Deployments whose restart annotation names every new token they use | %d of %d | all | %s |\n", s.complete, len(s.rollouts), yesNo(s.complete == len(s.rollouts)))
	fmt.Fprintf(w, "| Rollouts of the %d Deployments using none of them | %d | 0 | %s |\n", s.clients, s.bystanderRollouts, yesNo(s.bystanderRollouts == 0))
	fmt.Fprintf(w, "| First rotation → last pod-template change | %s | | |\n", fmtSeconds(s.toAnnotated.Seconds()))
	fmt.Fprintf(w, "| First rotation → every Deployment rolled out (new pods Running, old ones gone) | %s | | |\n\n", fmtSeconds(s.toRolled.Seconds()))
}
