package controllers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// TestFinish covers the one status path of the three reconcilers: what is written, what is
// told, and in which order, whatever the kind.
func TestFinish(t *testing.T) {
	ready := conditions.Verdict{State: conditions.Ready, Reason: jetonv1alpha1.ReasonInjected, Message: "injected"}
	rotated := func(o *outcome) { o.tell(false, eventRotated, "Rotate", "new token") }
	tests := []struct {
		name string
		// stale: the pass read an older copy than the API server holds.
		stale bool
		out   outcome
		// want: Ready's reason and the fingerprint stored; the events told; the error.
		wantReason, wantFP string
		wantEvents         []string
		wantErr, wantWrite bool
		wantRequeue        time.Duration
	}{
		{name: "decided: status written, then its events and the transition's",
			out:        outcome{Verdict: ready, announce: true, requeueAfter: time.Hour},
			wantReason: jetonv1alpha1.ReasonInjected, wantFP: "new", wantEvents: []string{"Normal Rotated new token", "Normal Injected injected"},
			wantWrite: true, wantRequeue: time.Hour},
		{name: "transient error: status keeps its record, Ready says the error, nothing told",
			out:        outcome{Verdict: ready, announce: true, err: errors.New("the API server said 503")},
			wantReason: jetonv1alpha1.ReasonInternalError, wantFP: "old", wantErr: true, wantWrite: true},
		{name: "stale copy: the write conflicts, nothing told, looked at again",
			stale: true, out: outcome{Verdict: ready, announce: true},
			wantReason: jetonv1alpha1.ReasonTokenExpiringSoon, wantFP: "old", wantRequeue: time.Second},
		{name: "waiting: nothing written or told",
			out:        outcome{waiting: true, requeueAfter: restartWait},
			wantReason: jetonv1alpha1.ReasonTokenExpiringSoon, wantFP: "old", wantRequeue: restartWait},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			stored := &jetonv1alpha1.Habilitation{ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: "h", Generation: 2}}
			stored.Status.TokenFingerprint = "old"
			conditions.MarkReady(&stored.Status.Conditions, 1, jetonv1alpha1.ReasonTokenExpiringSoon, "expiring")
			c := fake.NewClientBuilder().WithScheme(testenv.NewScheme()).WithObjects(stored).WithStatusSubresource(stored).Build()
			rec := events.NewFakeRecorder(10)
			h := &jetonv1alpha1.Habilitation{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(stored), h); err != nil {
				t.Fatal(err)
			}
			if tt.stale {
				newer := h.DeepCopy()
				newer.Status.ObservedGeneration = 1
				if err := c.Status().Update(ctx, newer); err != nil {
					t.Fatal(err)
				}
			}
			orig := h.DeepCopy()
			h.Status.TokenFingerprint = "new"
			out := tt.out
			rotated(&out)

			res, err := finish(ctx, c, rec, h, orig, out)
			if (err != nil) != tt.wantErr || res.RequeueAfter != tt.wantRequeue {
				t.Errorf("finish = %+v, %v; want requeue %v, error %v", res, err, tt.wantRequeue, tt.wantErr)
			}
			got := &jetonv1alpha1.Habilitation{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(stored), got); err != nil {
				t.Fatal(err)
			}
			readyCond := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady)
			if readyCond.Reason != tt.wantReason || got.Status.TokenFingerprint != tt.wantFP {
				t.Errorf("stored Ready %s (%q), fingerprint %s; want %s, %s", readyCond.Reason, readyCond.Message, got.Status.TokenFingerprint, tt.wantReason, tt.wantFP)
			}
			if wrote := got.Status.ObservedGeneration == 2; wrote != tt.wantWrite {
				t.Errorf("observedGeneration %d: written %v, want %v", got.Status.ObservedGeneration, wrote, tt.wantWrite)
			}
			if tt.wantErr && (readyCond.Status != metav1.ConditionFalse || !strings.Contains(readyCond.Message, "503; retrying")) {
				t.Errorf("Ready %s %q, want False naming the error", readyCond.Status, readyCond.Message)
			}
			close(rec.Events)
			var told []string
			for e := range rec.Events {
				told = append(told, e)
			}
			if strings.Join(told, "|") != strings.Join(tt.wantEvents, "|") {
				t.Errorf("events %q, want %q", told, tt.wantEvents)
			}
		})
	}
}
