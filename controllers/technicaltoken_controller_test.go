package controllers

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/probe"
	"github.com/jeton-dev/jeton/internal/token"
	"github.com/jeton-dev/jeton/internal/tokensource"
)

// The suite runs the manager with Options.ProbeInterval = 1s, so every TechnicalToken here
// is probed about every second. Each test serves its own emulator: the host-wide backoff
// after a 429 then holds only that test's tokens.

const ttTimeout = 30 * time.Second

// ttEmulator serves a fresh API emulator for one test, on one of the loopback addresses
// the manager allows as API hosts.
func ttEmulator(t *testing.T) (*emulator.Server, string) {
	t.Helper()
	em := emulator.New()
	var l net.Listener
	select {
	case l = <-emulatorListeners:
	default:
		t.Fatalf("no allowed emulator address left: raise emulatorPoolSize")
	}
	srv := httptest.NewUnstartedServer(em)
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return em, srv.URL
}

// ttMint mints a token on the emulator with behaviour b; the leak check knows it.
func ttMint(t *testing.T, em *emulator.Server, api jetonv1alpha1.API, b emulator.Behaviour, o emulator.MintOptions) (tok, id string) {
	t.Helper()
	if o.Scopes == nil {
		o.Scopes = []string{"attestations_fiscales"}
		if api == jetonv1alpha1.DemarchesNumeriques {
			o.Scopes = []string{"42"}
		}
	}
	tok, id, err := em.Mint(api, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := em.SetBehaviour(id, b); err != nil {
		t.Fatal(err)
	}
	return rememberToken(tok), id
}

// newTT creates a TechnicalToken for api at baseURL reading Secret secretName in namespace.
func newTT(t *testing.T, namespace string, api jetonv1alpha1.API, baseURL, secretName string, mutate func(*jetonv1alpha1.TechnicalToken)) *jetonv1alpha1.TechnicalToken {
	t.Helper()
	tt := &jetonv1alpha1.TechnicalToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: uniqueName("tt")},
		Spec: jetonv1alpha1.TechnicalTokenSpec{
			API:            api,
			BaseURL:        baseURL,
			TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: secretName, Key: "token"},
			// metav1.Duration is a struct: omitempty does not omit it, so a Go client sends
			// "0s" unless these are set (the CRD defaults apply only to absent fields).
			Interval: &metav1.Duration{Duration: 5 * time.Minute},
			Timeout:  &metav1.Duration{Duration: 10 * time.Second},
		},
	}
	if api == jetonv1alpha1.DemarchesNumeriques {
		n := int64(42)
		tt.Spec.DemarcheNumber = &n
	}
	if mutate != nil {
		mutate(tt)
	}
	if err := k8sClient.Create(context.Background(), tt); err != nil {
		t.Fatalf("creating TechnicalToken: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), tt) })
	return tt
}

func threshold(n int32) func(*jetonv1alpha1.TechnicalToken) {
	return func(tt *jetonv1alpha1.TechnicalToken) { tt.Spec.FailureThreshold = n }
}

// waitTT waits until cond accepts the TechnicalToken and returns it.
func waitTT(t *testing.T, tt *jetonv1alpha1.TechnicalToken, what string, cond func(*jetonv1alpha1.TechnicalToken) error) *jetonv1alpha1.TechnicalToken {
	t.Helper()
	got := &jetonv1alpha1.TechnicalToken{}
	waitFor(t, ttTimeout, fmt.Sprintf("TechnicalToken %s: %s", tt.Name, what), func(ctx context.Context) error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(tt), got); err != nil {
			return err
		}
		return cond(got)
	})
	return got
}

// ready checks the Ready condition (status and reason) for the current generation.
func ready(status metav1.ConditionStatus, reason string) func(*jetonv1alpha1.TechnicalToken) error {
	return func(got *jetonv1alpha1.TechnicalToken) error {
		return readyIs(got.Status.Conditions, got.Generation, got.Status.ObservedGeneration, status, reason)
	}
}

func lastResult(reason string) func(*jetonv1alpha1.TechnicalToken) error {
	return func(got *jetonv1alpha1.TechnicalToken) error {
		if r := got.Status.LastResult; r == nil || r.Reason != reason {
			return fmt.Errorf("lastResult %+v, want reason %s", r, reason)
		}
		return nil
	}
}

