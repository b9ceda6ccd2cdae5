package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/injection"
)

const (
	// restartQuiet is how long the restarts of a client namespace wait for another rotation
	// there: a vendor rotating every token of a client does so within moments, and each
	// workload then restarts once for all of them instead of once per token (a restart
	// storm: 20 to 28 rollouts of one Deployment for 50 tokens, measured before batching).
	restartQuiet = 250 * time.Millisecond
	// restartMaxWait bounds the wait for more rotations, so that a namespace whose tokens
	// keep rotating still restarts its workloads.
	restartMaxWait = 10 * time.Second
	// restartComingMaxWait bounds the wait for rotations seen coming (a token changed, its
	// Habilitation has not run yet), so that one whose reconcile keeps failing does not hold
	// the others back. A rotation of 500 tokens at once took 25 s to reach every
	// Habilitation on a loaded 2-core machine; with 10 s here one Deployment in 100 still
	// rolled out twice.
	restartComingMaxWait = time.Minute
	// restartWait is when a Habilitation whose rotation awaits its restarts looks again
	// should the wake-up be lost; the restarts wake it as soon as they are done.
	restartWait = 30 * time.Second
	// restartDoneKept bounds how long an outcome waits for its Habilitation (deleted
	// meanwhile, or rotated again) before it is forgotten.
	restartDoneKept = 10 * time.Minute
	// workloadPageSize bounds each list of workloads read on rotation, and so the memory a
	// tenant's workloads can make jeton hold at once: an object is at most about 1.5 MiB
	// (etcd's request limit), so a page is at most about 12 MiB of JSON, and its decoded
	// copy as much again, whatever the tenant puts in its workloads. A page is dropped
	// before the next is read: only a slim record of each workload to restart is kept.
	workloadPageSize = 8
)

// workloadRestarts restarts the workloads of client namespaces for rotated tokens, one
// namespace at a time and once per workload for all the rotations gathered (restartQuiet).
//
// A Habilitation that rotates its token asks for the restart (request) and waits, keeping
// the previous fingerprint in its status: that is the durable mark of a pending restart,
// so a crash in between loses nothing. The restarts are deterministic (the restarted-for
// annotation names each Secret with its fingerprint), so redoing them restarts nothing
// twice. Each namespace has one worker at a time (its work-queue key), and every patch is
// conditional on the workload's resourceVersion: no two writes can lose each other's
// entries.
type workloadRestarts struct {
	// client patches workloads; reader lists them from the API server (they are not cached).
	client client.Client
	reader client.Reader
	now    func() time.Time
	// coming reports whether a rotation is under way in the namespace of client that has
	// not asked for its restart yet (its token changed, its Habilitation has not run): the
	// batch waits for it rather than restart the workloads twice.
	coming func(ctx context.Context, client string, rotated map[string]string) bool

	// queue is this controller's work queue, keyed by namespace (request.Name); habs is
	// the Habilitation controller's, to wake the Habilitations waiting.
	queue atomic.Pointer[workqueue.TypedRateLimitingInterface[reconcile.Request]]
	habs  atomic.Pointer[workqueue.TypedRateLimitingInterface[reconcile.Request]]

	mu      sync.Mutex
	pending map[string]*restartBatch
	done    map[types.NamespacedName]restartDone
}

// restartBatch is what a namespace's workloads must restart for.
type restartBatch struct {
	client      string            // the PublicClient whose namespace it is
	rotated     map[string]string // Secret name → the fingerprint workloads restart for
	waiting     map[types.NamespacedName]bool
	first, last time.Time // first and last request that changed rotated
	err         error     // of the last attempt
}

// restartDone is the outcome of a restart for one Secret: which workloads restarted.
type restartDone struct {
	fingerprint string
	restarted   []string
	at          time.Time
}

func newWorkloadRestarts(c client.Client, reader client.Reader, coming func(context.Context, string, map[string]string) bool) *workloadRestarts {
	return &workloadRestarts{
		client:  c,
		reader:  reader,
		coming:  coming,
		now:     time.Now,
		pending: map[string]*restartBatch{},
		done:    map[types.NamespacedName]restartDone{},
	}
}

