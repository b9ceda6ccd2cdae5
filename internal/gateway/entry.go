package gateway

import (
	"fmt"
	"net/url"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/publicapi"
	"github.com/jeton-dev/jeton/internal/tokensource"
)

// Entry is what the gateway knows of one Habilitation, built when the Habilitation, its
// token Secret or its PublicClient changes, so that a request costs one map lookup.
type Entry struct {
	UID, Namespace, Name, Client string
	API                          jetonv1alpha1.API
	// Upstream is the API base URL (checked against the host policy); Host its canonical
	// host, the key of the per-address budget.
	Upstream *url.URL
	Host     string
	SIRET    string
	// Binding is what the credential is bound to of the credential-rotation annotation
	// (Binding of its value), computed here once rather than per request.
	Binding        string
	AllowMutations bool
	// Token is the API token the manager last vetted for this Habilitation; Fingerprint its
	// fingerprint. Empty when none is.
	Token, Fingerprint string
	// NotReady, when set, is why the Habilitation is not served (a 503 with this message).
	NotReady string
}

// BuildEntry decides what the gateway does for Habilitation h, given its token Secret src
// and PublicClient c (nil when absent) and prev, the entry built last time (nil if none).
//
// The gateway serves only what the manager vouched for in status, which only the manager
// writes (editors may read status, not write it): Ready for the current generation, the
// delivery Gateway, and a token whose fingerprint is status.tokenFingerprint. A Secret
// changed to a token the manager has not checked yet (a rotation in progress, or another
// client's token) is not used: until the manager records the new fingerprint, requests go
// on with the token last vetted (prev), which the API still accepts during a rotation.
func BuildEntry(h *jetonv1alpha1.Habilitation, src *corev1.Secret, c *jetonv1alpha1.PublicClient, policy publicapi.HostPolicy, prev *Entry) *Entry {
	e := &Entry{
		UID: string(h.UID), Namespace: h.Namespace, Name: h.Name, Client: h.Spec.ClientRef.Name, API: h.Spec.API,
		Binding: Binding(h.Annotations[jetonv1alpha1.AnnotationGatewayCredentialRotation]),
	}
	if h.Spec.Gateway != nil {
		e.AllowMutations = h.Spec.Gateway.AllowMutations
	}
	notReady := func(format string, args ...any) *Entry {
		e.NotReady = fmt.Sprintf("Habilitation %s/%s: ", h.Namespace, h.Name) + fmt.Sprintf(format, args...)
		return e
	}
	if !h.DeletionTimestamp.IsZero() {
		return notReady("being deleted; access has ended.")
	}
	if h.Status.Delivery != jetonv1alpha1.DeliveryGateway {
		return notReady("its delivery is %q, not Gateway: its workloads hold the token and call the API directly.", h.Status.Delivery)
	}
	ready := meta.FindStatusCondition(h.Status.Conditions, jetonv1alpha1.ConditionReady)
	switch {
	case ready == nil || ready.ObservedGeneration != h.Generation:
		return notReady("not checked by the operator yet (Ready not reported for generation %d); retry shortly.", h.Generation)
	case ready.Status != "True":
		// The reason is one of jeton's (a bounded enum written by the manager); the message
		// is in the Habilitation's status for whoever may read it.
		return notReady("not Ready (reason %s): `kubectl jeton status` or `kubectl describe habilitation` says why.", truncate(ready.Reason, 64))
	}
	if c == nil || c.Spec.SIRET == "" {
		return notReady("its PublicClient %q is not known to the gateway yet; retry shortly.", h.Spec.ClientRef.Name)
	}
	e.SIRET = c.Spec.SIRET
	base := publicapi.BaseURL(h.Spec.API, h.Spec.Environment, h.Spec.BaseURL)
	if err := policy.Check(h.Spec.API, base); err != nil {
		return notReady("its API base URL is not allowed to the gateway (%v).", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return notReady("its API base URL does not parse.")
	}
	e.Upstream, e.Host = u, publicapi.CanonicalHost(base)

	want := h.Status.TokenFingerprint
	reader := tokensource.Reader{Namespace: h.Namespace, Ref: h.Spec.TokenSecretRef, API: h.Spec.API, Client: h.Spec.ClientRef.Name}
	if tok, v := reader.Read(src); v == nil && tok.Fingerprint == want {
		e.Token, e.Fingerprint = tok.Value, tok.Fingerprint
		return e
	}
	if prev != nil && prev.Token != "" && prev.Fingerprint == want && prev.UID == e.UID {
		e.Token, e.Fingerprint = prev.Token, prev.Fingerprint
		return e
	}
	return notReady("its token has changed and the operator has not checked the new one yet; retry shortly.")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