func all(conds ...func(*jetonv1alpha1.TechnicalToken) error) func(*jetonv1alpha1.TechnicalToken) error {
	return func(got *jetonv1alpha1.TechnicalToken) error {
		for _, c := range conds {
			if err := c(got); err != nil {
				return err
			}
		}
		return nil
	}
}

// waitTTEvent waits for an Event of type and reason about the TechnicalToken; returns its note.
func waitTTEvent(t *testing.T, tt *jetonv1alpha1.TechnicalToken, eventType, reason string) string {
	t.Helper()
	return waitEvent(t, ttTimeout, "TechnicalToken", tt, eventType, reason)
}

// Every classification, end to end: emulator → executor → status, with failureThreshold 1
// so Ready follows each probe.
func TestTechnicalTokenClassifications(t *testing.T) {
	const (
		ae = jetonv1alpha1.APIEntreprise
		ap = jetonv1alpha1.APIParticulier
		dn = jetonv1alpha1.DemarchesNumeriques
	)
	tests := []struct {
		api        jetonv1alpha1.API
		behaviour  emulator.Behaviour
		reason     string
		httpStatus int32
		code       string
	}{
		{ae, emulator.Healthy, jetonv1alpha1.ReasonProbeSucceeded, 200, ""},
		{ae, emulator.Unauthorized, jetonv1alpha1.ReasonUnauthorized, 401, "00101"},
		{ae, emulator.Expired, jetonv1alpha1.ReasonExpired, 401, "00103"},
		{ae, emulator.Revoked, jetonv1alpha1.ReasonRevoked, 401, "00105"},
		{ae, emulator.InsufficientPrivileges, jetonv1alpha1.ReasonInsufficientPrivileges, 403, "00100"},
		{ae, emulator.RateLimited, jetonv1alpha1.ReasonRateLimited, 429, "00429"},
		{ae, emulator.RateLimitedEmptyBody, jetonv1alpha1.ReasonRateLimited, 429, ""},
		{ae, emulator.Slow, jetonv1alpha1.ReasonTimeout, 0, ""},
		{ae, emulator.Down, jetonv1alpha1.ReasonServerError, 502, ""},
		{ae, emulator.ServerError, jetonv1alpha1.ReasonServerError, 500, ""},
		{ae, emulator.Conflict, jetonv1alpha1.ReasonUnexpectedResponse, 409, "00015"},
		{ap, emulator.Healthy, jetonv1alpha1.ReasonProbeSucceeded, 200, ""},
		{ap, emulator.Revoked, jetonv1alpha1.ReasonRevoked, 401, "00105"},
		{dn, emulator.Healthy, jetonv1alpha1.ReasonProbeSucceeded, 200, ""},
		{dn, emulator.Unauthorized, jetonv1alpha1.ReasonUnauthorized, 403, "forbidden"},
		{dn, emulator.Expired, jetonv1alpha1.ReasonExpired, 401, "unauthorized"},
		{dn, emulator.InsufficientPrivileges, jetonv1alpha1.ReasonInsufficientPrivileges, 200, "unauthorized"},
		{dn, emulator.NotFound, jetonv1alpha1.ReasonUnexpectedResponse, 200, "not_found"},
		// Démarches Numériques' 429 is plain text: no code.
		{dn, emulator.RateLimited, jetonv1alpha1.ReasonRateLimited, 429, ""},
	}
	for _, tc := range tests {
		t.Run(string(tc.api)+"/"+string(tc.behaviour), func(t *testing.T) {
			t.Parallel()
			em, url := ttEmulator(t)
			tok, id := ttMint(t, em, tc.api, tc.behaviour, emulator.MintOptions{})
			s := tokenSecret(t, credNS, tokenData(tok))
			tt := newTT(t, credNS, tc.api, url, s.Name, func(tt *jetonv1alpha1.TechnicalToken) {
				tt.Spec.FailureThreshold = 1
				tt.Spec.Timeout = &metav1.Duration{Duration: time.Second} // Slow answers after 30s
			})
			want := metav1.ConditionFalse
			if tc.reason == jetonv1alpha1.ReasonProbeSucceeded {
				want = metav1.ConditionTrue
			}
			// A 1s spec.timeout is too short for its timeouts to say the host answers nobody
			// (probe.HostHealths): Ready names the timeout itself.
			got := waitTT(t, tt, "probed", all(lastResult(tc.reason), ready(want, tc.reason)))

			r := got.Status.LastResult
			if r.HTTPStatus != tc.httpStatus || r.Code != tc.code {
				t.Errorf("lastResult httpStatus %d code %q, want %d %q", r.HTTPStatus, r.Code, tc.httpStatus, tc.code)
			}
			if r.Message == "" || r.Latency == nil || got.Status.LastProbeTime == nil || got.Status.NextProbeTime == nil {
				t.Errorf("incomplete status: %+v", got.Status)
			}
			if got.Status.TokenFingerprint != token.Fingerprint(tok) {
				t.Errorf("tokenFingerprint %q, want %q", got.Status.TokenFingerprint, token.Fingerprint(tok))
			}
			if got.Status.TokenID != id {
				t.Errorf("tokenID %q, want the emulator's id %q", got.Status.TokenID, id)
			}
			if want == metav1.ConditionTrue {
				if got.Status.LastSuccessTime == nil || got.Status.ConsecutiveFailures != 0 {
					t.Errorf("success not recorded: %+v", got.Status)
				}
				if tc.api != dn && (len(got.Status.Privileges) != 1 || got.Status.Privileges[0] != "attestations_fiscales") {
					t.Errorf("privileges %q, want the token's", got.Status.Privileges)
				}
				if s := kstatusOf(t, got); s != status.CurrentStatus {
					t.Errorf("kstatus %s, want Current", s)
				}
			} else if got.Status.ConsecutiveFailures < 1 {
				t.Errorf("consecutiveFailures %d", got.Status.ConsecutiveFailures)
			}
			if m := em.MaxInFlight(id); m > 1 {
				t.Errorf("MaxInFlight = %d, want 1", m)
			}
		})
	}
}

