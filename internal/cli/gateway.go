package cli

import (
	"fmt"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// GatewayRotationStamp is the value `rotate-gateway-credential` writes in the
// jeton.dev/gateway-credential-rotation annotation: the time, in UTC, with nanoseconds so
// that two rotations in a row differ (the credential is bound to the value).
func GatewayRotationStamp(now time.Time) string {
	return now.UTC().Format(time.RFC3339Nano)
}

// GatewayRotationPatch is the merge patch setting the rotation annotation to stamp.
func GatewayRotationPatch(stamp string) []byte {
	return fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, jetonv1alpha1.AnnotationGatewayCredentialRotation, stamp)
}

// GatewayRotationRefused says why the gateway credential of h cannot be rotated, or nil
// when it can: its delivery in force (status.delivery, what the operator last delivered)
// must be Gateway. Rotating anything else would change nothing in the client namespace
// and suggest a protection that is not there.
func GatewayRotationRefused(h *jetonv1alpha1.Habilitation) error {
	ref := "Habilitation " + h.Namespace + "/" + h.Name
	switch {
	case h.DeletionTimestamp != nil:
		return fmt.Errorf("%s is being deleted: there is no gateway credential to rotate", ref)
	case h.Status.Delivery == jetonv1alpha1.DeliveryGateway:
		return nil
	case h.Status.Delivery == "":
		return fmt.Errorf("%s has no delivery in force yet (status.delivery is empty: the operator has not injected it): there is no gateway credential to rotate", ref)
	}
	return fmt.Errorf("%s is delivered %s (status.delivery), not through the gateway: its Secret holds the API token itself, so there is no gateway credential to rotate. To rotate the token, put a new one in its token Secret; to move it to the gateway, set spec.delivery: Gateway", ref, h.Status.Delivery)
}
