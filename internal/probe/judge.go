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
// (the latest probe recorded, its token's expiry), its spec and the health of its API host
// (what the latest probes of every token of that host say). next is when the verdict next
// changes by itself (0: never); callers look again just after it. Messages carry absolute
// dates only (expiry.Result.Date), never "in N days": a message that changed as time
// passes would cost a status write a day.
func Judge(now time.Time, tt *jetonv1alpha1.TechnicalToken, host HostHealth) (v conditions.Verdict, next time.Duration) {
	st, threshold, suspended := &tt.Status, Threshold(tt), tt.Spec.Suspend
	ev := expiry.EvaluateResource(now, st.ExpiresAt, tt.Spec.RenewBefore)
	last := st.LastResult
	failingMsg := func() string {
		if last == nil {
			return ""
		}
		return last.Message + hostNote(last.Reason, host)
	}
	// The API's answer wins over the token's own expiry: the APIs read the expiry from
	// their database, not from the token (datagouv/apistration
	// siade/app/services/jwt_token_service.rb decodes without verifying exp), so after a
	// prolongation the old string keeps working past its exp.
	// A refusal of the token since then (401, 403) withdraws that word.
	acceptedAfterExpiry := ev.State == expiry.Expired && st.LastSuccessTime != nil && st.ExpiresAt != nil &&
		st.LastSuccessTime.After(st.ExpiresAt.Time) && st.ConsecutiveFailures < threshold &&
		!(st.ConsecutiveFailures > 0 && last != nil && refusesToken(last.Reason))
	switch {
	case acceptedAfterExpiry:
		v = conditions.Verdict{State: conditions.Ready, Reason: jetonv1alpha1.ReasonTokenProlonged, Warning: true,
			Message: fmt.Sprintf("the API still accepts the token although the expiry it carries (%s) has passed: it was prolonged on the API portal, and the Secret holds the old string. Fetch the new token string from the portal and update the Secret, so that jeton tracks the real expiry", ev.Date)}
	case ev.State == expiry.Expired && last != nil && last.Reason == jetonv1alpha1.ReasonExpired:
		v = conditions.Verdict{State: conditions.Stalled, Reason: jetonv1alpha1.ReasonTokenExpired, Warning: true,
			Message: fmt.Sprintf("the token expired at %s and the API refuses it as expired: renew it on the API portal and update its Secret", ev.Date)}
	case ev.State == expiry.Expired:
		v = conditions.Verdict{State: conditions.Stalled, Reason: jetonv1alpha1.ReasonTokenExpired, Warning: true,
			Message: fmt.Sprintf("the expiry the token carries (or spec.expiresAt) passed at %s: renew it on the API portal and update its Secret. jeton keeps probing: if the API still accepts it (a prolonged token), Ready turns True", ev.Date)}
	case last != nil && st.ConsecutiveFailures >= threshold && NoAnswer(last.Reason) && host.Unreachable():
		v = conditions.Verdict{State: conditions.NotReady, Reason: jetonv1alpha1.ReasonHostUnreachable, Warning: true,
			Message: fmt.Sprintf("the last %d probes failed: %s", st.ConsecutiveFailures, unreachableMessage(host))}
	case last != nil && st.ConsecutiveFailures >= threshold:
		v = conditions.Verdict{State: conditions.NotReady, Reason: last.Reason, Warning: true,
			Message: fmt.Sprintf("the last %d probes failed: %s", st.ConsecutiveFailures, failingMsg())}
	case st.LastSuccessTime == nil && suspended:
		return conditions.Verdict{State: conditions.Unknown, Reason: jetonv1alpha1.ReasonSuspended,
			Message: "probing is suspended (spec.suspend) and the token was never probed"}, ev.Next
	case st.LastSuccessTime == nil:
		msg := "waiting for the first successful probe"
		if last != nil {
			msg = fmt.Sprintf("%s; the last probe failed (%d of %d before Ready turns False): %s", msg, st.ConsecutiveFailures, threshold, failingMsg())
		}
		v = conditions.Verdict{State: conditions.Reconciling, Reason: jetonv1alpha1.ReasonProbePending, Message: msg}
	case st.ConsecutiveFailures > 0 && last != nil:
		// Below the threshold Ready stays True; the reason and lastResult show the trouble.
		v = conditions.Verdict{State: conditions.Ready, Reason: jetonv1alpha1.ReasonProbeFailing, Warning: true,
			Message: fmt.Sprintf("the last %d of %d probes allowed to fail did fail (%s): %s", st.ConsecutiveFailures, threshold, last.Reason, failingMsg())}
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

// refusesToken reports whether a probe result is the API refusing the token itself.
func refusesToken(reason string) bool {
	switch reason {
	case jetonv1alpha1.ReasonUnauthorized, jetonv1alpha1.ReasonExpired, jetonv1alpha1.ReasonRevoked:
		return true
	}
	return false
}

// hostNote completes the message of a probe that got no answer with what the other tokens
// of its host say: raising spec.timeout helps only when the host answers others.
func hostNote(reason string, host HostHealth) string {
	switch {
	case !NoAnswer(reason):
		return ""
	case host.Unreachable():
		return "; " + unreachableMessage(host)
	case reason == jetonv1alpha1.ReasonTimeout && host.Answering():
		return "; the API answers the other tokens of this host, so it is slow for this one: raise spec.timeout if this persists"
	}
	return ""
}

// unreachableMessage says what a host that answers no token means, and what to check.
func unreachableMessage(host HostHealth) string {
	tokens := "its only technical token"
	if host.Probed > 1 {
		tokens = fmt.Sprintf("any of its %d technical tokens", host.Probed)
	}
	return fmt.Sprintf("%s answers no probe of %s (timeouts, resets or refused connections). The tokens are probably fine: suspect the vendor's address first. API Entreprise and API Particulier ban an IP address for 12 hours when 429s are ignored, and a banned address gets no answer at all; otherwise check the cluster's egress network, firewall or proxy. See the JetonAPIHostUnreachable runbook in docs/alerts.md", host.Host, tokens)
}
