package injection

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
	"github.com/jeton-dev/jeton/internal/expiry"
	"github.com/jeton-dev/jeton/internal/token"
)

// The decisions of a Habilitation pass, one per check, in the order the reconciler runs
// them: each returns the verdict of a refusal, or nil when the check passes. A refusal
// removes the injected Secret (fail closed) unless it says otherwise.

// LabelRefusalKept is the message of a resource refused for a label, on every pass after.
const LabelRefusalKept = "its token Secret was labelled (jeton.dev/client) for another client, so it was refused, and the refusal stands whatever the label says now: a resource placed early on a Secret must not take a client's token when the label goes. Delete and re-create it once it references its own token."

// FailClosed ends the message of a refusal that removed (or never wrote) the injected
// Secret. The same words whether or not the pass removed one: a stable message makes no
// status write on the next pass.
const FailClosed = " Nothing is injected meanwhile (fail closed)."

func notReady(reason, format string, args ...any) *conditions.Verdict {
	return &conditions.Verdict{State: conditions.NotReady, Reason: reason, Message: fmt.Sprintf(format, args...), Warning: true}
}

// stalled is for states only a human can fix (kstatus: Failed).
func stalled(reason, format string, args ...any) *conditions.Verdict {
	return &conditions.Verdict{State: conditions.Stalled, Reason: reason, Message: fmt.Sprintf(format, args...), Warning: true}
}

// NamespaceNotAllowed refuses a Habilitation outside the credentials namespaces.
func NamespaceNotAllowed(h *jetonv1alpha1.Habilitation, credentialsNamespaces []string) *conditions.Verdict {
	if slices.Contains(credentialsNamespaces, h.Namespace) {
		return nil
	}
	return stalled(jetonv1alpha1.ReasonNamespaceNotAllowed,
		"Habilitations are honoured only in the credentials namespaces (%s); nothing is injected from namespace %q. Move this Habilitation and its token Secret to a credentials namespace, or add %q to the operator's --credentials-namespaces flag.",
		strings.Join(credentialsNamespaces, ", "), h.Namespace, h.Namespace)
}

// RefusedForLabel keeps the refusal of a resource once refused for a label, whatever the
// label says now: its conditions, jeton's own record, say so.
func RefusedForLabel(conds []metav1.Condition) *conditions.Verdict {
	c := meta.FindStatusCondition(conds, jetonv1alpha1.ConditionReady)
	if c == nil || c.Reason != jetonv1alpha1.ReasonSecretClientMismatch {
		return nil
	}
	return stalled(jetonv1alpha1.ReasonSecretClientMismatch, "%s", LabelRefusalKept)
}

// ClientProblem judges the Habilitation's client c (nil when it does not exist);
// namespaceProblem says why jeton must not write into the client's namespace ("" when it
// may). wait is true when the Habilitation should wait silently instead: it and its client
// are new (applied together by a GitOps sync or a bulk import), the client has not
// reported yet, and grace has not run out since the Habilitation's creation.
func ClientProblem(now time.Time, h *jetonv1alpha1.Habilitation, c *jetonv1alpha1.PublicClient, namespaceProblem string, grace time.Duration) (v *conditions.Verdict, wait bool) {
	switch {
	case c == nil:
		return notReady(jetonv1alpha1.ReasonClientNotFound,
			"PublicClient %q does not exist: create it, or fix spec.clientRef.name (immutable: recreate the Habilitation).", h.Spec.ClientRef.Name), false
	case !c.DeletionTimestamp.IsZero():
		return notReady(jetonv1alpha1.ReasonClientDeleting,
			"PublicClient %q is being deleted; its tokens are no longer injected.", c.Name), false
	case namespaceProblem == "":
		return nil, false
	case ClientSettingUp(c) && meta.FindStatusCondition(h.Status.Conditions, jetonv1alpha1.ConditionReady) == nil &&
		now.Sub(h.CreationTimestamp.Time) < grace:
		return nil, true
	}
	return notReady(jetonv1alpha1.ReasonClientNotReady, "%s See the PublicClient's Ready condition.", namespaceProblem), false
}

