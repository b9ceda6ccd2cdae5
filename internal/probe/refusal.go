package probe

import (
	"fmt"
	"slices"
	"strings"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
	"github.com/jeton-dev/jeton/internal/injection"
)

// NamespaceNotAllowed refuses a TechnicalToken outside the credentials namespaces: it is
// neither read nor probed.
func NamespaceNotAllowed(tt *jetonv1alpha1.TechnicalToken, credentialsNamespaces []string) *conditions.Verdict {
	if slices.Contains(credentialsNamespaces, tt.Namespace) {
		return nil
	}
	return &conditions.Verdict{State: conditions.Stalled, Reason: jetonv1alpha1.ReasonNamespaceNotAllowed, Warning: true,
		Message: fmt.Sprintf("TechnicalTokens are honoured only in the credentials namespaces (%s); this one is not probed. Move it and its token Secret to a credentials namespace, or add %q to the operator's --credentials-namespaces flag.",
			strings.Join(credentialsNamespaces, ", "), tt.Namespace)}
}

// Destination is where a TechnicalToken's probes would carry its token (fingerprint
// Fingerprint) and who else holds that token: what decides, once the token is read,
// whether it may be probed at all.
type Destination struct {
	Fingerprint string
	// BaseURL is where probes go; "" when none is known for the API and environment.
	BaseURL string
	// HostRefused is the API host policy's refusal of BaseURL, if any.
	HostRefused error
	// LabelledFor are the clients a Secret holding the token is labelled for
	// (jeton.dev/client): the credentials admin's word that it is a client's token.
	LabelledFor []string
	// Binding is the "one token, one client" verdict on the token.
	Binding injection.Verdict
}

// Refusal is why a TechnicalToken is not probed.
type Refusal struct {
	conditions.Verdict
	// KeepToken: status keeps what the token says about itself (its fingerprint, which
	// the "one token, one client" index reads, and its expiry); otherwise it is cleared.
	KeepToken bool
}

// Refuse says why TechnicalToken tt, whose token is read, may not be probed at d, or nil
// when it may: nothing is sent to a host the policy refuses, and a client's token is never
// sent anywhere as a technical token. Every refusal is Stalled: only a human can fix it.
func Refuse(tt *jetonv1alpha1.TechnicalToken, d Destination) *Refusal {
	source := tt.Namespace + "/" + tt.Spec.TokenSecretRef.Name
	stalled := func(reason string, keep bool, format string, args ...any) *Refusal {
		return &Refusal{KeepToken: keep, Verdict: conditions.Verdict{State: conditions.Stalled, Reason: reason, Warning: true,
			Message: fmt.Sprintf(format, args...)}}
	}
	switch {
	case d.BaseURL == "":
		return stalled(jetonv1alpha1.ReasonBaseURLMissing, true,
			"no base URL is known for API %s in environment %q: set spec.baseURL. Nothing is probed.", tt.Spec.API, tt.Spec.Environment)
	case d.HostRefused != nil:
		return stalled(jetonv1alpha1.ReasonAPIHostNotAllowed, true, "spec.baseURL is refused: %v. Nothing is probed.", d.HostRefused)
	case len(d.LabelledFor) > 0:
		return stalled(jetonv1alpha1.ReasonSecretClientMismatch, false,
			"the token in Secret %s is labelled for client %s (%s on a Secret holding it): a client's token is never used as a technical token, so it is not probed. Reference the vendor's own technical token Secret.",
			source, strings.Join(d.LabelledFor, ", "), jetonv1alpha1.LabelClient)
	case d.Binding.Outcome != injection.Allowed:
		with := d.Binding.With
		return stalled(jetonv1alpha1.ReasonTokenConflict, true,
			"the token in Secret %s (fingerprint %s) is bound to client %q by Habilitation %s/%s, created before this TechnicalToken or in the same second: a client's token is never used as a technical token, so it is not probed. Put the vendor's own technical token for %s in the Secret.",
			source, d.Fingerprint, with.Client, with.Namespace, with.Name, tt.Spec.API)
	}
	return nil
}
