package controllers

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
)

func withAnnotations(a map[string]string) client.Object {
	return &jetonv1alpha1.TechnicalToken{ObjectMeta: metav1.ObjectMeta{Annotations: a}}
}

func TestRequestedAtChangedPredicate(t *testing.T) {
	long := strings.Repeat("1", jetonv1alpha1.RequestedAtMaxLength+1)
	tests := []struct {
		name     string
		old, new map[string]string
		want     bool
	}{
		{"new request", nil, map[string]string{jetonv1alpha1.AnnotationRequestedAt: "a"}, true},
		{"another request", map[string]string{jetonv1alpha1.AnnotationRequestedAt: "a"}, map[string]string{jetonv1alpha1.AnnotationRequestedAt: "b"}, true},
		{"same request", map[string]string{jetonv1alpha1.AnnotationRequestedAt: "a"}, map[string]string{jetonv1alpha1.AnnotationRequestedAt: "a", "x": "y"}, false},
		{"request removed", map[string]string{jetonv1alpha1.AnnotationRequestedAt: "a"}, nil, false},
		{"other annotation", nil, map[string]string{"example.com/note": "hello"}, false},
		{"too long to record", nil, map[string]string{jetonv1alpha1.AnnotationRequestedAt: long}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := requestedAtChanged{}.Update(event.UpdateEvent{ObjectOld: withAnnotations(tc.old), ObjectNew: withAnnotations(tc.new)})
			if got != tc.want {
				t.Errorf("Update = %v, want %v", got, tc.want)
			}
		})
	}
}

// request sets the jeton.dev/requested-at annotation of obj to a new value, as kubectl
// jeton does, and returns the value.
func request(t *testing.T, obj client.Object) string {
	t.Helper()
	v := time.Now().UTC().Format(time.RFC3339Nano)
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, jetonv1alpha1.AnnotationRequestedAt, v)
	if err := k8sClient.Patch(context.Background(), obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatalf("requesting a pass: %v", err)
	}
	return v
}

func handled(got *jetonv1alpha1.RequestStatus, want string) error {
	if got.LastHandledRequestedAt != want {
		return fmt.Errorf("lastHandledRequestedAt %q, want %q", got.LastHandledRequestedAt, want)
	}
	return nil
}

// PublicClients ignore metadata-only updates (generation predicate), but not a request.
func TestPublicClientHandlesRequest(t *testing.T) {
	pc := habClient(t, "req")
	if pc.Status.LastHandledRequestedAt != "" {
		t.Fatalf("lastHandledRequestedAt %q without any request", pc.Status.LastHandledRequestedAt)
	}
	v := request(t, pc)
	got := &jetonv1alpha1.PublicClient{}
	waitFor(t, habTimeout, "the request handled", func(ctx context.Context) error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pc), got); err != nil {
			return err
		}
		return handled(&got.Status.RequestStatus, v)
	})
	if err := readyIs(got.Status.Conditions, got.Generation, got.Status.ObservedGeneration, metav1.ConditionTrue, jetonv1alpha1.ReasonReady); err != nil {
		t.Error(err)
	}
}

func TestHabilitationHandlesRequest(t *testing.T) {
	pc := habClient(t, "req")
	s := tokenSecret(t, credNS, tokenData(validToken(t)))
	h := habFor(t, credNS, pc.Name, s.Name, nil)
	got := waitHab(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected)
	if got.Status.LastHandledRequestedAt != "" {
		t.Fatalf("lastHandledRequestedAt %q without any request", got.Status.LastHandledRequestedAt)
	}
	for range 2 { // a second request is a new one
		v := request(t, h)
		waitFor(t, habTimeout, "the request handled", func(ctx context.Context) error {
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(h), got); err != nil {
				return err
			}
			return handled(&got.Status.RequestStatus, v)
		})
	}
	if err := readyIs(got.Status.Conditions, got.Generation, got.Status.ObservedGeneration, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected); err != nil {
		t.Error(err)
	}
}

// A request is answered by a probe sent after it, recorded in the same status write.
func TestTechnicalTokenProbesOnRequest(t *testing.T) {
	em, url := ttEmulator(t)
	tok, id := ttMint(t, em, jetonv1alpha1.APIEntreprise, emulator.Healthy, emulator.MintOptions{})
	s := tokenSecret(t, credNS, tokenData(tok))
	tt := newTT(t, credNS, jetonv1alpha1.APIEntreprise, url, s.Name, nil)
	waitTT(t, tt, "probed", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded))

	if err := em.SetBehaviour(id, emulator.Revoked); err != nil {
		t.Fatal(err)
	}
	asked := time.Now()
	v := request(t, tt)
	got := waitTT(t, tt, "the request handled", func(got *jetonv1alpha1.TechnicalToken) error {
		return handled(&got.Status.RequestStatus, v)
	})
	// The answer is a probe that saw the new behaviour, not an older result.
	if r := got.Status.LastResult; r == nil || r.Reason != jetonv1alpha1.ReasonRevoked {
		t.Errorf("lastResult %+v, want the probe sent for the request (Revoked)", r)
	}
	if lp := got.Status.LastProbeTime; lp == nil || lp.Time.Before(asked.Truncate(time.Second)) {
		t.Errorf("lastProbeTime %v, before the request at %v", lp, asked)
	}
}