// ClientSettingUp reports whether the PublicClient has not yet reported on its current
// generation (its reconciler has not run yet): its namespace may simply not exist yet.
func ClientSettingUp(c *jetonv1alpha1.PublicClient) bool {
	ready := meta.FindStatusCondition(c.Status.Conditions, jetonv1alpha1.ConditionReady)
	return ready == nil || ready.ObservedGeneration < c.Generation
}

// BindingProblem judges "one token, one client" for the token fp of h: verdict is the
// arbitration among every resource holding it, labelledFor the clients named by a
// jeton.dev/client label on a Secret holding it.
func BindingProblem(h *jetonv1alpha1.Habilitation, fp string, verdict Verdict, labelledFor []string) *conditions.Verdict {
	src := h.Namespace + "/" + h.Spec.TokenSecretRef.Name
	client := h.Spec.ClientRef.Name
	if len(labelledFor) > 0 && (len(labelledFor) > 1 || labelledFor[0] != client) {
		return stalled(jetonv1alpha1.ReasonSecretClientMismatch,
			"the token in Secret %s (fingerprint %s) is labelled for client %s (%s on a Secret holding it): it is not client %q's. Reference client %q's own token Secret.",
			src, fp, strings.Join(labelledFor, ", "), jetonv1alpha1.LabelClient, client, client)
	}
	switch verdict.Outcome {
	case TechnicalTokenReuse:
		return stalled(jetonv1alpha1.ReasonTechnicalTokenReuse,
			"the token in Secret %s (fingerprint %s) is the technical token of TechnicalToken %s/%s, created before this Habilitation or in the same second: a technical token must never reach a client workload. Put this client's own token in the Secret.",
			src, fp, verdict.With.Namespace, verdict.With.Name)
	case TokenConflict:
		return stalled(jetonv1alpha1.ReasonTokenConflict,
			"the token in Secret %s (fingerprint %s) is also bound to client %q by Habilitation %s/%s, created before this one or in the same second: a token must serve one client only. Put client %q's own token in the Secret.",
			src, fp, verdict.With.Client, verdict.With.Namespace, verdict.With.Name, client)
	}
	return nil
}

// HostRefused refuses a base URL the host policy refuses (err, from HostPolicy.Check).
func HostRefused(err error) *conditions.Verdict {
	if err == nil {
		return nil
	}
	return stalled(jetonv1alpha1.ReasonAPIHostNotAllowed, "spec.baseURL is refused: %v.", err)
}

// TargetClash refuses to write Secret namespace/name: it exists and is not this
// Habilitation's. It is left untouched.
func TargetClash(namespace, name string) *conditions.Verdict {
	return stalled(jetonv1alpha1.ReasonTargetSecretConflict,
		"Secret %s/%s already exists and jeton does not manage it for this Habilitation, so it is left untouched: delete or rename it, or choose another spec.target.secretName.", namespace, name)
}

// Rotated reports whether workloads must be restarted for the token fp: status, jeton's
// own record, names another token. Nothing a tenant can write counts: an edited
// fingerprint annotation on the injected Secret is drift, repaired without a restart.
// legacyFP is the token's fingerprint as recorded before canonical fingerprints: the same
// token, so no restart.
func Rotated(fp, statusFP, legacyFP string) bool {
	return statusFP != "" && statusFP != fp && statusFP != legacyFP
}

// IsInjected reports whether a Ready reason is one of an injected token.
func IsInjected(reason string) bool {
	switch reason {
	case jetonv1alpha1.ReasonInjected, jetonv1alpha1.ReasonTokenExpiringSoon, jetonv1alpha1.ReasonTokenExpired, jetonv1alpha1.ReasonScopesMissing:
		return true
	}
	return false
}

