package probe

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
	"github.com/jeton-dev/jeton/internal/expiry"
)

// Events told on a TechnicalToken when its probes cross the failure threshold.
const (
	EventFailed    = "ProbeFailed"
	EventRecovered = "ProbeRecovered"
)

// Event is an event a probe result causes, told on its TechnicalToken.
type Event struct {
	Warning bool
	Reason  string
	Note    string
}

// Record writes a finished probe into st and returns the events it causes: ProbeFailed when
// the failures reach threshold, ProbeRecovered on the first success after that.
func Record(st *jetonv1alpha1.TechnicalTokenStatus, f Finished, threshold int32) []Event {
	at := metav1.NewTime(f.Time.UTC().Truncate(time.Second))
	st.LastProbeTime = &at
	st.LastResult = &jetonv1alpha1.ProbeResult{
		HTTPStatus: int32(f.HTTPStatus),
		Code:       f.Code,
		Reason:     f.Reason,
		Message:    f.Message,
		Latency:    &metav1.Duration{Duration: f.Latency.Round(time.Millisecond)},
	}
	if f.Succeeded() {
		failed := st.ConsecutiveFailures
		st.ConsecutiveFailures = 0
		st.LastSuccessTime = &at
		st.Privileges = f.Privileges
		if failed >= threshold {
			return []Event{{Reason: EventRecovered, Note: fmt.Sprintf("the API accepts the token again after %d failed probes", failed)}}
		}
		return nil
	}
	st.ConsecutiveFailures++
	if st.ConsecutiveFailures == threshold {
		return []Event{{Warning: true, Reason: EventFailed,
			Note: fmt.Sprintf("%d probes in a row failed, the token is not Ready: %s: %s", threshold, f.Reason, f.Message)}}
	}
	return nil
}

// DefaultThreshold is the CRD default of spec.failureThreshold.
const DefaultThreshold = 3

// Threshold is how many probes of tt may fail in a row before Ready turns False:
// spec.failureThreshold, or its default for objects written before the default existed.
func Threshold(tt *jetonv1alpha1.TechnicalToken) int32 {
	if tt.Spec.FailureThreshold < 1 {
		return DefaultThreshold
	}
	return tt.Spec.FailureThreshold
}

// Judge gives the Ready condition of a TechnicalToken that may be probed, from its status
// (the latest probe recorded, its token's expiry) and spec. next is when the verdict next
// changes by itself (0: never); callers look again just after it. Messages carry absolute
// dates only (expiry.Result.Date), never "in N days": a message that changed as time
// passes would cost a status write a day.
func Judge(now time.Time, tt *jetonv1alpha1.TechnicalToken) (v conditions.Verdict, next time.Duration) {
	st, threshold, suspended := &tt.Status, Threshold(tt), tt.Spec.Suspend
	ev := expiry.EvaluateResource(now, st.ExpiresAt, tt.Spec.RenewBefore)
	last := st.LastResult
	switch {
	case ev.State == expiry.Expired:
		v = conditions.Verdict{State: conditions.Stalled, Reason: jetonv1alpha1.ReasonTokenExpired, Warning: true,
			Message: fmt.Sprintf("the token expired at %s and the API refuses it: renew it on the API portal and update its Secret", ev.Date)}
	case last != nil && st.ConsecutiveFailures >= threshold:
		v = conditions.Verdict{State: conditions.NotReady, Reason: last.Reason, Warning: true,
			Message: fmt.Sprintf("the last %d probes failed: %s", st.ConsecutiveFailures, last.Message)}
	case st.LastSuccessTime == nil && suspended:
		return conditions.Verdict{State: conditions.Unknown, Reason: jetonv1alpha1.ReasonSuspended,
			Message: "probing is suspended (spec.suspend) and the token was never probed"}, ev.Next
	case st.LastSuccessTime == nil:
		msg := "waiting for the first successful probe"
		if last != nil {
			msg = fmt.Sprintf("%s; the last probe failed (%d of %d before Ready turns False): %s", msg, st.ConsecutiveFailures, threshold, last.Message)
		}
		v = conditions.Verdict{State: conditions.Reconciling, Reason: jetonv1alpha1.ReasonProbePending, Message: msg}
	case st.ConsecutiveFailures > 0 && last != nil:
		// Below the threshold Ready stays True; the reason and lastResult show the trouble.
		v = conditions.Verdict{State: conditions.Ready, Reason: jetonv1alpha1.ReasonProbeFailing, Warning: true,
			Message: fmt.Sprintf("the last %d of %d probes allowed to fail did fail (%s): %s", st.ConsecutiveFailures, threshold, last.Reason, last.Message)}
	case ev.State == expiry.ExpiringSoon:
		v = conditions.Verdict{State: conditions.Ready, Reason: jetonv1alpha1.ReasonTokenExpiringSoon, Warning: true,
			Message: fmt.Sprintf("the API accepts the token, but it expires at %s: renew it on the API portal and update its Secret before then", ev.Date)}
	case ev.State == expiry.Valid:
		v = conditions.Verdict{State: conditions.Ready, Reason: jetonv1alpha1.ReasonProbeSucceeded,
			Message: fmt.Sprintf("the API accepts the token; it expires at %s", ev.Date)}
	default:
		v = conditions.Verdict{State: conditions.Ready, Reason: jetonv1alpha1.ReasonProbeSucceeded, Message: "the API accepts the token"}
	}
	if suspended {
		v.Message += " (probing is suspended: this is the last known state)"
	}
	return v, ev.Next
}