func TestTechnicalTokenUnreachable(t *testing.T) {
	// An allowed API host where nothing listens any more.
	var l net.Listener
	select {
	case l = <-emulatorListeners:
	default:
		t.Fatalf("no allowed emulator address left: raise emulatorPoolSize")
	}
	closed := "http://" + l.Addr().String()
	_ = l.Close()
	s := tokenSecret(t, credNS, tokenData(validToken(t)))
	tt := newTT(t, credNS, jetonv1alpha1.APIEntreprise, closed, s.Name, threshold(1))
	// The only token of the host gets no answer: Ready says the host is unreachable.
	got := waitTT(t, tt, "Unreachable", all(lastResult(jetonv1alpha1.ReasonUnreachable), ready(metav1.ConditionFalse, jetonv1alpha1.ReasonHostUnreachable)))
	if got.Status.LastResult.HTTPStatus != 0 {
		t.Errorf("httpStatus %d, want 0", got.Status.LastResult.HTTPStatus)
	}
	// A probe failure is transient: not Stalled, kstatus keeps waiting (InProgress).
	if meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionStalled) != nil {
		t.Error("Stalled set for a probe failure")
	}
}

// Failures below the threshold leave Ready as it was; reaching it turns Ready False with the
// specific reason and a ProbeFailed event; a success brings ProbeRecovered.
func TestTechnicalTokenFailureAndRecovery(t *testing.T) {
	em, url := ttEmulator(t)
	tok, id := ttMint(t, em, jetonv1alpha1.APIEntreprise, emulator.Healthy, emulator.MintOptions{})
	s := tokenSecret(t, credNS, tokenData(tok))
	tt := newTT(t, credNS, jetonv1alpha1.APIEntreprise, url, s.Name, threshold(3))
	waitTT(t, tt, "Ready", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded))

	if err := em.SetBehaviour(id, emulator.Revoked); err != nil {
		t.Fatal(err)
	}
	got := waitTT(t, tt, "first failure", lastResult(jetonv1alpha1.ReasonRevoked))
	if got.Status.ConsecutiveFailures < 3 {
		if c := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReady); c.Status != metav1.ConditionTrue {
			t.Errorf("Ready=%s after %d failures, want still True below the threshold", c.Status, got.Status.ConsecutiveFailures)
		}
	}
	got = waitTT(t, tt, "not Ready after 3 failures", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonRevoked))
	if got.Status.ConsecutiveFailures < 3 || got.Status.LastSuccessTime == nil {
		t.Errorf("consecutiveFailures %d, lastSuccessTime %v", got.Status.ConsecutiveFailures, got.Status.LastSuccessTime)
	}
	note := waitTTEvent(t, tt, corev1.EventTypeWarning, probe.EventFailed)
	t.Logf("ProbeFailed: %s", note)

	if err := em.SetBehaviour(id, emulator.Healthy); err != nil {
		t.Fatal(err)
	}
	got = waitTT(t, tt, "recovered", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded))
	if got.Status.ConsecutiveFailures != 0 {
		t.Errorf("consecutiveFailures %d after recovery", got.Status.ConsecutiveFailures)
	}
	waitTTEvent(t, tt, corev1.EventTypeNormal, probe.EventRecovered)
	assertNoTokenLeak(t)
}

