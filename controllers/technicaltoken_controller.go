package controllers

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
	"github.com/jeton-dev/jeton/internal/expiry"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/metrics"
	"github.com/jeton-dev/jeton/internal/probe"
	"github.com/jeton-dev/jeton/internal/publicapi"
	"github.com/jeton-dev/jeton/internal/token"
)

// Events recorded on TechnicalTokens besides the Ready reasons.
const (
	EventProbeFailed    = "ProbeFailed"
	EventProbeRecovered = "ProbeRecovered"
)

// CRD defaults, applied again here for objects written before a default existed.
const (
	ttDefaultInterval    = 5 * time.Minute
	ttDefaultTimeout     = 10 * time.Second
	ttDefaultThreshold   = 3
	ttDefaultRenewBefore = 90 * 24 * time.Hour
	// ttMaxRequeue caps any wait, so a missed event is corrected within a day.
	ttMaxRequeue = 24 * time.Hour
)

// +kubebuilder:rbac:groups=jeton.dev,resources=technicaltokens,verbs=get;list;watch
// +kubebuilder:rbac:groups=jeton.dev,resources=technicaltokens/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// TechnicalTokenReconciler keeps each TechnicalToken's status: what its token says about
// itself (fingerprint, id, expiry, scopes) and what the API's own check says, probe after
// probe. It never does HTTP itself: due probes go to the Executor, whose results come back
// as reconcile requests, so a slow API never holds a reconcile worker.
type TechnicalTokenReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Executor *probe.Executor
	Options  Options
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	bindings tokenBindings
	// writes tells a stale cache copy from a current one.
	writes *ownWrites
}

func setupTechnicalTokenReconciler(mgr ctrl.Manager, opts Options, writes *ownWrites) error {
	results := make(chan event.GenericEvent, 1024)
	exec := probe.NewExecutor(probe.ExecutorOptions{
		Allow: opts.APIHosts.Check,
		Notify: func(ctx context.Context, key types.NamespacedName) {
			ev := event.GenericEvent{Object: &jetonv1alpha1.TechnicalToken{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}
			select {
			case results <- ev:
			case <-ctx.Done():
			}
		},
	})
	if err := mgr.Add(exec); err != nil {
		return err
	}
	r := &TechnicalTokenReconciler{
		Client:   recordingClient{Client: mgr.GetClient(), writes: writes},
		writes:   writes,
		Recorder: mgr.GetEventRecorder("jeton"),
		Executor: exec,
		Options:  opts,
		bindings: tokenBindings{Reader: mgr.GetClient()},
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("technicaltoken").
		// Status writes (ours) do not bump the generation: ignoring them avoids a second
		// pass per probe. An on-demand request (jeton.dev/requested-at) gets its pass.
		For(&jetonv1alpha1.TechnicalToken{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, requestedAtChanged{}))).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.mapSecret)).
		// A Habilitation taking or leaving a token refuses or frees the TechnicalTokens
		// naming the same token.
		Watches(&jetonv1alpha1.Habilitation{}, handler.EnqueueRequestsFromMapFunc(r.mapHabilitation)).
		WatchesRawSource(source.Channel(results, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}).
		Complete(r)
}

