package probe

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
)

const day = 24 * time.Hour

// TestJudge has one row per Ready reason a TechnicalToken that may be probed can report.
// Every row is judged again a day later: when the reason has not changed, neither has the
// message (absolute dates only), so time passing costs no status write.
func TestJudge(t *testing.T) {
	now := time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { mt := metav1.NewTime(now.Add(d)); return &mt }
	revoked := &jetonv1alpha1.ProbeResult{Reason: jetonv1alpha1.ReasonRevoked, Message: "the API says the token was revoked"}
	succeeded := &jetonv1alpha1.ProbeResult{Reason: jetonv1alpha1.ReasonProbeSucceeded, Message: "the API accepts the token"}
	// tt is a TechnicalToken with failureThreshold 3 and status st.
	tt := func(st jetonv1alpha1.TechnicalTokenStatus, mutate ...func(*jetonv1alpha1.TechnicalToken)) *jetonv1alpha1.TechnicalToken {
		tt := &jetonv1alpha1.TechnicalToken{Spec: jetonv1alpha1.TechnicalTokenSpec{FailureThreshold: 3}, Status: st}
		for _, m := range mutate {
			m(tt)
		}
		return tt
	}
	suspended := func(tt *jetonv1alpha1.TechnicalToken) { tt.Spec.Suspend = true }
	healthy := func(exp *metav1.Time) jetonv1alpha1.TechnicalTokenStatus {
		return jetonv1alpha1.TechnicalTokenStatus{LastResult: succeeded, LastSuccessTime: at(-time.Minute), TokenStatus: jetonv1alpha1.TokenStatus{ExpiresAt: exp}}
	}
	failing := func(n int32, exp *metav1.Time) jetonv1alpha1.TechnicalTokenStatus {
		st := healthy(exp)
		st.LastResult, st.ConsecutiveFailures = revoked, n
		return st
	}
	expires := now.Add(200 * day).Format(time.RFC3339)
	expiredResult := &jetonv1alpha1.ProbeResult{Reason: jetonv1alpha1.ReasonExpired, Message: "the API says the token has expired"}
	timedOut := &jetonv1alpha1.ProbeResult{Reason: jetonv1alpha1.ReasonTimeout, Message: "no answer from entreprise.api.gouv.fr within 10s"}
	// refusedAsExpired: the token's exp passed two days ago, it was accepted before, and the
	// API now answers "expired".
	refusedAsExpired := func() jetonv1alpha1.TechnicalTokenStatus {
		st := healthy(at(-2 * day))
		st.LastSuccessTime, st.LastResult, st.ConsecutiveFailures = at(-3*day), expiredResult, 5
		return st
	}
	notProbedSinceExpiry := func() jetonv1alpha1.TechnicalTokenStatus {
		st := healthy(at(-2 * day))
		st.LastSuccessTime = at(-3 * day)
		return st
	}
	timingOut := func(n int32) jetonv1alpha1.TechnicalTokenStatus {
		st := failing(n, nil)
		st.LastResult = timedOut
		return st
	}
	unreachable := HostHealth{Host: "entreprise.api.gouv.fr", Probed: 2, Unanswered: 2}
	answering := HostHealth{Host: "entreprise.api.gouv.fr", Probed: 2, Unanswered: 1}

	tests := []struct {
		name       string
		tt         *jetonv1alpha1.TechnicalToken
		wantState  conditions.State
		wantReason string
		wantInMsg  string
		wantNext   time.Duration
		host       HostHealth
	}{
		{"exp passed but the API accepted the token since: the API's answer wins, TokenProlonged", tt(healthy(at(-2 * day))),
			conditions.Ready, jetonv1alpha1.ReasonTokenProlonged, "it was prolonged on the API portal, and the Secret holds the old string", 0, HostHealth{}},
		{"exp passed, accepted since, then refused: no longer TokenProlonged", tt(func() jetonv1alpha1.TechnicalTokenStatus {
			st := healthy(at(-2 * day))
			st.LastResult, st.ConsecutiveFailures = revoked, 1
			return st
		}()),
			conditions.Stalled, jetonv1alpha1.ReasonTokenExpired, "jeton keeps probing", 0, HostHealth{}},
		{"exp passed and the API answers expired: TokenExpired, the API refuses it", tt(refusedAsExpired()),
			conditions.Stalled, jetonv1alpha1.ReasonTokenExpired, "expired at " + now.Add(-2*day).Format(time.RFC3339) + " and the API refuses it as expired", 0, HostHealth{}},
		{"exp passed, no answer since: TokenExpired without claiming the API refuses it", tt(notProbedSinceExpiry()),
			conditions.Stalled, jetonv1alpha1.ReasonTokenExpired, "jeton keeps probing: if the API still accepts it (a prolonged token), Ready turns True", 0, HostHealth{}},
		{"timeouts at the threshold, every token of the host unanswered: HostUnreachable, the 12-hour ban named", tt(timingOut(3)),
			conditions.NotReady, jetonv1alpha1.ReasonHostUnreachable, "entreprise.api.gouv.fr answers no probe of any of its 2 technical tokens", 0, unreachable},
		{"timeouts while the host answers other tokens: Timeout, raise spec.timeout", tt(timingOut(3)),
			conditions.NotReady, jetonv1alpha1.ReasonTimeout, "so it is slow for this one: raise spec.timeout", 0, answering},
		{"timeouts below the threshold, host unreachable: ProbeFailing says why", tt(timingOut(1)),
			conditions.Ready, jetonv1alpha1.ReasonProbeFailing, "12 hours", 0, unreachable},
		{"failures at the threshold: the last result's reason", tt(failing(3, at(200*day))),
			conditions.NotReady, jetonv1alpha1.ReasonRevoked, "the last 3 probes failed: the API says the token was revoked", 110 * day, HostHealth{}},
		{"default threshold (3) when unset", tt(failing(3, nil), func(tt *jetonv1alpha1.TechnicalToken) { tt.Spec.FailureThreshold = 0 }),
			conditions.NotReady, jetonv1alpha1.ReasonRevoked, "the last 3 probes failed", 0, HostHealth{}},
		{"suspended, never probed: Ready=Unknown, nothing in progress", tt(jetonv1alpha1.TechnicalTokenStatus{}, suspended),
			conditions.Unknown, jetonv1alpha1.ReasonSuspended, "probing is suspended (spec.suspend) and the token was never probed", 0, HostHealth{}},
		{"suspended after a success: the last known state", tt(healthy(nil), suspended),
			conditions.Ready, jetonv1alpha1.ReasonProbeSucceeded, "the API accepts the token (probing is suspended: this is the last known state)", 0, HostHealth{}},
		{"no probe yet: ProbePending", tt(jetonv1alpha1.TechnicalTokenStatus{}),
			conditions.Reconciling, jetonv1alpha1.ReasonProbePending, "waiting for the first successful probe", 0, HostHealth{}},
		{"first probes failing below the threshold: still pending", tt(jetonv1alpha1.TechnicalTokenStatus{LastResult: revoked, ConsecutiveFailures: 2}),
			conditions.Reconciling, jetonv1alpha1.ReasonProbePending, "the last probe failed (2 of 3 before Ready turns False)", 0, HostHealth{}},
		{"failures below the threshold after a success: ProbeFailing, still Ready", tt(failing(2, at(200*day))),
			conditions.Ready, jetonv1alpha1.ReasonProbeFailing, "the last 2 of 3 probes allowed to fail did fail (Revoked)", 110 * day, HostHealth{}},
		{"inside renewBefore: TokenExpiringSoon, still Ready", tt(healthy(at(30 * day))),
			conditions.Ready, jetonv1alpha1.ReasonTokenExpiringSoon, "expires at " + now.Add(30*day).Format(time.RFC3339), 30 * day, HostHealth{}},
		{"a shorter spec.renewBefore", tt(healthy(at(30*day)), func(tt *jetonv1alpha1.TechnicalToken) { tt.Spec.RenewBefore = &metav1.Duration{Duration: 7 * day} }),
			conditions.Ready, jetonv1alpha1.ReasonProbeSucceeded, "it expires at " + now.Add(30*day).Format(time.RFC3339), 23 * day, HostHealth{}},
		{"accepted, expiry known: ProbeSucceeded with the date", tt(healthy(at(200 * day))),
			conditions.Ready, jetonv1alpha1.ReasonProbeSucceeded, "the API accepts the token; it expires at " + expires, 110 * day, HostHealth{}},
		{"accepted, expiry unknown", tt(healthy(nil)),
			conditions.Ready, jetonv1alpha1.ReasonProbeSucceeded, "the API accepts the token", 0, HostHealth{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, next := Judge(now, tc.tt, tc.host)
			if v.State != tc.wantState || v.Reason != tc.wantReason || !strings.Contains(v.Message, tc.wantInMsg) {
				t.Errorf("Judge() = %+v, want state %d, reason %s, a message with %q", v, tc.wantState, tc.wantReason, tc.wantInMsg)
			}
			if next != tc.wantNext {
				t.Errorf("next = %v, want %v", next, tc.wantNext)
			}
			if strings.Contains(v.Message, "(in ") || strings.Contains(v.Message, " ago") {
				t.Errorf("message %q counts time from now: it would change every day", v.Message)
			}
			if tc.host.Answering() && strings.Contains(v.Message, "12 hours") {
				t.Errorf("message %q blames the vendor's address while the host answers other tokens", v.Message)
			}
			if v.Reason == jetonv1alpha1.ReasonTokenProlonged && strings.Contains(v.Message, "refuses") {
				t.Errorf("message %q says the API refuses a token it accepts", v.Message)
			}
			later, _ := Judge(now.Add(day), tc.tt, tc.host)
			if later.Reason == v.Reason && later.Message != v.Message {
				t.Errorf("a day later the message changed:\n%s\n%s", v.Message, later.Message)
			}
		})
	}
}

