package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// StatusParts returns the parts of status every jeton kind has (conditions,
// observedGeneration, the last on-demand request handled), for the reconcilers' one status
// path.
func (p *PublicClient) StatusParts() (*[]metav1.Condition, *int64, *RequestStatus) {
	return &p.Status.Conditions, &p.Status.ObservedGeneration, &p.Status.RequestStatus
}

// StatusParts returns the parts of status every jeton kind has.
func (h *Habilitation) StatusParts() (*[]metav1.Condition, *int64, *RequestStatus) {
	return &h.Status.Conditions, &h.Status.ObservedGeneration, &h.Status.RequestStatus
}

// StatusParts returns the parts of status every jeton kind has.
func (t *TechnicalToken) StatusParts() (*[]metav1.Condition, *int64, *RequestStatus) {
	return &t.Status.Conditions, &t.Status.ObservedGeneration, &t.Status.RequestStatus
}
