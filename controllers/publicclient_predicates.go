package controllers

import (
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// The event filters of the PublicClient reconciler's watches.
var (
	// deletionsOnly passes deletions alone.
	deletionsOnly = predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
	// noUpdates passes all but updates.
	noUpdates = predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }}
)

// deletionRequested passes the update that sets a deletionTimestamp, so the finalizer runs
// whether or not the API server bumped the generation.
type deletionRequested struct{ predicate.Funcs }

func (deletionRequested) Update(e event.UpdateEvent) bool {
	return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
}