// A suspended TechnicalToken answers a request at once, without probing.
func TestTechnicalTokenRequestWhileSuspended(t *testing.T) {
	em, url := ttEmulator(t)
	tok, id := ttMint(t, em, jetonv1alpha1.APIEntreprise, emulator.Healthy, emulator.MintOptions{})
	s := tokenSecret(t, credNS, tokenData(tok))
	tt := newTT(t, credNS, jetonv1alpha1.APIEntreprise, url, s.Name, func(tt *jetonv1alpha1.TechnicalToken) { tt.Spec.Suspend = true })
	waitTT(t, tt, "suspended", func(got *jetonv1alpha1.TechnicalToken) error {
		return readyIs(got.Status.Conditions, got.Generation, got.Status.ObservedGeneration, metav1.ConditionUnknown, jetonv1alpha1.ReasonSuspended)
	})
	v := request(t, tt)
	waitTT(t, tt, "the request handled", func(got *jetonv1alpha1.TechnicalToken) error {
		return handled(&got.Status.RequestStatus, v)
	})
	if n := len(em.Requests(id)); n != 0 {
		t.Errorf("a suspended TechnicalToken was probed %d times", n)
	}
}

// A request does not bypass the probe gate: after a 429 with Retry-After, the probe it
// asks for waits like any other.
func TestTechnicalTokenRequestObeysRetryAfter(t *testing.T) {
	em, url := ttEmulator(t)
	tok, id := ttMint(t, em, jetonv1alpha1.APIEntreprise, emulator.RateLimitedEmptyBody, emulator.MintOptions{})
	const retryAfter = 3 * time.Second
	if err := em.SetRetryAfter(id, retryAfter); err != nil {
		t.Fatal(err)
	}
	s := tokenSecret(t, credNS, tokenData(tok))
	tt := newTT(t, credNS, jetonv1alpha1.APIEntreprise, url, s.Name, threshold(1))
	waitTT(t, tt, "rate limited", lastResult(jetonv1alpha1.ReasonRateLimited))
	if err := em.SetBehaviour(id, emulator.Healthy); err != nil {
		t.Fatal(err)
	}
	v := request(t, tt)
	got := waitTT(t, tt, "the request handled", func(got *jetonv1alpha1.TechnicalToken) error {
		return handled(&got.Status.RequestStatus, v)
	})
	if r := got.Status.LastResult; r == nil || r.Reason != jetonv1alpha1.ReasonProbeSucceeded {
		t.Errorf("lastResult %+v, want ProbeSucceeded", r)
	}
	reqs := em.Requests(id)
	for i := 1; i < len(reqs); i++ {
		if reqs[i-1].Status == http.StatusTooManyRequests {
			if gap := reqs[i].Time.Sub(reqs[i-1].Time); gap < retryAfter {
				t.Errorf("request %d came %v after a 429 with Retry-After: %v", i, gap, retryAfter)
			}
		}
	}
}

// Requests made while a probe is in flight do not add a second request in flight: each
// waits its turn, and the last is answered by a probe sent after it.
func TestTechnicalTokenRequestsKeepOneProbeInFlight(t *testing.T) {
	em, url := ttEmulator(t)
	tok, id := ttMint(t, em, jetonv1alpha1.APIEntreprise, emulator.Slow, emulator.MintOptions{}) // answers well, after a delay
	if err := em.SetDelay(id, time.Second); err != nil {
		t.Fatal(err)
	}
	s := tokenSecret(t, credNS, tokenData(tok))
	tt := newTT(t, credNS, jetonv1alpha1.APIEntreprise, url, s.Name, nil)
	waitTT(t, tt, "probed", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded))
	var v string
	for range 3 {
		v = request(t, tt)
	}
	waitTT(t, tt, "the last request handled", func(got *jetonv1alpha1.TechnicalToken) error {
		return handled(&got.Status.RequestStatus, v)
	})
	if n := em.MaxInFlight(id); n != 1 {
		t.Errorf("%d probes in flight at once, want 1", n)
	}
}