func (w *workloadRestarts) setupWithManager(mgr ctrl.Manager, opts Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("workloadrestart").
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			w.queue.Store(&q)
			// Requests made before this controller started.
			w.mu.Lock()
			defer w.mu.Unlock()
			for ns := range w.pending {
				q.AddAfter(namespaceRequest(ns), restartQuiet)
			}
			return nil
		})).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}).
		Complete(w)
}

// habilitationWakeups is the source the Habilitation controller watches, so that the
// restarts can wake the Habilitations waiting for them.
func (w *workloadRestarts) habilitationWakeups() source.Source {
	return source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		w.habs.Store(&q)
		return nil
	})
}

func namespaceRequest(ns string) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Name: ns}}
}

// request asks for the workloads of target's namespace (client's) that use target to
// restart for the token fp, on behalf of Habilitation hab. done is true once they have: restarted names
// them (the outcome is handed over once). Until then hab is woken when they are done; err
// is the failure of the last attempt, if any.
func (w *workloadRestarts) request(hab types.NamespacedName, client string, target types.NamespacedName, fp string) (restarted []string, done bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if d, ok := w.done[target]; ok && d.fingerprint == fp {
		delete(w.done, target)
		return d.restarted, true, nil
	}
	now := w.now()
	b := w.pending[target.Namespace]
	if b == nil {
		b = &restartBatch{client: client, rotated: map[string]string{}, waiting: map[types.NamespacedName]bool{}, first: now}
		w.pending[target.Namespace] = b
	}
	if b.rotated[target.Name] != fp {
		b.rotated[target.Name] = fp
		b.last = now
	}
	b.waiting[hab] = true
	if q := w.queue.Load(); q != nil {
		(*q).AddAfter(namespaceRequest(target.Namespace), restartQuiet)
	}
	return nil, false, b.err
}

// restartDelay says how long a batch first requested at first and last changed at last
// still waits at now for more rotations: 0 when it is due.
func restartDelay(now, first, last time.Time) time.Duration {
	wait := min(last.Add(restartQuiet).Sub(now), first.Add(restartMaxWait).Sub(now))
	return max(wait, 0)
}

// Reconcile restarts the workloads of one namespace (request.Name) for the rotations
// gathered there.
func (w *workloadRestarts) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ns := req.Name
	w.mu.Lock()
	b := w.pending[ns]
	if b == nil {
		w.mu.Unlock()
		return ctrl.Result{}, nil
	}
	if wait := restartDelay(w.now(), b.first, b.last); wait > 0 {
		w.mu.Unlock()
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	rotated, first := maps.Clone(b.rotated), b.first
	w.mu.Unlock()
	if w.now().Sub(first) < restartComingMaxWait && w.coming != nil && w.coming(ctx, b.client, rotated) {
		return ctrl.Result{RequeueAfter: restartQuiet}, nil
	}

	restarted, err := w.restart(ctx, ns, rotated)

	w.mu.Lock()
	b.err = err
	if err != nil {
		w.mu.Unlock()
		return ctrl.Result{}, err // retried with back-off; what was patched is not patched again
	}
	now := w.now()
	for name, fp := range rotated {
		w.done[types.NamespacedName{Namespace: ns, Name: name}] = restartDone{fingerprint: fp, restarted: restarted[name], at: now}
		if b.rotated[name] == fp {
			delete(b.rotated, name)
		}
	}
	for key, d := range w.done {
		if now.Sub(d.at) > restartDoneKept {
			delete(w.done, key)
		}
	}
	// Everyone waiting looks again: those done take their outcome, the others (rotated
	// again meanwhile) ask anew.
	waiting := b.waiting
	b.waiting = map[types.NamespacedName]bool{}
	var result ctrl.Result
	if len(b.rotated) == 0 {
		delete(w.pending, ns)
	} else {
		b.first = now
		result.RequeueAfter = restartQuiet
	}
	w.mu.Unlock()

	if q := w.habs.Load(); q != nil {
		for hab := range waiting {
			(*q).Add(reconcile.Request{NamespacedName: hab})
		}
	}
	return result, nil
}

