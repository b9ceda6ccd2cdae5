package controllers

import (
	"cmp"
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/budget"
	"github.com/jeton-dev/jeton/internal/metrics"
	"github.com/jeton-dev/jeton/internal/probe"
	"github.com/jeton-dev/jeton/internal/publicapi"
	"github.com/jeton-dev/jeton/internal/tokensource"
)

// probe is the pass of a TechnicalToken that may be probed at baseURL: the finished probe
// recorded, the next one scheduled, Ready judged. seenFP is the token fingerprint status
// held before this pass.
func (r *TechnicalTokenReconciler) probe(ctx context.Context, tt *jetonv1alpha1.TechnicalToken, tok tokensource.Token, baseURL, seenFP string) outcome {
	key := client.ObjectKeyFromObject(tt)
	var out outcome
	// A new token or a new spec is probed at once rather than at the next interval.
	atOnce := seenFP != tok.Fingerprint || tt.Status.ObservedGeneration != tt.Generation
	// An on-demand request is answered by the result of a probe submitted for it, with the
	// same budget as any probe (one in flight, Retry-After, host backoff), and no sooner
	// than the request floor after the last probe (see requestDue); or at once when no
	// probe can be sent (suspended).
	req := requestedAt(tt)
	pending := req != "" && req != tt.Status.LastHandledRequestedAt
	// A finished probe about this very token goes into status; one about a token that has
	// since been replaced says nothing about the new one and is dropped.
	if f, ok := r.Executor.Result(key); ok {
		if f.Fingerprint == tok.Fingerprint {
			for _, e := range probe.Record(&tt.Status, f, probe.Threshold(tt)) {
				out.tell(e.Warning, e.Reason, "Probe", e.Note)
			}
			recordHold(&tt.Status, f)
			out.after = append(out.after, r.recorded(ctx, tt, f))
			atOnce = atOnce || f.Generation != tt.Generation
			pending = pending && f.Request != req
		} else {
			r.Executor.Consume(key)
			atOnce = true
		}
	}
	now := r.now()
	var next time.Duration
	out.Verdict, next = probe.Judge(now, tt, r.hostHealth(ctx, tt))
	out.announce = announcedReasons[out.Reason]
	if next > 0 {
		out.requeueAfter = next + time.Second // just past the threshold
	}
	if tt.Spec.Suspend {
		r.Executor.Cancel(key)
		tt.Status.NextProbeTime = nil
	} else {
		if !pending {
			req = ""
		}
		r.schedule(tt, tok, baseURL, now, atOnce, req, &out)
		out.keepRequest = pending
	}
	out.requeueAfter = min(cmp.Or(out.requeueAfter, maxRequeue), maxRequeue)
	return out
}

// hostHealth is what the latest probes of every TechnicalToken of tt's API host say about
// the host, tt's own result of this pass included. A listing error only costs the host
// view (tt alone then speaks for its host): it never fails the pass.
func (r *TechnicalTokenReconciler) hostHealth(ctx context.Context, tt *jetonv1alpha1.TechnicalToken) probe.HostHealth {
	host := probe.HostOfToken(tt)
	self := tt.DeepCopy()
	// tt's status is this pass's: it describes tt's current spec.
	self.Status.ObservedGeneration = self.Generation
	if self.Status.NextProbeTime == nil && !self.Spec.Suspend {
		// tt is on its way to be probed (this pass schedules it): it counts for its host.
		self.Status.NextProbeTime = &metav1.Time{Time: r.now()}
	}
	all := []jetonv1alpha1.TechnicalToken{*self}
	tts := &jetonv1alpha1.TechnicalTokenList{}
	if err := r.List(ctx, tts); err != nil {
		log.FromContext(ctx).Error(err, "listing TechnicalTokens for the health of their API host")
	} else {
		for i := range tts.Items {
			if tts.Items[i].UID != tt.UID && probe.HostOfToken(&tts.Items[i]) == host {
				all = append(all, tts.Items[i])
			}
		}
	}
	return probe.HealthOf(probe.HostHealths(all), host)
}

// schedule sets status.nextProbeTime and, when a probe is due, hands it to the executor
// once status is written (after the previous result is consumed: the executor refuses a
// token whose result waits). atOnce ignores the last probe time; request is the on-demand
// request the probe answers ("" for none), due at the request floor.
func (r *TechnicalTokenReconciler) schedule(tt *jetonv1alpha1.TechnicalToken, tok tokensource.Token, baseURL string, now time.Time, atOnce bool, request string, out *outcome) {
	key := client.ObjectKeyFromObject(tt)
	var last *time.Time
	if tt.Status.LastProbeTime != nil && !atOnce {
		last = &tt.Status.LastProbeTime.Time
	}
	notBefore := r.notBefore(tt, tok, baseURL)
	due := probe.NextProbe(string(tt.UID), last, r.interval(tt), notBefore)
	if request != "" && !atOnce {
		var lastProbe *time.Time
		if tt.Status.LastProbeTime != nil {
			lastProbe = &tt.Status.LastProbeTime.Time
		}
		if rd := probe.RequestDue(lastProbe, r.requestFloor(), notBefore); rd.Before(due) {
			due = rd
		}
	}
	if due.After(now) {
		tt.Status.NextProbeTime = tokensource.Time(&due)
		wait := due.Sub(now)
		out.requeueAfter = min(cmp.Or(out.requeueAfter, wait), wait)
		return
	}
	job := probe.Job{Key: key, Fingerprint: tok.Fingerprint, Generation: tt.Generation, Request: request, Target: r.target(tt, tok.Value, baseURL)}
	// Refused when already queued or in flight: its result will bring us back.
	out.after = append(out.after, func() { r.Executor.Submit(job) })
	// Due now: keep a due time already passed, so the passes while the probe is in flight
	// do not rewrite status.
	if nt := tt.Status.NextProbeTime; nt == nil || nt.After(now) {
		tt.Status.NextProbeTime = tokensource.Time(&now)
	}
}

