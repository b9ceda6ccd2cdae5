package controllers

import (
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// requestedAt returns the on-demand request of obj (annotation jeton.dev/requested-at), or
// "" when there is none. A value too long for status is no request: copying it would make
// every status write fail validation.
func requestedAt(obj client.Object) string {
	v := obj.GetAnnotations()[jetonv1alpha1.AnnotationRequestedAt]
	if len(v) > jetonv1alpha1.RequestedAtMaxLength {
		return ""
	}
	return v
}

// handleRequest records obj's on-demand request as handled in st. It changes nothing when
// there is no request or it is already recorded, so a pass with nothing requested writes
// nothing more than before.
func handleRequest(obj client.Object, st *jetonv1alpha1.RequestStatus) {
	if req := requestedAt(obj); req != "" {
		st.LastHandledRequestedAt = req
	}
}

// requestedAtChanged passes the updates that change the jeton.dev/requested-at annotation,
// for controllers that otherwise ignore metadata-only updates (GenerationChangedPredicate):
// a request gets its pass, while other annotation and label edits still cost none.
type requestedAtChanged struct{ predicate.Funcs }

func (requestedAtChanged) Update(e event.UpdateEvent) bool {
	if e.ObjectOld == nil || e.ObjectNew == nil {
		return false
	}
	req := requestedAt(e.ObjectNew)
	return req != "" && req != requestedAt(e.ObjectOld)
}
