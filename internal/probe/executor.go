package probe

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// Job is one probe to run.
type Job struct {
	Key    types.NamespacedName
	Target Target
	// Fingerprint and Generation identify what was probed (the token's fingerprint and the
	// resource generation), so a result about an older token or spec can be told apart.
	Fingerprint string
	Generation  int64
	// Request is the on-demand request (annotation jeton.dev/requested-at) this probe
	// answers, if any: its result, and no other, marks the request handled.
	Request string
}

// Host returns the host (and port) the job talks to: the unit of the host-wide backoff.
func (j Job) Host() string { return HostOf(j.Target.BaseURL) }

// HostOf returns the host:port of a base URL, or the URL itself when it does not parse.
func HostOf(baseURL string) string {
	if u, err := url.Parse(baseURL); err == nil && u.Host != "" {
		return u.Host
	}
	return baseURL
}

// Finished is a finished probe, kept until the owner consumes it.
type Finished struct {
	Outcome
	Fingerprint string
	Generation  int64
	Request     string
}

// ExecutorOptions configure an Executor. Zero values take the defaults.
type ExecutorOptions struct {
	// Workers is how many probes run at once, across all tokens. Default 4: a slow API
	// (up to its timeout) then never holds up the probes of other APIs.
	Workers int
	// Client sends the requests. Default NewHTTPClient().
	Client *http.Client
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Notify is called (from a worker) when a probe of key has finished and its result
	// waits in Result. It should hand the key to a reconciler, honouring ctx.
	Notify func(ctx context.Context, key types.NamespacedName)
	// Gate tunes the rate-limit gate.
	Gate GateOptions
	// Allow, when set, is asked before every request whether the token may go to the
	// job's base URL; a refused job sends nothing and finishes as APIHostNotAllowed. The
	// reconciler checks first; this is the last line, next to the request itself.
	Allow func(api jetonv1alpha1.API, baseURL string) error
}

type state int

const (
	queued state = iota
	running
	finished
)

type entry struct {
	job    Job
	state  state
	result Finished
	// forgotten: the owner is gone while the probe was running; drop the result.
	forgotten bool
	// cancel aborts the request in flight.
	cancel context.CancelFunc
}

// Executor runs probes on a small pool of workers. Owners (the TechnicalToken reconciler)
// Submit jobs when they are due; the executor makes sure a token has at most one probe
// queued or in flight, holds it back while the Gate says so, and keeps the outcome until
// the owner consumes it. It is a manager Runnable (Start blocks until ctx ends).
type Executor struct {
	opts  ExecutorOptions
	gate  *Gate
	queue workqueue.TypedDelayingInterface[types.NamespacedName]

	mu      sync.Mutex
	entries map[types.NamespacedName]*entry
}

// NewExecutor returns an executor; call Start to run its workers.
func NewExecutor(opts ExecutorOptions) *Executor {
	if opts.Workers < 1 {
		opts.Workers = 4
	}
	if opts.Client == nil {
		opts.Client = NewHTTPClient()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Executor{
		opts: opts,
		gate: NewGate(opts.Gate),
		queue: workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[types.NamespacedName]{
			Name: "", // no workqueue metrics: keys are resource names, and the probe metrics say enough
		}),
		entries: map[types.NamespacedName]*entry{},
	}
}

// Submit queues a probe. It returns false, and changes nothing, when the token already has
// a probe in flight or a result not yet consumed; a probe still waiting in the queue gets
// the newer job (the latest token and spec) and keeps its place.
func (e *Executor) Submit(job Job) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if en, ok := e.entries[job.Key]; ok {
		if en.state == queued {
			en.job = job
		}
		return false
	}
	e.entries[job.Key] = &entry{job: job, state: queued}
	e.queue.Add(job.Key)
	return true
}

// Result returns the finished probe of key waiting to be consumed, if any.
func (e *Executor) Result(key types.NamespacedName) (Finished, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if en, ok := e.entries[key]; ok && en.state == finished {
		return en.result, true
	}
	return Finished{}, false
}

// Consume drops the finished result of key once its owner has recorded it; the token can
// then be submitted again.
func (e *Executor) Consume(key types.NamespacedName) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if en, ok := e.entries[key]; ok && en.state == finished {
		delete(e.entries, key)
	}
}

// Cancel drops a queued probe or a waiting result of key. A probe in flight is aborted and
// its result dropped; the token cannot be submitted again before its worker has let go of
// it: one request in flight per token, always.
func (e *Executor) Cancel(key types.NamespacedName) {
	e.mu.Lock()
	defer e.mu.Unlock()
	en, ok := e.entries[key]
	if !ok {
		return
	}
	if en.state == running {
		en.forgotten = true
		en.cancel()
		return
	}
	delete(e.entries, key)
}

// Forget cancels key and drops its rate-limit state: the resource is gone.
func (e *Executor) Forget(key types.NamespacedName) {
	e.Cancel(key)
	e.gate.Forget(key)
}

// NotBefore returns the earliest time the token may be probed against baseURL, as the rate
// limits last seen allow (zero: no constraint).
func (e *Executor) NotBefore(key types.NamespacedName, baseURL string) time.Time {
	return e.gate.NotBefore(key, HostOf(baseURL))
}

// Start runs the workers until ctx ends. It implements manager.Runnable.
func (e *Executor) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for range e.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
	e.queue.ShutDown()
	wg.Wait()
	return nil
}

func (e *Executor) allow(t Target) error {
	if e.opts.Allow == nil {
		return nil
	}
	return e.opts.Allow(t.API, t.BaseURL)
}

// NeedLeaderElection: only the leader probes, so replicas do not multiply the requests.
func (e *Executor) NeedLeaderElection() bool { return true }

// next runs one queued probe; it returns false when the queue shuts down.
func (e *Executor) next(ctx context.Context) bool {
	key, shutdown := e.queue.Get()
	if shutdown {
		return false
	}
	defer e.queue.Done(key)

	e.mu.Lock()
	en, ok := e.entries[key]
	if !ok || en.state != queued {
		e.mu.Unlock()
		return true
	}
	job := en.job
	if wait := e.gate.admit(key, job.Host(), e.opts.Now()); wait > 0 {
		// Held back by Retry-After, a host backoff or the host rate: come back later
		// without holding a worker.
		e.mu.Unlock()
		e.queue.AddAfter(key, wait)
		return true
	}
	en.state = running
	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	en.cancel = cancel
	e.mu.Unlock()

	var out Outcome
	if err := e.allow(job.Target); err != nil {
		out = Outcome{Result: Result{Reason: jetonv1alpha1.ReasonAPIHostNotAllowed, Message: err.Error()}, Time: e.opts.Now()}
	} else {
		out = Check(reqCtx, e.opts.Client, job.Target, e.opts.Now)
		e.gate.Observe(key, job.Host(), out)
	}

	e.mu.Lock()
	if en.forgotten {
		if e.entries[key] == en {
			delete(e.entries, key)
		}
	} else {
		en.state = finished
		en.result = Finished{Outcome: out, Fingerprint: job.Fingerprint, Generation: job.Generation, Request: job.Request}
	}
	e.mu.Unlock()
	if ctx.Err() == nil && e.opts.Notify != nil {
		e.opts.Notify(ctx, key)
	}
	return true
}