// The messages of an expiring token a day apart are the same: no status write a day.
func TestJudgeMessageStableOverDays(t *testing.T) {
	now := time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC)
	exp := metav1.NewTime(now.Add(20 * day))
	tt := &jetonv1alpha1.TechnicalToken{Status: jetonv1alpha1.TechnicalTokenStatus{
		LastSuccessTime: &exp, TokenStatus: jetonv1alpha1.TokenStatus{ExpiresAt: &exp}}}
	for _, tc := range []struct {
		name   string
		t1, t2 time.Time
	}{
		{"valid, a day apart", now.Add(-100 * day), now.Add(-99 * day)},
		{"expiring soon, a day apart", now, now.Add(day)},
		{"expired, a day apart", now.Add(21 * day), now.Add(22 * day)},
	} {
		v1, _ := Judge(tc.t1, tt, HostHealth{})
		v2, _ := Judge(tc.t2, tt, HostHealth{})
		if v1 != v2 {
			t.Errorf("%s: %+v then %+v", tc.name, v1, v2)
		}
	}
}

func TestRecord(t *testing.T) {
	at := time.Date(2026, 11, 30, 14, 0, 0, 123456789, time.FixedZone("CET", 3600))
	ok := Finished{Outcome: Outcome{Time: at, Latency: 1234567 * time.Nanosecond,
		Result: Result{Reason: jetonv1alpha1.ReasonProbeSucceeded, HTTPStatus: 200, Message: "accepted", Privileges: []string{"a"}}}}
	ko := Finished{Outcome: Outcome{Time: at, Latency: time.Second,
		Result: Result{Reason: jetonv1alpha1.ReasonRevoked, HTTPStatus: 401, Code: "00105", Message: "revoked"}}}
	earlier := metav1.NewTime(at.Add(-time.Hour).Truncate(time.Second))
	tests := []struct {
		name         string
		failures     int32
		f            Finished
		wantFailures int32
		wantEvent    string
		wantWarning  bool
	}{
		{"first success", 0, ok, 0, "", false},
		{"success after failures below the threshold", 2, ok, 0, "", false},
		{"success after the threshold: ProbeRecovered", 3, ok, 0, EventRecovered, false},
		{"failure below the threshold", 1, ko, 2, "", false},
		{"failure reaching the threshold: ProbeFailed", 2, ko, 3, EventFailed, true},
		{"failure past the threshold: told once", 3, ko, 4, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := jetonv1alpha1.TechnicalTokenStatus{ConsecutiveFailures: tc.failures, LastSuccessTime: &earlier}
			events := Record(&st, tc.f, 3)
			if st.ConsecutiveFailures != tc.wantFailures {
				t.Errorf("consecutiveFailures %d, want %d", st.ConsecutiveFailures, tc.wantFailures)
			}
			switch {
			case tc.wantEvent == "" && len(events) != 0, tc.wantEvent != "" && (len(events) != 1 || events[0].Reason != tc.wantEvent || events[0].Warning != tc.wantWarning):
				t.Errorf("events %+v, want %q (warning %v)", events, tc.wantEvent, tc.wantWarning)
			}
			want := at.UTC().Truncate(time.Second)
			if st.LastProbeTime == nil || !st.LastProbeTime.Time.Equal(want) || st.LastProbeTime.Location() != time.UTC {
				t.Errorf("lastProbeTime %v, want %v", st.LastProbeTime, want)
			}
			r := st.LastResult
			if r == nil || r.Reason != tc.f.Reason || r.HTTPStatus != int32(tc.f.HTTPStatus) || r.Code != tc.f.Code || r.Message != tc.f.Message ||
				r.Latency.Duration != tc.f.Latency.Round(time.Millisecond) {
				t.Errorf("lastResult %+v, want the probe's", r)
			}
			succeeded := tc.f.Succeeded()
			if gotNew := st.LastSuccessTime.Time.Equal(want); gotNew != succeeded {
				t.Errorf("lastSuccessTime %v after a probe that succeeded=%v", st.LastSuccessTime, succeeded)
			}
			if succeeded && len(st.Privileges) != 1 {
				t.Errorf("privileges %v, want the probe's", st.Privileges)
			}
		})
	}
}