// restart sets the restarted-for annotation on the pod template of every Deployment,
// StatefulSet and DaemonSet of namespace ns that uses some of the rotated Secrets, once for
// all of them. It returns, for each rotated Secret, the workloads restarted for it.
func (w *workloadRestarts) restart(ctx context.Context, ns string, rotated map[string]string) (map[string][]string, error) {
	workloads, err := w.using(ctx, ns, rotated)
	if err != nil {
		return nil, err
	}
	restarted := map[string][]string{}
	var errs []error
	for _, wl := range workloads {
		// Conditional on the version listed: a write in between (someone else's) makes
		// this one fail and the whole batch run again on a fresh list.
		patch := fmt.Appendf(nil, `{"metadata":{"resourceVersion":%q},"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`,
			wl.resourceVersion, jetonv1alpha1.AnnotationRestartedFor, wl.next)
		obj := wl.kind.object()
		obj.SetNamespace(ns)
		obj.SetName(wl.name)
		if err := w.client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("restarting %s %s/%s: %w", wl.kind, ns, wl.name, err))
			}
			continue
		}
		for _, name := range wl.uses {
			restarted[name] = append(restarted[name], string(wl.kind)+"/"+wl.name)
		}
	}
	return restarted, errors.Join(errs...)
}

// workloadKind is a kind of workload whose pod template jeton restarts.
type workloadKind string

const (
	kindDeployment  workloadKind = "Deployment"
	kindStatefulSet workloadKind = "StatefulSet"
	kindDaemonSet   workloadKind = "DaemonSet"
)

// object is an empty object of the kind, to patch.
func (k workloadKind) object() client.Object {
	switch k {
	case kindStatefulSet:
		return &appsv1.StatefulSet{}
	case kindDaemonSet:
		return &appsv1.DaemonSet{}
	}
	return &appsv1.Deployment{}
}

// workloadToRestart is what a restart needs of a workload, and nothing more: the listed
// object (its pod template can weigh a megabyte, and a tenant decides how many there are)
// is dropped with its page.
type workloadToRestart struct {
	kind            workloadKind
	name            string
	resourceVersion string
	// next is the restarted-for annotation to set (different from the current one).
	next string
	// uses are the rotated Secrets it uses.
	uses []string
}

// using lists the workloads of namespace ns that use some of the rotated Secrets and are
// not yet restarted for them. Workloads are not cached (memory): they are listed from the
// API server a small page at a time (workloadPageSize), and of each that needs a restart
// only a workloadToRestart is kept, so a tenant with many (or huge) workloads cannot make
// jeton hold them.
func (w *workloadRestarts) using(ctx context.Context, ns string, rotated map[string]string) ([]workloadToRestart, error) {
	var workloads []workloadToRestart
	for _, newList := range []func() client.ObjectList{
		func() client.ObjectList { return &appsv1.DeploymentList{} },
		func() client.ObjectList { return &appsv1.StatefulSetList{} },
		func() client.ObjectList { return &appsv1.DaemonSetList{} },
	} {
		for cont := ""; ; {
			list := newList()
			if err := w.reader.List(ctx, list, client.InNamespace(ns), client.Limit(workloadPageSize), client.Continue(cont)); err != nil {
				return nil, fmt.Errorf("listing workloads in namespace %s: %w", ns, err)
			}
			items, err := meta.ExtractList(list)
			if err != nil {
				return nil, err
			}
			for _, item := range items {
				var kind workloadKind
				var tmpl *corev1.PodTemplateSpec
				switch o := item.(type) {
				case *appsv1.Deployment:
					kind, tmpl = kindDeployment, &o.Spec.Template
				case *appsv1.StatefulSet:
					kind, tmpl = kindStatefulSet, &o.Spec.Template
				case *appsv1.DaemonSet:
					kind, tmpl = kindDaemonSet, &o.Spec.Template
				default:
					continue
				}
				current := tmpl.Annotations[jetonv1alpha1.AnnotationRestartedFor]
				next, uses := injection.RestartFor(current, &tmpl.Spec, rotated)
				if len(uses) == 0 || next == current {
					continue // does not use them, or restarted for these tokens already
				}
				o := item.(client.Object)
				// Copies, so that nothing kept points into the page.
				workloads = append(workloads, workloadToRestart{
					kind: kind, name: strings.Clone(o.GetName()), resourceVersion: strings.Clone(o.GetResourceVersion()),
					next: next, uses: uses,
				})
			}
			if cont = list.GetContinue(); cont == "" {
				break
			}
		}
	}
	return workloads, nil
}