// Below the threshold, Ready stays True; the reason says probes are failing.
func TestTechnicalTokenFailureBelowThreshold(t *testing.T) {
	em, url := ttEmulator(t)
	tok, id := ttMint(t, em, jetonv1alpha1.APIParticulier, emulator.Healthy, emulator.MintOptions{})
	s := tokenSecret(t, credNS, tokenData(tok))
	tt := newTT(t, credNS, jetonv1alpha1.APIParticulier, url, s.Name, threshold(100))
	waitTT(t, tt, "Ready", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded))
	if err := em.SetBehaviour(id, emulator.ServerError); err != nil {
		t.Fatal(err)
	}
	got := waitTT(t, tt, "failing but Ready", all(lastResult(jetonv1alpha1.ReasonServerError), ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeFailing)))
	if got.Status.ConsecutiveFailures < 1 {
		t.Errorf("consecutiveFailures %d", got.Status.ConsecutiveFailures)
	}
}

// After a 429 with Retry-After: 3, the token is not probed again for 3 seconds, although
// its interval (1s in tests) is shorter.
func TestTechnicalTokenHonoursRetryAfter(t *testing.T) {
	em, url := ttEmulator(t)
	tok, id := ttMint(t, em, jetonv1alpha1.APIEntreprise, emulator.RateLimitedEmptyBody, emulator.MintOptions{})
	const retryAfter = 3 * time.Second
	if err := em.SetRetryAfter(id, retryAfter); err != nil {
		t.Fatal(err)
	}
	s := tokenSecret(t, credNS, tokenData(tok))
	tt := newTT(t, credNS, jetonv1alpha1.APIEntreprise, url, s.Name, threshold(1))
	got := waitTT(t, tt, "rate limited", all(lastResult(jetonv1alpha1.ReasonRateLimited), ready(metav1.ConditionFalse, jetonv1alpha1.ReasonRateLimited)))
	if nt, lt := got.Status.NextProbeTime, got.Status.LastProbeTime; nt == nil || nt.Sub(lt.Time) < retryAfter {
		t.Errorf("nextProbeTime %v, want ≥ lastProbeTime %v + %v", nt, lt, retryAfter)
	}
	if err := em.SetBehaviour(id, emulator.Healthy); err != nil {
		t.Fatal(err)
	}
	waitTT(t, tt, "recovered", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded))

	reqs := em.Requests(id)
	if len(reqs) < 2 || reqs[0].Status != http.StatusTooManyRequests {
		t.Fatalf("requests: %+v", reqs)
	}
	for i := 1; i < len(reqs); i++ {
		if reqs[i-1].Status == http.StatusTooManyRequests {
			if gap := reqs[i].Time.Sub(reqs[i-1].Time); gap < retryAfter {
				t.Errorf("request %d came %v after a 429 with Retry-After: %v", i, gap, retryAfter)
			}
		}
	}
}