// The health of a host comes from the last probe of each scheduled TechnicalToken of that
// host: a suspended or refused one (no nextProbeTime) says nothing about it.
func TestHostHealths(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC))
	tt := func(baseURL, reason string, failures int32, mutate ...func(*jetonv1alpha1.TechnicalToken)) jetonv1alpha1.TechnicalToken {
		tt := jetonv1alpha1.TechnicalToken{
			Spec: jetonv1alpha1.TechnicalTokenSpec{API: jetonv1alpha1.APIEntreprise, BaseURL: baseURL},
			Status: jetonv1alpha1.TechnicalTokenStatus{NextProbeTime: &now, ConsecutiveFailures: failures,
				LastResult: &jetonv1alpha1.ProbeResult{Reason: reason}},
		}
		for _, m := range mutate {
			m(&tt)
		}
		return tt
	}
	notScheduled := func(tt *jetonv1alpha1.TechnicalToken) { tt.Status.NextProbeTime = nil }
	suspended := func(tt *jetonv1alpha1.TechnicalToken) { tt.Spec.Suspend = true }
	const official = "entreprise.api.gouv.fr"
	tests := []struct {
		name        string
		tts         []jetonv1alpha1.TechnicalToken
		want        HostHealth
		unreachable bool
	}{
		{"every token timed out or reset: unreachable", []jetonv1alpha1.TechnicalToken{
			tt("", jetonv1alpha1.ReasonTimeout, 2), tt("https://entreprise.api.gouv.fr", jetonv1alpha1.ReasonUnreachable, 1)},
			HostHealth{Host: official, Probed: 2, Unanswered: 2}, true},
		{"one token answered: the host answers", []jetonv1alpha1.TechnicalToken{
			tt("", jetonv1alpha1.ReasonTimeout, 2), tt("", jetonv1alpha1.ReasonRevoked, 3)},
			HostHealth{Host: official, Probed: 2, Unanswered: 1}, false},
		{"a refused or suspended token's old result does not count", []jetonv1alpha1.TechnicalToken{
			tt("", jetonv1alpha1.ReasonTimeout, 3), tt("", jetonv1alpha1.ReasonProbeSucceeded, 0, notScheduled), tt("", jetonv1alpha1.ReasonProbeSucceeded, 0, suspended)},
			HostHealth{Host: official, Probed: 1, Unanswered: 1}, true},
		{"another host is another health", []jetonv1alpha1.TechnicalToken{
			tt("", jetonv1alpha1.ReasonTimeout, 3), tt("https://staging.entreprise.api.gouv.fr", jetonv1alpha1.ReasonProbeSucceeded, 0)},
			HostHealth{Host: official, Probed: 1, Unanswered: 1}, true},
		{"a timeout under 5s says more about spec.timeout than about the host", []jetonv1alpha1.TechnicalToken{
			tt("", jetonv1alpha1.ReasonTimeout, 3, func(tt *jetonv1alpha1.TechnicalToken) {
				tt.Spec.Timeout = &metav1.Duration{Duration: time.Millisecond}
			})},
			HostHealth{Host: official}, false},
		{"a result about an older spec does not count", []jetonv1alpha1.TechnicalToken{
			tt("", jetonv1alpha1.ReasonTimeout, 3, func(tt *jetonv1alpha1.TechnicalToken) { tt.Generation = 2; tt.Status.ObservedGeneration = 1 })},
			HostHealth{Host: official}, false},
		{"recovered: the last probe succeeded", []jetonv1alpha1.TechnicalToken{
			tt("", jetonv1alpha1.ReasonProbeSucceeded, 0)},
			HostHealth{Host: official, Probed: 1}, false},
		{"no token of the host", nil, HostHealth{Host: official}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := HealthOf(HostHealths(tc.tts), official)
			if got != tc.want || got.Unreachable() != tc.unreachable {
				t.Errorf("HealthOf = %+v (unreachable %v), want %+v (unreachable %v)", got, got.Unreachable(), tc.want, tc.unreachable)
			}
		})
	}
}
