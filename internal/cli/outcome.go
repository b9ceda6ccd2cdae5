package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// Handled returns the request the operator last handled for obj (status
// lastHandledRequestedAt), for the three kinds.
func Handled(obj client.Object) string {
	switch o := obj.(type) {
	case *jetonv1alpha1.PublicClient:
		return o.Status.LastHandledRequestedAt
	case *jetonv1alpha1.Habilitation:
		return o.Status.LastHandledRequestedAt
	case *jetonv1alpha1.TechnicalToken:
		return o.Status.LastHandledRequestedAt
	}
	return ""
}

// Conditions returns obj's conditions, for the three kinds.
func Conditions(obj client.Object) []metav1.Condition {
	switch o := obj.(type) {
	case *jetonv1alpha1.PublicClient:
		return o.Status.Conditions
	case *jetonv1alpha1.Habilitation:
		return o.Status.Conditions
	case *jetonv1alpha1.TechnicalToken:
		return o.Status.Conditions
	}
	return nil
}

// IsReady reports whether obj's Ready condition is True for its current generation.
func IsReady(obj client.Object) bool {
	status, _ := readyOf(Conditions(obj), obj.GetGeneration())
	return status == string(metav1.ConditionTrue)
}

// OutcomeNeedsAction reports whether a handled request left obj needing action: not Ready,
// or, for a TechnicalToken, a last probe that failed (Ready stays True below the
// failureThreshold, but the probe asked for did fail).
func OutcomeNeedsAction(obj client.Object) bool {
	if tt, ok := obj.(*jetonv1alpha1.TechnicalToken); ok {
		if lr := tt.Status.LastResult; lr != nil && lr.Reason != jetonv1alpha1.ReasonProbeSucceeded {
			return true
		}
	}
	return !IsReady(obj)
}

// KindOf names obj's kind as printed.
func KindOf(obj client.Object) string {
	switch obj.(type) {
	case *jetonv1alpha1.PublicClient:
		return KindPublicClient
	case *jetonv1alpha1.Habilitation:
		return KindHabilitation
	case *jetonv1alpha1.TechnicalToken:
		return KindTechnicalToken
	}
	return "object"
}

// Ref is kind namespace/name, or kind name for a cluster-scoped object.
func Ref(obj client.Object) string {
	if obj.GetNamespace() == "" {
		return KindOf(obj) + " " + obj.GetName()
	}
	return KindOf(obj) + " " + obj.GetNamespace() + "/" + obj.GetName()
}

// WriteOutcome prints what the operator reported once it handled a request: the Ready
// condition, then what matters for the kind.
func WriteOutcome(w io.Writer, obj client.Object, took time.Duration, now time.Time) {
	fmt.Fprintf(w, "%s: request handled in %s.\n", Ref(obj), took.Round(time.Millisecond))
	row := func(label, value string) {
		if value != "" {
			fmt.Fprintf(w, "  %-14s %s\n", label+":", value)
		}
	}
	if c := meta.FindStatusCondition(Conditions(obj), jetonv1alpha1.ConditionReady); c != nil {
		row("Ready", fmt.Sprintf("%s (%s)", c.Status, c.Reason))
		row("Message", oneLine(c.Message))
	} else {
		row("Ready", "no Ready condition yet")
	}
	expiry := func(t *metav1.Time) string {
		if t == nil {
			return ""
		}
		d := DaysLeft(now, t.Time)
		if !t.After(now) {
			return fmt.Sprintf("%s (expired %s ago)", t.UTC().Format(time.RFC3339), days(-d))
		}
		return fmt.Sprintf("%s (%s left)", t.UTC().Format(time.RFC3339), days(d))
	}
	switch o := obj.(type) {
	case *jetonv1alpha1.PublicClient:
		row("Namespace", o.Status.Namespace)
		row("Habilitations", fmt.Sprint(o.Status.Habilitations))
	case *jetonv1alpha1.Habilitation:
		row("Client", o.Spec.ClientRef.Name)
		if ts := o.Status.TargetSecret; ts != nil {
			row("Secret", ts.Namespace+"/"+ts.Name)
		} else {
			row("Secret", "none injected")
		}
		row("Fingerprint", o.Status.TokenFingerprint)
		row("Expires", expiry(o.Status.ExpiresAt))
	case *jetonv1alpha1.TechnicalToken:
		st := o.Status
		if lr := st.LastResult; lr != nil {
			parts := []string{lr.Reason}
			if lr.HTTPStatus != 0 {
				parts = append(parts, fmt.Sprintf("HTTP %d", lr.HTTPStatus))
			}
			if lr.Code != "" {
				parts = append(parts, "code "+lr.Code)
			}
			if lr.Latency != nil {
				parts = append(parts, lr.Latency.Duration.String())
			}
			if st.LastProbeTime != nil {
				parts = append(parts, "at "+st.LastProbeTime.UTC().Format(time.RFC3339))
			}
			row("Last probe", strings.Join(parts, ", "))
		} else {
			row("Last probe", "none")
		}
		if st.LastSuccessTime != nil {
			row("Last success", st.LastSuccessTime.UTC().Format(time.RFC3339))
		}
		row("Failures", fmt.Sprintf("%d in a row", st.ConsecutiveFailures))
		if st.NextProbeTime != nil {
			row("Next probe", st.NextProbeTime.UTC().Format(time.RFC3339))
		}
		row("Fingerprint", st.TokenFingerprint)
		row("Expires", expiry(st.ExpiresAt))
	}
}