// A slow API does not delay the probes of other tokens, and a token waiting for its first
// answer is Ready=Unknown with Reconciling=True.
func TestTechnicalTokenSlowAPIDoesNotDelayOthers(t *testing.T) {
	slowEm, slowURL := ttEmulator(t)
	slowTok, slowID := ttMint(t, slowEm, jetonv1alpha1.APIEntreprise, emulator.Slow, emulator.MintOptions{}) // answers after 30s
	s1 := tokenSecret(t, credNS, tokenData(slowTok))
	slow := newTT(t, credNS, jetonv1alpha1.APIEntreprise, slowURL, s1.Name, func(tt *jetonv1alpha1.TechnicalToken) {
		tt.Spec.Timeout = &metav1.Duration{Duration: time.Minute}
	})
	waitFor(t, ttTimeout, "the slow probe in flight", func(context.Context) error {
		if slowEm.MaxInFlight(slowID) != 1 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	got := waitTT(t, slow, "pending", ready(metav1.ConditionUnknown, jetonv1alpha1.ReasonProbePending))
	if c := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReconciling); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Reconciling = %+v, want True while the first probe is pending", c)
	}

	em, url := ttEmulator(t)
	tok, id := ttMint(t, em, jetonv1alpha1.APIParticulier, emulator.Healthy, emulator.MintOptions{})
	s2 := tokenSecret(t, credNS, tokenData(tok))
	fast := newTT(t, credNS, jetonv1alpha1.APIParticulier, url, s2.Name, nil)
	waitTT(t, fast, "Ready", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded))
	waitFor(t, ttTimeout, "three probes of the fast token", func(context.Context) error {
		if n := len(em.Requests(id)); n < 3 {
			return fmt.Errorf("%d probes", n)
		}
		return nil
	})
	if n := len(slowEm.Requests(slowID)); n != 0 {
		t.Fatalf("the slow probe finished (%d requests): the test proves nothing", n)
	}
}

// Spec changes while a probe is in flight never start a second request for the token.
func TestTechnicalTokenOneProbeInFlight(t *testing.T) {
	em, url := ttEmulator(t)
	tok, id := ttMint(t, em, jetonv1alpha1.APIEntreprise, emulator.Slow, emulator.MintOptions{})
	if err := em.SetDelay(id, 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	s := tokenSecret(t, credNS, tokenData(tok))
	tt := newTT(t, credNS, jetonv1alpha1.APIEntreprise, url, s.Name, nil)
	for i := range 4 {
		// Each generation change asks for a probe at once; the one in flight must be waited for.
		waitFor(t, ttTimeout, "a probe in flight", func(context.Context) error {
			if em.MaxInFlight(id) < 1 {
				return fmt.Errorf("none yet")
			}
			return nil
		})
		cur := &jetonv1alpha1.TechnicalToken{}
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(tt), cur); err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(cur.DeepCopy())
		cur.Spec.FailureThreshold = int32(3 + i)
		if err := k8sClient.Patch(context.Background(), cur, patch); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ttTimeout, "three probes", func(context.Context) error {
		if n := len(em.Requests(id)); n < 3 {
			return fmt.Errorf("%d probes", n)
		}
		return nil
	})
	if m := em.MaxInFlight(id); m != 1 {
		t.Errorf("MaxInFlight = %d, want 1", m)
	}
}

// Deleting a TechnicalToken stops its probes.
func TestTechnicalTokenDeleteStopsProbes(t *testing.T) {
	em, url := ttEmulator(t)
	tok, id := ttMint(t, em, jetonv1alpha1.APIEntreprise, emulator.Healthy, emulator.MintOptions{})
	s := tokenSecret(t, credNS, tokenData(tok))
	tt := newTT(t, credNS, jetonv1alpha1.APIEntreprise, url, s.Name, nil)
	waitFor(t, ttTimeout, "two probes", func(context.Context) error {
		if n := len(em.Requests(id)); n < 2 {
			return fmt.Errorf("%d probes", n)
		}
		return nil
	})
	if err := k8sClient.Delete(context.Background(), tt); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ttTimeout, "TechnicalToken gone", func(ctx context.Context) error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(tt), &jetonv1alpha1.TechnicalToken{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there: %v", err)
		}
		return nil
	})
	atDeletion := len(em.Requests(id))

	// A sentinel on the same API: once it has been probed three times (two intervals),
	// the deleted token would have been probed again had it not been forgotten.
	tok2, id2 := ttMint(t, em, jetonv1alpha1.APIEntreprise, emulator.Healthy, emulator.MintOptions{})
	s2 := tokenSecret(t, credNS, tokenData(tok2))
	newTT(t, credNS, jetonv1alpha1.APIEntreprise, url, s2.Name, nil)
	waitFor(t, ttTimeout, "three probes of the sentinel", func(context.Context) error {
		if n := len(em.Requests(id2)); n < 3 {
			return fmt.Errorf("%d probes", n)
		}
		return nil
	})
	// One probe may have been in flight at deletion time.
	if n := len(em.Requests(id)); n > atDeletion+1 {
		t.Errorf("deleted token probed %d more times", n-atDeletion)
	}
}