// target is what a probe of tt checks: the API's own token check at baseURL, with value.
func (r *TechnicalTokenReconciler) target(tt *jetonv1alpha1.TechnicalToken, value, baseURL string) probe.Target {
	timeout := defaultProbeTimeout
	if tt.Spec.Timeout != nil && tt.Spec.Timeout.Duration > 0 {
		timeout = tt.Spec.Timeout.Duration
	}
	var number int64
	if tt.Spec.DemarcheNumber != nil {
		number = *tt.Spec.DemarcheNumber
	}
	return probe.Target{API: tt.Spec.API, BaseURL: baseURL, Token: value, DemarcheNumber: number, Timeout: timeout}
}

// recorded is what follows a probe result once status holds it: the executor drops it (so
// the token may be probed again) and the metrics count it.
func (r *TechnicalTokenReconciler) recorded(ctx context.Context, tt *jetonv1alpha1.TechnicalToken, f probe.Finished) func() {
	return func() {
		r.Executor.Consume(client.ObjectKeyFromObject(tt))
		metrics.ObserveProbe(tt.Namespace, tt.Name, string(tt.Spec.API), string(tt.Spec.Environment), f.Reason, f.Latency)
		log.FromContext(ctx).V(1).Info("probe recorded", "result", f.Reason, "httpStatus", f.HTTPStatus,
			"code", f.Code, "latency", f.Latency, "fingerprint", tt.Status.TokenFingerprint)
	}
}

// interval is the time between probes: spec.interval, unless Options.ProbeInterval overrides it.
func (r *TechnicalTokenReconciler) interval(tt *jetonv1alpha1.TechnicalToken) time.Duration {
	if r.Options.ProbeInterval > 0 {
		return r.Options.ProbeInterval
	}
	if tt.Spec.Interval == nil {
		return defaultProbeInterval
	}
	return cmp.Or(tt.Spec.Interval.Duration, defaultProbeInterval)
}

// notBefore is the earliest time tt's token may be probed at baseURL: what the shared rate
// budget holds (the token's waits, whoever holds the token, and the host's backoff, however
// spelled), and what tt's own status recorded (a budget just restarted may not hold it yet).
func (r *TechnicalTokenReconciler) notBefore(tt *jetonv1alpha1.TechnicalToken, tok tokensource.Token, baseURL string) time.Time {
	nb := r.Executor.NotBefore(tok.Fingerprint, baseURL)
	if t := tt.Status.HostRateLimitedUntil; t != nil && t.After(nb) {
		nb = t.Time
	}
	// The token's own wait holds only while status is about this very token.
	if t := tt.Status.RateLimitedUntil; t != nil && t.After(nb) && tt.Status.TokenFingerprint == tok.Fingerprint {
		nb = t.Time
	}
	return nb
}

// requestFloor is the least time between a probe and a probe asked for on demand:
// probe.RequestFloor, or the tests' Options.RequestFloor or probe interval when shorter.
func (r *TechnicalTokenReconciler) requestFloor() time.Duration {
	if r.Options.RequestFloor > 0 {
		return r.Options.RequestFloor
	}
	if r.Options.ProbeInterval > 0 {
		return min(r.Options.ProbeInterval, probe.RequestFloor)
	}
	return probe.RequestFloor
}

// recordHold writes in status what the rate budget holds after a probe's answer, so that a
// restart or a new leader honours it (restoreHolds); an answer holding nothing clears it.
func recordHold(st *jetonv1alpha1.TechnicalTokenStatus, f probe.Finished) {
	st.RateLimitedUntil, st.HostRateLimitedUntil = nil, nil
	if !f.Hold.Token.IsZero() {
		st.RateLimitedUntil = &metav1.Time{Time: f.Hold.Token.Truncate(time.Second).Add(time.Second)}
	}
	if !f.Hold.Host.IsZero() {
		st.HostRateLimitedUntil = &metav1.Time{Time: f.Hold.Host.Truncate(time.Second).Add(time.Second)}
	}
}

// maxRestoredHold bounds a hold read back from status: status is writable by whoever may
// patch it, and a hold far in the future would stop probing a host for good.
const maxRestoredHold = 24 * time.Hour

// restoreHolds gives the budget back the holds recorded in TechnicalToken status before
// this leader started, so that no probe goes out before a Retry-After or a host backoff a
// previous leader saw has ended. It reads the API server, not the cache, which may not
// have synced.
func restoreHolds(ctx context.Context, reader client.Reader, b *budget.Budget, now time.Time) error {
	tts := &jetonv1alpha1.TechnicalTokenList{}
	if err := reader.List(ctx, tts); err != nil {
		return fmt.Errorf("listing TechnicalTokens to restore the rate-limit holds: %w", err)
	}
	limit := now.Add(maxRestoredHold)
	held := func(t *metav1.Time) time.Time {
		if t == nil || !t.After(now) {
			return time.Time{}
		}
		if t.After(limit) {
			return limit
		}
		return t.Time
	}
	for i := range tts.Items {
		tt := &tts.Items[i]
		h := budget.Hold{Token: held(tt.Status.RateLimitedUntil), Host: held(tt.Status.HostRateLimitedUntil)}
		if h.Token.IsZero() && h.Host.IsZero() {
			continue
		}
		host := probe.HostKey(publicapi.BaseURL(tt.Spec.API, tt.Spec.Environment, tt.Spec.BaseURL))
		b.Restore(host, tt.Status.TokenFingerprint, h)
	}
	return nil
}
