package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// waitFor is testenv.WaitFor, by the short name the package's tests call.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) error) {
	t.Helper()
	testenv.WaitFor(t, timeout, what, cond)
}

// uniqueName returns a DNS-label name with a random suffix, for test isolation.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%s", prefix, rand.String(6))
}

func namespaceObject(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// waitEvent waits for an Event of the given type and reason about obj (of kind) and
// returns its note.
func waitEvent(t *testing.T, timeout time.Duration, kind string, obj client.Object, eventType, reason string) string {
	t.Helper()
	var note string
	waitFor(t, timeout, fmt.Sprintf("event %s/%s about %s %s", eventType, reason, kind, obj.GetName()), func(ctx context.Context) error {
		var list eventsv1.EventList
		if err := k8sClient.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Kind == kind && e.Regarding.Name == obj.GetName() && e.Type == eventType && e.Reason == reason {
				note = e.Note
				return nil
			}
		}
		return fmt.Errorf("not found among %d events", len(list.Items))
	})
	return note
}

// readyIs checks that the Ready condition has status and reason and that both the condition
// and the status describe the current generation.
func readyIs(conds []metav1.Condition, generation, observed int64, status metav1.ConditionStatus, reason string) error {
	c := meta.FindStatusCondition(conds, jetonv1alpha1.ConditionReady)
	switch {
	case c == nil:
		return fmt.Errorf("no Ready condition")
	case c.Status != status || c.Reason != reason:
		return fmt.Errorf("Ready=%s/%s: %s", c.Status, c.Reason, c.Message)
	case c.ObservedGeneration != generation || observed != generation:
		return fmt.Errorf("observedGeneration %d (condition %d), generation %d", observed, c.ObservedGeneration, generation)
	}
	return nil
}

// waitNextSecond waits until the clock is past the second obj was created in: creation
// timestamps have one-second precision, and resources created in one second have no order
// ("one token, one client" refuses a tie between clients, or across kinds).
func waitNextSecond(t *testing.T, obj client.Object) {
	t.Helper()
	created := obj.GetCreationTimestamp()
	waitFor(t, 5*time.Second, "the second after "+obj.GetName()+"'s creation", func(context.Context) error {
		if !time.Now().After(created.Add(time.Second)) {
			return fmt.Errorf("still in the second %s was created in", obj.GetName())
		}
		return nil
	})
}