// Secret problems are reported with actionable conditions and events; the Secret watch sees
// each fix within seconds.
func TestTechnicalTokenSecretProblems(t *testing.T) {
	em, url := ttEmulator(t)
	tok, _ := ttMint(t, em, jetonv1alpha1.APIEntreprise, emulator.Healthy, emulator.MintOptions{})
	name := uniqueName("tt-secret")
	tt := newTT(t, credNS, jetonv1alpha1.APIEntreprise, url, name, nil)

	waitTT(t, tt, "SecretNotFound", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonSecretNotFound))
	waitTTEvent(t, tt, corev1.EventTypeWarning, jetonv1alpha1.ReasonSecretNotFound)

	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: name}, Data: map[string][]byte{"other": []byte("x")}}
	if err := k8sClient.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), s) })
	got := waitTT(t, tt, "SecretKeyNotFound", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonSecretKeyNotFound))
	if kstatusOf(t, got) != status.FailedStatus {
		t.Errorf("kstatus %s, want Failed (Stalled)", kstatusOf(t, got))
	}

	notAJWT := rememberToken("this-is-not-a-jwt-" + uniqueName("x"))
	s.Data = map[string][]byte{"token": []byte(notAJWT)}
	if err := k8sClient.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	got = waitTT(t, tt, "InvalidToken", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonInvalidToken))
	// No fingerprint of a value that is not a token: status would be a hash oracle on any
	// value of the credentials namespaces.
	if got.Status.TokenFingerprint != "" {
		t.Errorf("tokenFingerprint %q recorded for an undecodable value", got.Status.TokenFingerprint)
	}
	waitTTEvent(t, tt, corev1.EventTypeWarning, jetonv1alpha1.ReasonInvalidToken)

	s.Data = map[string][]byte{"token": []byte(tok + "\n")} // a trailing newline is normalized away
	if err := k8sClient.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	got = waitTT(t, tt, "Ready", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded))
	if got.Status.TokenFingerprint != token.Fingerprint(tok) {
		t.Errorf("tokenFingerprint %q, want %q", got.Status.TokenFingerprint, token.Fingerprint(tok))
	}
	assertNoTokenLeak(t)
}

func TestTechnicalTokenNamespaceNotAllowed(t *testing.T) {
	ns := uniqueName("not-credentials")
	if err := k8sClient.Create(context.Background(), namespaceObject(ns)); err != nil {
		t.Fatal(err)
	}
	em, url := ttEmulator(t)
	tok, id := ttMint(t, em, jetonv1alpha1.APIEntreprise, emulator.Healthy, emulator.MintOptions{})
	s := tokenSecret(t, ns, tokenData(tok))
	tt := newTT(t, ns, jetonv1alpha1.APIEntreprise, url, s.Name, nil)
	got := waitTT(t, tt, "NamespaceNotAllowed", ready(metav1.ConditionFalse, jetonv1alpha1.ReasonNamespaceNotAllowed))
	if c := meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Stalled = %+v, want True", c)
	}
	if got.Status.TokenFingerprint != "" || got.Status.LastProbeTime != nil {
		t.Errorf("a TechnicalToken outside the credentials namespaces was read or probed: %+v", got.Status)
	}
	if n := len(em.Requests(id)); n != 0 {
		t.Errorf("%d probes, want none", n)
	}
}

