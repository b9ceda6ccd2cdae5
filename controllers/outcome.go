package controllers

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
)

// reported is a kind whose status the reconcilers write through finish.
type reported interface {
	client.Object
	StatusParts() (*[]metav1.Condition, *int64, *jetonv1alpha1.RequestStatus)
}

// outcome is what one pass of any reconciler decided. The pass fills the rest of status
// itself; finish derives the conditions, observedGeneration and the handled request from
// the outcome and writes status once.
type outcome struct {
	conditions.Verdict
	// announce tells an event (a Warning when Verdict.Warning) when Ready turns to Reason.
	announce bool
	// requeueAfter is when to look again (0: on the next event only).
	requeueAfter time.Duration
	// waiting is a pass that only waits (a client being set up, the restarts of a
	// rotation): it writes no status and tells nothing.
	waiting bool
	// keepRequest leaves the on-demand request pending: a later pass answers it (the
	// result of a probe in flight).
	keepRequest bool
	// events are told once status is written, so a pass whose write conflicts (it read a
	// stale copy) tells nothing twice.
	events []pendingEvent
	// after runs once status is written: handing a probe over, say.
	after []func()
	// onTransition runs once status is written, when Ready turned to Reason: an event on
	// another object.
	onTransition func()
	// err is a transient failure: status keeps what it recorded and says so in Ready
	// (InternalError, False), nothing else of the outcome is applied, and the pass is
	// retried with back-off.
	err error
}

type pendingEvent struct {
	warning              bool
	reason, action, note string
}

// tell adds an event told once status is written.
func (o *outcome) tell(warning bool, reason, action, note string) {
	o.events = append(o.events, pendingEvent{warning, reason, action, note})
}

// failed is the outcome of a pass that could not finish: what failed, retried.
func failed(what string, err error) outcome {
	return outcome{err: fmt.Errorf("%s: %w", what, err)}
}

// maxRequeue caps any wait of a pass (the next expiry threshold, the next probe): a clock
// jump or a missed event is corrected within a day at most.
const maxRequeue = 24 * time.Hour

// maxErrorMessage bounds the part of a condition message quoting an error: API errors
// name objects and fields (never Secret values), and a name can be long.
const maxErrorMessage = 1024

// finish writes the outcome of a pass on obj, read as orig: conditions, observedGeneration
// and the handled request derived from it, status written once when it changed, then the
// events. The write carries an optimistic lock: a pass that read a stale copy (a watch
// event can outrun the cache's view of this object's last status write) must not record a
// transition again. Its conflict is no error: the newer version's own event brings it back.
func finish(ctx context.Context, c client.Client, rec events.EventRecorder, obj, orig reported, out outcome) (ctrl.Result, error) {
	if out.waiting && out.err == nil {
		return ctrl.Result{RequeueAfter: out.requeueAfter}, nil
	}
	if out.err != nil {
		// What the pass changed in status goes: status is jeton's record of what it did
		// (the fingerprint of the token injected and its workloads restarted for), and a
		// pass that failed half-way did not do it. Only Ready says so.
		reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(orig.DeepCopyObject()).Elem())
		msg := out.err.Error()
		if len(msg) > maxErrorMessage {
			msg = strings.ToValidUTF8(msg[:maxErrorMessage], "") + "…"
		}
		out.Verdict = conditions.Verdict{State: conditions.NotReady, Reason: jetonv1alpha1.ReasonInternalError,
			Message: msg + "; retrying"}
		out = outcome{Verdict: out.Verdict, keepRequest: true, err: out.err}
	}
	conds, observed, request := obj.StatusParts()
	conditions.Apply(conds, obj.GetGeneration(), out.Verdict)
	*observed = obj.GetGeneration()
	if !out.keepRequest {
		handleRequest(obj, request)
	}
	if statusChanged(obj, orig) {
		if err := c.Status().Patch(ctx, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{RequeueAfter: time.Second}, nil
			}
			return ctrl.Result{}, errors.Join(out.err, fmt.Errorf("writing status: %w", err))
		}
	}
	for _, e := range out.events {
		record(rec, obj, e)
	}
	origConds, _, _ := orig.StatusParts()
	if conditions.ReadyReason(*origConds) != out.Reason {
		if out.announce {
			record(rec, obj, pendingEvent{out.Warning, out.Reason, "Reconcile", out.Message})
		}
		if out.onTransition != nil {
			out.onTransition()
		}
	}
	for _, f := range out.after {
		f()
	}
	return ctrl.Result{RequeueAfter: out.requeueAfter}, out.err
}

// statusChanged reports whether obj's status differs from orig's. Every jeton kind keeps
// its status in a field named Status; comparing it costs far less than computing the patch
// (two JSON encodings per pass: 10.2 s of operator CPU against 6.8 s over an N=1000
// convergence, measured).
func statusChanged(obj, orig client.Object) bool {
	status := func(o client.Object) any { return reflect.ValueOf(o).Elem().FieldByName("Status").Interface() }
	return !equality.Semantic.DeepEqual(status(obj), status(orig))
}

func record(rec events.EventRecorder, obj client.Object, e pendingEvent) {
	typ := corev1.EventTypeNormal
	if e.warning {
		typ = corev1.EventTypeWarning
	}
	rec.Eventf(obj, nil, typ, e.reason, e.action, "%s", e.note)
}
