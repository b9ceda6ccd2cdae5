package probe

import (
	"context"
	"net/http"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/budget"
	"github.com/jeton-dev/jeton/internal/publicapi"
	"github.com/jeton-dev/jeton/internal/token"
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

// budgetKeys are the keys the job is admitted under by the rate budget: the canonical host
// (every spelling of one host is one budget) and the canonical fingerprint of the token
// actually sent (every TechnicalToken holding it shares its one request in flight and its
// waits), whatever the job's Fingerprint field says.
func (j Job) budgetKeys() (host, fp string) {
	return HostKey(j.Target.BaseURL), token.Fingerprint(j.Target.Token)
}

// HostKey is the rate budget's key for the host of a base URL: its canonical form, or the
// URL itself when it has no host (such a job is refused by the host policy anyway).
func HostKey(baseURL string) string {
	if h := publicapi.CanonicalHost(baseURL); h != "" {
		return h
	}
	return baseURL
}

// Finished is a finished probe, kept until the owner consumes it.
type Finished struct {
	Outcome
	Fingerprint string
	Generation  int64
	Request     string
	// Hold is what the rate budget holds after this probe's answer (a 429, Retry-After,
	// RateLimit-Reset): the owner records it, so that a restart honours it.
	Hold budget.Hold
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
	// Budget admits every request (host rate, waits, one request in flight per token).
	// Default: a budget with the default options, of this executor only.
	Budget *budget.Budget
	// Restore, when set, runs before the first probe each time the executor starts (on
	// becoming leader): it gives the budget back the holds recorded before (in
	// TechnicalToken status), so a new leader does not probe before a Retry-After ends.
	// Until it succeeds nothing is sent.
	Restore func(ctx context.Context, b *budget.Budget) error
	// OnRestoreError reports a failed Restore (retried after a second).
	OnRestoreError func(err error)
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
// queued or in flight, holds it back while the rate budget says so (which also keeps one
// request in flight per token, across owners), and keeps the outcome until the owner
// consumes it. It is a manager Runnable (Start blocks until ctx ends).
type Executor struct {
	opts   ExecutorOptions
	budget *budget.Budget
	queue  workqueue.TypedDelayingInterface[types.NamespacedName]

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
	b := opts.Budget
	if b == nil {
		b = budget.New(budget.Options{})
	}
	return &Executor{
		opts:   opts,
		budget: b,
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

// Forget cancels key: the resource is gone. The waits stay in the budget: they belong to
// the token and the host, which other resources may hold.
func (e *Executor) Forget(key types.NamespacedName) {
	e.Cancel(key)
}

// NotBefore returns the earliest time the token whose canonical fingerprint is fp may be
// probed against baseURL, as the rate limits last seen allow (zero: no constraint).
func (e *Executor) NotBefore(fp, baseURL string) time.Time {
	return e.budget.NotBefore(HostKey(baseURL), fp, e.opts.Now())
}

// Start runs the workers until ctx ends. It implements manager.Runnable.
func (e *Executor) Start(ctx context.Context) error {
	if !e.restore(ctx) {
		e.queue.ShutDown()
		return nil
	}
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

// restore runs opts.Restore until it succeeds; false when ctx ends first.
func (e *Executor) restore(ctx context.Context) bool {
	if e.opts.Restore == nil {
		return true
	}
	for {
		err := e.opts.Restore(ctx, e.budget)
		if err == nil {
			return true
		}
		if e.opts.OnRestoreError != nil {
			e.opts.OnRestoreError(err)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
	}
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
	host, fp := job.budgetKeys()
	wait, release := e.budget.Admit(host, fp, e.opts.Now())
	if wait > 0 {
		// Held back by Retry-After, a host backoff, the host rate or a request in flight
		// with the same token: come back later without holding a worker.
		e.mu.Unlock()
		e.queue.AddAfter(key, wait)
		return true
	}
	defer release()
	en.state = running
	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	en.cancel = cancel
	e.mu.Unlock()

	var out Outcome
	var hold budget.Hold
	if err := e.allow(job.Target); err != nil {
		out = Outcome{Result: Result{Reason: jetonv1alpha1.ReasonAPIHostNotAllowed, Message: err.Error()}, Time: e.opts.Now()}
	} else {
		out = Check(reqCtx, e.opts.Client, job.Target, e.opts.Now)
		hold = e.budget.Observe(host, fp, budget.Answer{Status: out.HTTPStatus, RetryAt: out.RetryAt, At: out.Time})
	}
	release()

	e.mu.Lock()
	if en.forgotten {
		if e.entries[key] == en {
			delete(e.entries, key)
		}
	} else {
		en.state = finished
		en.result = Finished{Outcome: out, Fingerprint: job.Fingerprint, Generation: job.Generation, Request: job.Request, Hold: hold}
	}
	e.mu.Unlock()
	if ctx.Err() == nil && e.opts.Notify != nil {
		e.opts.Notify(ctx, key)
	}
	return true
}