// Judge gives the verdict on an injected token, from h's status (its token status and
// target Secret) and spec: expiry first, then scopes. next is when the verdict next
// changes by itself (0: never); callers look again just after it. Messages carry absolute
// dates only, never "in N days", so they do not change (and cost a status write) as time
// passes.
func Judge(now time.Time, h *jetonv1alpha1.Habilitation) (v conditions.Verdict, next time.Duration) {
	st := h.Status
	ev := expiry.EvaluateResource(now, st.ExpiresAt, h.Spec.RenewBefore)
	expiresAt := ev.Date
	var target string
	if st.TargetSecret != nil {
		target = st.TargetSecret.Namespace + "/" + st.TargetSecret.Name
	}
	source := h.Namespace + "/" + h.Spec.TokenSecretRef.Name
	// In Gateway delivery the Secret holds a gateway credential: the token itself is with
	// jeton, and the gateway sends it.
	injected, stays := "injected into Secret "+target, "The token stays in Secret "+target+" meanwhile."
	if st.Delivery == jetonv1alpha1.DeliveryGateway {
		injected = "served by the gateway to the workloads of Secret " + target + " (gateway credential)"
		stays = "The gateway keeps sending it meanwhile for the workloads of Secret " + target + "."
	}
	var missing []string
	if h.Spec.API != jetonv1alpha1.DemarchesNumeriques {
		missing = token.MissingScopes(st.Scopes, h.Spec.ExpectedScopes)
	}
	switch {
	case ev.State == expiry.Expired:
		// An expired token is harmless, so it stays injected: workloads get a clear 401
		// from the API rather than a missing Secret.
		v = *stalled(jetonv1alpha1.ReasonTokenExpired,
			"the token (fingerprint %s) expired at %s by the expiry it carries (or spec.expiresAt): renew it on the API portal and put the new token in Secret %s. If it was prolonged instead, the API still accepts it (it reads the expiry from its own records): put the new token string from the portal in Secret %s all the same, so that jeton tracks the real expiry. %s",
			st.TokenFingerprint, expiresAt, source, source, stays)
	case len(missing) > 0:
		// Still this client's own token, so it stays injected; calls needing the missing
		// scopes will fail until the habilitation is extended.
		v = *stalled(jetonv1alpha1.ReasonScopesMissing,
			"the token (fingerprint %s) lacks scopes required by spec.expectedScopes: %s. It is still %s, but calls needing these scopes will be refused: extend the habilitation (DataPass) and put the new token in Secret %s, or fix spec.expectedScopes.",
			st.TokenFingerprint, strings.Join(missing, ", "), injected, source)
	case ev.State == expiry.ExpiringSoon:
		v = conditions.Verdict{State: conditions.Ready, Reason: jetonv1alpha1.ReasonTokenExpiringSoon, Warning: true,
			Message: fmt.Sprintf("Token (fingerprint %s) %s, but it expires at %s: renew it on the API portal and put the new token in Secret %s before then.",
				st.TokenFingerprint, injected, expiresAt, source)}
	case ev.State == expiry.Unknown:
		v = conditions.Verdict{State: conditions.Ready, Reason: jetonv1alpha1.ReasonInjected,
			Message: fmt.Sprintf("Token (fingerprint %s) %s. Its expiry is unknown: set spec.expiresAt to be warned before it expires.", st.TokenFingerprint, injected)}
	default:
		v = conditions.Verdict{State: conditions.Ready, Reason: jetonv1alpha1.ReasonInjected,
			Message: fmt.Sprintf("Token (fingerprint %s) %s; it expires at %s.", st.TokenFingerprint, injected, expiresAt)}
	}
	return v, ev.Next
}

// HasForeignKeys reports whether have holds a key that want does not: keys added by hand
// to an injected Secret, which server-side apply cannot remove.
func HasForeignKeys(have, want map[string][]byte) bool {
	for k := range have {
		if _, ok := want[k]; !ok {
			return true
		}
	}
	return false
}