func TestTechnicalTokenExpiry(t *testing.T) {
	em, url := ttEmulator(t)
	t.Run("expired token", func(t *testing.T) {
		tok, _ := ttMint(t, em, jetonv1alpha1.APIEntreprise, emulator.Healthy, emulator.MintOptions{
			IssuedAt: time.Now().Add(-48 * time.Hour), ExpiresAt: time.Now().Add(-time.Hour)})
		s := tokenSecret(t, credNS, tokenData(tok))
		tt := newTT(t, credNS, jetonv1alpha1.APIEntreprise, url, s.Name, nil)
		got := waitTT(t, tt, "TokenExpired", all(ready(metav1.ConditionFalse, jetonv1alpha1.ReasonTokenExpired), lastResult(jetonv1alpha1.ReasonExpired)))
		if got.Status.ExpiresAt == nil || got.Status.IssuedAt == nil {
			t.Errorf("expiresAt/issuedAt not decoded: %+v", got.Status.TokenStatus)
		}
		waitTTEvent(t, tt, corev1.EventTypeWarning, jetonv1alpha1.ReasonTokenExpired)
	})
	t.Run("expiring soon stays Ready", func(t *testing.T) {
		exp := time.Now().Add(10 * 24 * time.Hour).Truncate(time.Second)
		tok, _ := ttMint(t, em, jetonv1alpha1.APIParticulier, emulator.Healthy, emulator.MintOptions{ExpiresAt: exp})
		s := tokenSecret(t, credNS, tokenData(tok))
		tt := newTT(t, credNS, jetonv1alpha1.APIParticulier, url, s.Name, nil)
		got := waitTT(t, tt, "TokenExpiringSoon", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonTokenExpiringSoon))
		if !got.Status.ExpiresAt.Time.Equal(exp) {
			t.Errorf("expiresAt %v, want %v", got.Status.ExpiresAt, exp)
		}
	})
	t.Run("Démarches Numériques uses spec.expiresAt", func(t *testing.T) {
		tok, id := ttMint(t, em, jetonv1alpha1.DemarchesNumeriques, emulator.Healthy, emulator.MintOptions{})
		s := tokenSecret(t, credNS, tokenData(tok))
		exp := metav1.NewTime(time.Now().Add(300 * 24 * time.Hour).Truncate(time.Second))
		tt := newTT(t, credNS, jetonv1alpha1.DemarchesNumeriques, url, s.Name, func(tt *jetonv1alpha1.TechnicalToken) {
			tt.Spec.ExpiresAt = &exp
		})
		got := waitTT(t, tt, "Ready", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded))
		// A date: the token works through that whole day, Paris time.
		want := tokensource.DNExpiry(exp.Time)
		if got.Status.ExpiresAt == nil || !got.Status.ExpiresAt.Time.Equal(want) || got.Status.TokenID != id {
			t.Errorf("expiresAt %v tokenID %q, want %v and %q", got.Status.ExpiresAt, got.Status.TokenID, want, id)
		}
	})
}

func TestTechnicalTokenSuspend(t *testing.T) {
	em, url := ttEmulator(t)
	tok, id := ttMint(t, em, jetonv1alpha1.APIEntreprise, emulator.Healthy, emulator.MintOptions{})
	s := tokenSecret(t, credNS, tokenData(tok))
	tt := newTT(t, credNS, jetonv1alpha1.APIEntreprise, url, s.Name, func(tt *jetonv1alpha1.TechnicalToken) { tt.Spec.Suspend = true })
	got := waitTT(t, tt, "Suspended", ready(metav1.ConditionUnknown, jetonv1alpha1.ReasonSuspended))
	if got.Status.TokenFingerprint != token.Fingerprint(tok) {
		t.Error("a suspended token still reports its fingerprint (the reuse check needs it)")
	}
	if meta.FindStatusCondition(got.Status.Conditions, jetonv1alpha1.ConditionReconciling) != nil {
		t.Error("Reconciling set on a suspended token: kstatus would wait forever")
	}
	if n := len(em.Requests(id)); n != 0 {
		t.Errorf("suspended token probed %d times", n)
	}
	patch := client.MergeFrom(got.DeepCopy())
	got.Spec.Suspend = false
	if err := k8sClient.Patch(context.Background(), got, patch); err != nil {
		t.Fatal(err)
	}
	waitTT(t, tt, "Ready", ready(metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded))
}