func (r *TechnicalTokenReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// ttPass is what one reconcile decided, applied at the end in one status write.
type ttPass struct {
	mark    func(*[]metav1.Condition, int64, string, string)
	reason  string
	message string
	// events to record once the status is written.
	events []ttEvent
	// consumed: a probe result was recorded; the executor may drop it once status is written.
	consumed *probe.Finished
	// submit is a probe due now, handed to the executor once status is written (and the
	// previous result consumed, else the executor would refuse it).
	submit  *probe.Job
	requeue time.Duration
	// awaitsProbe: the on-demand request is answered by a probe not recorded yet (in
	// flight, or held back by the gate), so it is not marked handled in this pass.
	awaitsProbe bool
}

type ttEvent struct {
	warning              bool
	reason, action, note string
}

// Reconcile brings one TechnicalToken's status up to date and schedules its next probe.
func (r *TechnicalTokenReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	tt := &jetonv1alpha1.TechnicalToken{}
	if err := r.Get(ctx, req.NamespacedName, tt); err != nil {
		if apierrors.IsNotFound(err) {
			r.Executor.Forget(req.NamespacedName)
			metrics.ForgetTechnicalToken(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !tt.DeletionTimestamp.IsZero() {
		r.Executor.Forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	if r.writes.behind(tt) {
		return ctrl.Result{RequeueAfter: cacheCatchUp}, nil
	}

	orig := tt.DeepCopy()
	pass, err := r.reconcile(ctx, tt)
	if err != nil {
		return ctrl.Result{}, err
	}
	pass.mark(&tt.Status.Conditions, tt.Generation, pass.reason, pass.message)
	tt.Status.ObservedGeneration = tt.Generation
	if !pass.awaitsProbe {
		handleRequest(tt, &tt.Status.RequestStatus)
	}
	if old := conditions.ReadyReason(orig.Status.Conditions); old != pass.reason && reportedReasons[pass.reason] {
		pass.events = append(pass.events, ttEvent{warning: true, reason: pass.reason, action: "Reconcile", note: pass.message})
	}
	if !equality.Semantic.DeepEqual(orig.Status, tt.Status) {
		// Optimistic lock: consecutiveFailures is a counter, a stale read must not overwrite it.
		if err := r.Status().Patch(ctx, tt, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, fmt.Errorf("writing status: %w", err)
		}
	}
	if f := pass.consumed; f != nil {
		r.Executor.Consume(req.NamespacedName)
		metrics.ObserveProbe(tt.Namespace, tt.Name, string(tt.Spec.API), string(tt.Spec.Environment), f.Reason, f.Latency)
		log.FromContext(ctx).V(1).Info("probe recorded", "result", f.Reason, "httpStatus", f.HTTPStatus,
			"code", f.Code, "latency", f.Latency, "fingerprint", tt.Status.TokenFingerprint)
	}
	if pass.submit != nil {
		// Refused when already queued or in flight: its result will bring us back.
		r.Executor.Submit(*pass.submit)
	}
	for _, e := range pass.events {
		typ := corev1.EventTypeNormal
		if e.warning {
			typ = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(tt, nil, typ, e.reason, e.action, "%s", e.note)
	}
	return ctrl.Result{RequeueAfter: pass.requeue}, nil
}

// reportedReasons are the Ready reasons that get an Event when Ready turns to them (the
// probe transitions have their own ProbeFailed / ProbeRecovered events).
var reportedReasons = map[string]bool{
	jetonv1alpha1.ReasonNamespaceNotAllowed:  true,
	jetonv1alpha1.ReasonSecretNotFound:       true,
	jetonv1alpha1.ReasonSecretKeyNotFound:    true,
	jetonv1alpha1.ReasonInvalidToken:         true,
	jetonv1alpha1.ReasonTokenExpired:         true,
	jetonv1alpha1.ReasonTokenExpiringSoon:    true,
	jetonv1alpha1.ReasonAPIHostNotAllowed:    true,
	jetonv1alpha1.ReasonTokenConflict:        true,
	jetonv1alpha1.ReasonSecretClientMismatch: true,
}

func (r *TechnicalTokenReconciler) reconcile(ctx context.Context, tt *jetonv1alpha1.TechnicalToken) (ttPass, error) {
	key := client.ObjectKeyFromObject(tt)
	// What status says was last seen, before this pass overwrites it.
	prevFP, prevGen := tt.Status.TokenFingerprint, tt.Status.ObservedGeneration
	stall := func(reason, format string, args ...any) (ttPass, error) {
		r.Executor.Cancel(key)
		tt.Status.NextProbeTime = nil
		return ttPass{mark: conditions.MarkStalled, reason: reason, message: fmt.Sprintf(format, args...)}, nil
	}

	if !r.Options.IsCredentialsNamespace(tt.Namespace) {
		tt.Status.TokenStatus = jetonv1alpha1.TokenStatus{}
		return stall(jetonv1alpha1.ReasonNamespaceNotAllowed,
			"TechnicalTokens are honoured only in the credentials namespaces (%s); this one is not probed. Move it and its token Secret to a credentials namespace, or add %q to the operator's --credentials-namespaces flag.",
			strings.Join(r.Options.CredentialsNamespaces, ", "), tt.Namespace)
	}
	if refusedForLabel(tt.Status.Conditions) {
		tt.Status.TokenStatus = jetonv1alpha1.TokenStatus{}
		return stall(jetonv1alpha1.ReasonSecretClientMismatch, "%s", labelRefusalKept)
	}

	// The token.
	ref := tt.Spec.TokenSecretRef
	secretKey := cmp.Or(ref.Key, "token")
	src := &corev1.Secret{}
	if r.Options.isOwnerKey(tt.Namespace, ref.Name) {
		tt.Status.TokenStatus = jetonv1alpha1.TokenStatus{}
		return stall(jetonv1alpha1.ReasonInvalidToken, ownerKeyRefused, tt.Namespace, ref.Name)
	}
	if err := r.Get(ctx, types.NamespacedName{Namespace: tt.Namespace, Name: ref.Name}, src); err != nil {
		if !apierrors.IsNotFound(err) {
			return ttPass{}, err
		}
		tt.Status.TokenStatus = jetonv1alpha1.TokenStatus{}
		r.Executor.Cancel(key)
		tt.Status.NextProbeTime = nil
		// Not stalled: the Secret is watched, and often arrives later (Sealed Secrets, External Secrets).
		return ttPass{mark: conditions.MarkNotReady, reason: jetonv1alpha1.ReasonSecretNotFound, message: fmt.Sprintf(
			"Secret %s/%s (spec.tokenSecretRef) not found: create it with the technical token under key %q.", tt.Namespace, ref.Name, secretKey)}, nil
	}
	if owner := src.Labels[jetonv1alpha1.LabelClient]; owner != "" {
		tt.Status.TokenStatus = jetonv1alpha1.TokenStatus{}
		return stall(jetonv1alpha1.ReasonSecretClientMismatch,
			"Secret %s/%s is labelled %s=%s: it holds client %q's token, which is never used as a technical token, so it is not probed. Reference the vendor's own technical token Secret.",
			tt.Namespace, ref.Name, jetonv1alpha1.LabelClient, owner, owner)
	}
	raw, ok := src.Data[secretKey]
	if !ok {
		tt.Status.TokenStatus = jetonv1alpha1.TokenStatus{}
		return stall(jetonv1alpha1.ReasonSecretKeyNotFound,
			"Secret %s/%s has no key %q (keys: %s): put the technical token under that key or fix spec.tokenSecretRef.key.",
			tt.Namespace, ref.Name, secretKey, strings.Join(slices.Sorted(maps.Keys(src.Data)), ", "))
	}
	tok, err := token.Normalize(raw)
	if err != nil {
		tt.Status.TokenStatus = jetonv1alpha1.TokenStatus{}
		// The token package guarantees its errors never quote the token.
		return stall(jetonv1alpha1.ReasonInvalidToken,
			"Secret %s/%s key %q does not hold a valid token: %v. Put the technical token issued for %s there.", tt.Namespace, ref.Name, secretKey, err, tt.Spec.API)
	}
	info, err := token.Decode(tt.Spec.API, tok)
	if err != nil {
		// No fingerprint in status: whoever may create TechnicalTokens could otherwise read
		// the hash of any value of the credentials namespaces (a password, say). A
		// Habilitation holding this token still finds it, through the index of Secrets.
		tt.Status.TokenStatus = jetonv1alpha1.TokenStatus{}
		return stall(jetonv1alpha1.ReasonInvalidToken,
			"Secret %s/%s key %q does not hold a valid %s token: %v. Put the technical token issued for that API there.", tt.Namespace, ref.Name, secretKey, tt.Spec.API, err)
	}
	fp := token.Fingerprint(tok)
	r.setTokenStatus(tt, fp, info)

	// Where the token would go: nothing is sent to a host the policy refuses.
	baseURL := publicapi.BaseURL(tt.Spec.API, tt.Spec.Environment, tt.Spec.BaseURL)
	if baseURL == "" {
		return stall(jetonv1alpha1.ReasonInternalError, "no base URL is known for API %s in environment %q: set spec.baseURL", tt.Spec.API, tt.Spec.Environment)
	}
	if err := r.Options.APIHosts.Check(tt.Spec.API, baseURL); err != nil {
		return stall(jetonv1alpha1.ReasonAPIHostNotAllowed, "spec.baseURL is refused: %v. Nothing is probed.", err)
	}
	// One token, one client: a token an older Habilitation binds to a client is never
	// probed, so no TechnicalToken can send a client's token anywhere.
	self := injection.Binding{Kind: injection.KindTechnicalToken, Namespace: tt.Namespace, Name: tt.Name, Created: tt.CreationTimestamp.Time}
	verdict, labelledFor, err := r.bindings.arbitrate(ctx, self, fp)
	if err != nil {
		return ttPass{}, err
	}
	if len(labelledFor) > 0 {
		tt.Status.TokenStatus = jetonv1alpha1.TokenStatus{}
		return stall(jetonv1alpha1.ReasonSecretClientMismatch,
			"the token in Secret %s/%s is labelled for client %s (%s on a Secret holding it): a client's token is never used as a technical token, so it is not probed. Reference the vendor's own technical token Secret.",
			tt.Namespace, ref.Name, strings.Join(labelledFor, ", "), jetonv1alpha1.LabelClient)
	}
	if verdict.Outcome != injection.Allowed {
		return stall(jetonv1alpha1.ReasonTokenConflict,
			"the token in Secret %s/%s (fingerprint %s) is bound to client %q by Habilitation %s/%s, created before this TechnicalToken or in the same second: a client's token is never used as a technical token, so it is not probed. Put the vendor's own technical token for %s in the Secret.",
			tt.Namespace, ref.Name, fp, verdict.With.Client, verdict.With.Namespace, verdict.With.Name, tt.Spec.API)
	}

	now := r.now()
	pass := ttPass{}
	threshold := tt.Spec.FailureThreshold
	if threshold < 1 {
		threshold = ttDefaultThreshold
	}

	// A new token or a new spec is probed at once rather than at the next interval.
	probeNow := prevFP != fp || prevGen != tt.Generation
	// So is an on-demand request: answered by the result of a probe submitted for it, with
	// the same gate as any probe (one in flight, Retry-After, host backoff); or at once
	// when no probe can be sent (stalled, suspended).
	req := requestedAt(tt)
	pending := req != "" && req != tt.Status.LastHandledRequestedAt
	// A finished probe about this very token goes into status; one about a token that has
	// since been replaced says nothing about the new one and is dropped.
	if f, ok := r.Executor.Result(key); ok {
		if f.Fingerprint == fp {
			pass.events = append(pass.events, recordProbe(&tt.Status, f, threshold)...)
			pass.consumed = &f
			probeNow = probeNow || f.Generation != tt.Generation
			pending = pending && f.Request != req
		} else {
			r.Executor.Consume(key)
			probeNow = true
		}
	}

	probeNow = probeNow || pending

	// Expiry.
	renewBefore := ttDefaultRenewBefore
	if tt.Spec.RenewBefore != nil {
		renewBefore = tt.Spec.RenewBefore.Duration
	}
	var exp *time.Time
	if tt.Status.ExpiresAt != nil {
		t := tt.Status.ExpiresAt.Time
		exp = &t
	}
	ev := expiry.Evaluate(now, exp, renewBefore)
	if ev.Next > 0 {
		pass.requeue = ev.Next + time.Second // just past the threshold
	}

	// Schedule the next probe.
	if tt.Spec.Suspend {
		r.Executor.Cancel(key)
		tt.Status.NextProbeTime = nil
	} else {
		var last *time.Time
		if tt.Status.LastProbeTime != nil && !probeNow {
			t := tt.Status.LastProbeTime.Time
			last = &t
		}
		due := probe.NextProbe(string(tt.UID), last, r.interval(tt), r.Executor.NotBefore(key, baseURL))
		pass.awaitsProbe = pending
		if due.After(now) {
			tt.Status.NextProbeTime = ptrTime(due)
			pass.requeue = minPositive(pass.requeue, due.Sub(now))
		} else {
			timeout := ttDefaultTimeout
			if tt.Spec.Timeout != nil && tt.Spec.Timeout.Duration > 0 {
				timeout = tt.Spec.Timeout.Duration
			}
			var number int64
			if tt.Spec.DemarcheNumber != nil {
				number = *tt.Spec.DemarcheNumber
			}
			if !pending {
				req = ""
			}
			pass.submit = &probe.Job{Key: key, Fingerprint: fp, Generation: tt.Generation, Request: req, Target: probe.Target{
				API: tt.Spec.API, BaseURL: baseURL, Token: tok, DemarcheNumber: number, Timeout: timeout}}
			// Due now: keep a due time already passed, so the passes while the probe is
			// in flight do not rewrite status.
			if nt := tt.Status.NextProbeTime; nt == nil || nt.After(now) {
				tt.Status.NextProbeTime = ptrTime(now)
			}
		}
	}
	pass.requeue = min(cmp.Or(pass.requeue, ttMaxRequeue), ttMaxRequeue)

	r.judge(tt, ev, threshold, &pass)
	return pass, nil
}

// judge sets the Ready condition from the token's expiry and the probes so far.
func (r *TechnicalTokenReconciler) judge(tt *jetonv1alpha1.TechnicalToken, ev expiry.Result, threshold int32, pass *ttPass) {
	st := &tt.Status
	last := st.LastResult
	set := func(mark func(*[]metav1.Condition, int64, string, string), reason, format string, args ...any) {
		pass.mark, pass.reason, pass.message = mark, reason, fmt.Sprintf(format, args...)
	}
	switch {
	case ev.State == expiry.Expired:
		set(conditions.MarkStalled, jetonv1alpha1.ReasonTokenExpired, "%s", ev.Message)
	case last != nil && st.ConsecutiveFailures >= threshold:
		set(conditions.MarkNotReady, last.Reason, "the last %d probes failed: %s", st.ConsecutiveFailures, last.Message)
	case st.LastSuccessTime == nil && tt.Spec.Suspend:
		pass.mark = func(c *[]metav1.Condition, gen int64, reason, msg string) {
			conditions.MarkReady(c, gen, reason, msg) // removes Reconciling and Stalled
			conditions.Set(c, gen, jetonv1alpha1.ConditionReady, metav1.ConditionUnknown, reason, msg)
		}
		pass.reason, pass.message = jetonv1alpha1.ReasonSuspended, "probing is suspended (spec.suspend) and the token was never probed"
	case st.LastSuccessTime == nil:
		msg := "waiting for the first successful probe"
		if last != nil {
			msg = fmt.Sprintf("%s; the last probe failed (%d of %d before Ready turns False): %s", msg, st.ConsecutiveFailures, threshold, last.Message)
		}
		set(conditions.MarkReconciling, jetonv1alpha1.ReasonProbePending, "%s", msg)
	case st.ConsecutiveFailures > 0:
		// Below the threshold Ready stays True; the reason and lastResult show the trouble.
		set(conditions.MarkReady, jetonv1alpha1.ReasonProbeFailing, "the last %d of %d probes allowed to fail did fail (%s): %s",
			st.ConsecutiveFailures, threshold, last.Reason, last.Message)
	case ev.State == expiry.ExpiringSoon:
		set(conditions.MarkReady, jetonv1alpha1.ReasonTokenExpiringSoon, "the API accepts the token, but it %s", strings.TrimPrefix(ev.Message, "token "))
	default:
		msg := "the API accepts the token"
		if ev.State == expiry.Valid {
			msg += "; " + ev.Message
		}
		set(conditions.MarkReady, jetonv1alpha1.ReasonProbeSucceeded, "%s", msg)
	}
	if tt.Spec.Suspend && pass.reason != jetonv1alpha1.ReasonSuspended {
		pass.message += " (probing is suspended: this is the last known state)"
	}
}

// recordProbe writes a finished probe into status and returns the events it causes.
func recordProbe(st *jetonv1alpha1.TechnicalTokenStatus, f probe.Finished, threshold int32) []ttEvent {
	at := metav1.NewTime(f.Time.Truncate(time.Second))
	st.LastProbeTime = &at
	st.LastResult = &jetonv1alpha1.ProbeResult{
		HTTPStatus: int32(f.HTTPStatus),
		Code:       f.Code,
		Reason:     f.Reason,
		Message:    f.Message,
		Latency:    &metav1.Duration{Duration: f.Latency.Round(time.Millisecond)},
	}
	if f.Succeeded() {
		wasFailing := st.ConsecutiveFailures >= threshold
		prev := st.ConsecutiveFailures
		st.ConsecutiveFailures = 0
		st.LastSuccessTime = &at
		st.Privileges = f.Privileges
		if wasFailing {
			return []ttEvent{{reason: EventProbeRecovered, action: "Probe",
				note: fmt.Sprintf("the API accepts the token again after %d failed probes", prev)}}
		}
		return nil
	}
	st.ConsecutiveFailures++
	if st.ConsecutiveFailures == threshold {
		return []ttEvent{{warning: true, reason: EventProbeFailed, action: "Probe",
			note: fmt.Sprintf("%d probes in a row failed, the token is not Ready: %s: %s", threshold, f.Reason, f.Message)}}
	}
	return nil
}

// setTokenStatus records what the token says about itself (never the token).
func (r *TechnicalTokenReconciler) setTokenStatus(tt *jetonv1alpha1.TechnicalToken, fp string, info token.Info) {
	ts := jetonv1alpha1.TokenStatus{TokenFingerprint: fp, TokenID: info.ID, Scopes: info.Scopes}
	if info.IssuedAt != nil {
		ts.IssuedAt = ptrTime(*info.IssuedAt)
	}
	switch {
	case info.ExpiresAt != nil:
		ts.ExpiresAt = ptrTime(*info.ExpiresAt)
	case tt.Spec.ExpiresAt != nil:
		ts.ExpiresAt = ptrTime(tt.Spec.ExpiresAt.Time)
	}
	tt.Status.TokenStatus = ts
}

// interval is the time between probes: spec.interval, unless Options.ProbeInterval overrides it.
func (r *TechnicalTokenReconciler) interval(tt *jetonv1alpha1.TechnicalToken) time.Duration {
	if r.Options.ProbeInterval > 0 {
		return r.Options.ProbeInterval
	}
	if tt.Spec.Interval == nil {
		return ttDefaultInterval
	}
	return cmp.Or(tt.Spec.Interval.Duration, ttDefaultInterval)
}

// mapSecret finds the TechnicalTokens reading a Secret of a credentials namespace.
func (r *TechnicalTokenReconciler) mapSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	if !r.Options.IsCredentialsNamespace(obj.GetNamespace()) {
		return nil
	}
	tts := &jetonv1alpha1.TechnicalTokenList{}
	if err := r.List(ctx, tts, client.InNamespace(obj.GetNamespace()), client.MatchingFields{IndexTokenSecret: obj.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "listing TechnicalTokens by token Secret")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(tts.Items))
	for i := range tts.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&tts.Items[i])})
	}
	return reqs
}

// mapHabilitation finds the TechnicalTokens holding the token a Habilitation holds or held.
func (r *TechnicalTokenReconciler) mapHabilitation(ctx context.Context, obj client.Object) []reconcile.Request {
	h, ok := obj.(*jetonv1alpha1.Habilitation)
	if !ok {
		return nil
	}
	var reqs []reconcile.Request
	for _, fp := range []string{h.Status.TokenFingerprint, r.bindings.sourceFingerprint(ctx, h.Namespace, h.Spec.TokenSecretRef)} {
		if fp == "" {
			continue
		}
		tts := &jetonv1alpha1.TechnicalTokenList{}
		if err := r.List(ctx, tts, client.MatchingFields{IndexTokenFingerprint: fp}); err != nil {
			log.FromContext(ctx).Error(err, "listing TechnicalTokens by token fingerprint")
			continue
		}
		for i := range tts.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&tts.Items[i])})
		}
	}
	return reqs
}

// ptrTime returns t, truncated to the second as the API server stores it, so that status
// compares equal to what was read back and is not rewritten for nothing.
func ptrTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t.Truncate(time.Second))
	return &mt
}

func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 {
		return b
	}
	return min(a, b)
}
