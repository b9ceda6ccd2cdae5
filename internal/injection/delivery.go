package injection

import (
	"crypto/sha256"
	"encoding/hex"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
)

// EffectiveDelivery is the delivery of h: its spec.delivery, else the operator's default
// (--default-delivery), else Direct.
func EffectiveDelivery(h *jetonv1alpha1.Habilitation, def jetonv1alpha1.Delivery) jetonv1alpha1.Delivery {
	switch {
	case h.Spec.Delivery != "":
		return h.Spec.Delivery
	case def != "":
		return def
	}
	return jetonv1alpha1.DeliveryDirect
}

// Delivered is what the injected Secret gives the client's workloads: the value of its
// token key, of its base-URL key, and the fingerprint recorded for it (the Secret's
// jeton.dev/token-fingerprint annotation and status.deliveredFingerprint). Workloads
// restart when the fingerprint changes, so it covers everything they must read again.
type Delivered struct {
	Token, BaseURL, Fingerprint string
}

// DirectDelivery delivers the API token itself (fingerprint tokenFP) and the API's base URL.
func DirectDelivery(token, tokenFP, baseURL string) Delivered {
	return Delivered{Token: token, BaseURL: baseURL, Fingerprint: tokenFP}
}

// GatewayDelivery delivers a gateway credential and the gateway's URL: the API token
// never reaches the client namespace. The fingerprint covers both (a new credential or a
// new gateway URL restarts the workloads; a new API token changes neither). It is the
// shape of a token fingerprint (16 hex digits, what the restarted-for annotation takes)
// and, being a truncated SHA-256 of a 256-bit HMAC, tells nothing about the credential.
func GatewayDelivery(credential, gatewayURL string) Delivered {
	sum := sha256.Sum256([]byte("jeton gateway delivery\x00" + credential + "\x00" + gatewayURL))
	return Delivered{Token: credential, BaseURL: gatewayURL, Fingerprint: hex.EncodeToString(sum[:8])}
}

// PreviousDelivered is the fingerprint of what h's injected Secret delivered when status
// was last written: status.deliveredFingerprint, kept when a refusal removes the Secret (the
// workloads still hold what they read: a new delivery restarts them). A status written
// before that field existed (Direct delivery only) with a Secret injected gives the token's
// fingerprint; without one, nothing: a token recorded by a refusal was never delivered,
// and its first delivery must restart nothing.
func PreviousDelivered(st *jetonv1alpha1.HabilitationStatus) string {
	if st.DeliveredFingerprint != "" || st.TargetSecret == nil {
		return st.DeliveredFingerprint
	}
	return st.TokenFingerprint
}

// GatewayNotConfigured refuses a Gateway delivery when the operator has no gateway URL.
// It removes nothing: the Secret injected before (if any) stays as it is, since the fix is
// the operator's flag, not the Habilitation, and failing closed would cut every client the
// vendor moves at once with --default-delivery=Gateway.
func GatewayNotConfigured(h *jetonv1alpha1.Habilitation) *conditions.Verdict {
	source := "spec.delivery"
	if h.Spec.Delivery == "" {
		source = "the operator's --default-delivery"
	}
	return stalled(jetonv1alpha1.ReasonGatewayNotConfigured,
		"the delivery is Gateway (%s) but the operator has no --gateway-url: there is no gateway to point BASE_URL at. Set the operator's --gateway-url (the URL of the jeton-gateway Service), or set spec.delivery to Direct. The injected Secret, if any, is left as it is meanwhile.",
		source)
}
