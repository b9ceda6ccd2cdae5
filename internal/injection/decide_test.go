package injection

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
)

// TestHabilitationVerdicts has a row for every reason a Habilitation can report, with the
// check that decides it.
func TestHabilitationVerdicts(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	hab := func(edit func(h *jetonv1alpha1.Habilitation)) *jetonv1alpha1.Habilitation {
		h := habilitation()
		h.CreationTimestamp = metav1.NewTime(now.Add(-time.Minute))
		h.Spec.TokenSecretRef.Name = "dgfip-token"
		h.Status.TargetSecret = &jetonv1alpha1.SecretReference{Namespace: "trifouilly", Name: "dgfip"}
		h.Status.TokenFingerprint = "fp1"
		if edit != nil {
			edit(h)
		}
		return h
	}
	readyClient := func() *jetonv1alpha1.PublicClient {
		c := &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: "trifouilly", Generation: 1}}
		c.Status.Conditions = []metav1.Condition{{Type: jetonv1alpha1.ConditionReady, Status: metav1.ConditionTrue, ObservedGeneration: 1, Reason: jetonv1alpha1.ReasonReady}}
		return c
	}
	deleting := readyClient()
	deleting.DeletionTimestamp = &metav1.Time{Time: now}
	settingUp := readyClient()
	settingUp.Status.Conditions = nil
	expiresAt := func(d time.Duration) func(h *jetonv1alpha1.Habilitation) {
		return func(h *jetonv1alpha1.Habilitation) { h.Status.ExpiresAt = &metav1.Time{Time: now.Add(d)} }
	}
	judge := func(h *jetonv1alpha1.Habilitation) *conditions.Verdict { v, _ := Judge(now, h); return &v }
	other := Binding{Kind: KindHabilitation, Namespace: "jeton-system", Name: "older", Client: "autre"}

	tests := []struct {
		reason string
		check  func() *conditions.Verdict
		state  conditions.State
		// inMessage is what the message must say for the user to act.
		inMessage string
	}{
		{jetonv1alpha1.ReasonNamespaceNotAllowed, func() *conditions.Verdict {
			return NamespaceNotAllowed(hab(nil), []string{"credentials"})
		}, conditions.Stalled, "--credentials-namespaces"},
		{jetonv1alpha1.ReasonSecretClientMismatch + " (kept)", func() *conditions.Verdict {
			return RefusedForLabel([]metav1.Condition{{Type: jetonv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: jetonv1alpha1.ReasonSecretClientMismatch}})
		}, conditions.Stalled, "Delete and re-create it"},
		{jetonv1alpha1.ReasonClientNotFound, func() *conditions.Verdict {
			v, _ := ClientProblem(now, hab(nil), nil, "", time.Hour)
			return v
		}, conditions.NotReady, "create it, or fix spec.clientRef.name"},
		{jetonv1alpha1.ReasonClientDeleting, func() *conditions.Verdict {
			v, _ := ClientProblem(now, hab(nil), deleting, "", time.Hour)
			return v
		}, conditions.NotReady, "being deleted"},
		{jetonv1alpha1.ReasonClientNotReady, func() *conditions.Verdict {
			v, _ := ClientProblem(now, hab(nil), readyClient(), "Namespace \"trifouilly\" is being deleted.", time.Hour)
			return v
		}, conditions.NotReady, "See the PublicClient's Ready condition"},
		{jetonv1alpha1.ReasonSecretClientMismatch, func() *conditions.Verdict {
			return BindingProblem(hab(nil), "fp1", Verdict{Outcome: Allowed}, []string{"autre"})
		}, conditions.Stalled, `Reference client "trifouilly"'s own token Secret`},
		{jetonv1alpha1.ReasonTechnicalTokenReuse, func() *conditions.Verdict {
			return BindingProblem(hab(nil), "fp1", Verdict{Outcome: TechnicalTokenReuse, With: Binding{Kind: KindTechnicalToken, Namespace: "jeton-system", Name: "tech"}}, nil)
		}, conditions.Stalled, "TechnicalToken jeton-system/tech"},
		{jetonv1alpha1.ReasonTokenConflict, func() *conditions.Verdict {
			return BindingProblem(hab(nil), "fp1", Verdict{Outcome: TokenConflict, With: other}, nil)
		}, conditions.Stalled, `Put client "trifouilly"'s own token in the Secret`},
		{jetonv1alpha1.ReasonAPIHostNotAllowed, func() *conditions.Verdict {
			return HostRefused(errors.New("host evil.example is not an official host"))
		}, conditions.Stalled, "spec.baseURL is refused: host evil.example"},
		{jetonv1alpha1.ReasonTargetSecretConflict, func() *conditions.Verdict {
			return TargetClash("trifouilly", "dgfip")
		}, conditions.Stalled, "choose another spec.target.secretName"},
		{jetonv1alpha1.ReasonTokenExpired, func() *conditions.Verdict {
			return judge(hab(expiresAt(-time.Hour)))
		}, conditions.Stalled, "expired at 2026-11-30T11:00:00Z"},
		{jetonv1alpha1.ReasonScopesMissing, func() *conditions.Verdict {
			return judge(hab(func(h *jetonv1alpha1.Habilitation) {
				expiresAt(365 * 24 * time.Hour)(h)
				h.Spec.ExpectedScopes = []string{"a", "b"}
				h.Status.Scopes = []string{"a"}
			}))
		}, conditions.Stalled, "lacks scopes required by spec.expectedScopes: b"},
		{jetonv1alpha1.ReasonTokenExpiringSoon, func() *conditions.Verdict {
			return judge(hab(expiresAt(10 * 24 * time.Hour)))
		}, conditions.Ready, "expires at 2026-12-10T12:00:00Z: renew it"},
		{jetonv1alpha1.ReasonInjected, func() *conditions.Verdict {
			return judge(hab(expiresAt(365 * 24 * time.Hour)))
		}, conditions.Ready, "injected into Secret trifouilly/dgfip; it expires at 2027-11-30T12:00:00Z"},
		{jetonv1alpha1.ReasonInjected + " (expiry unknown)", func() *conditions.Verdict {
			return judge(hab(nil))
		}, conditions.Ready, "set spec.expiresAt"},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			v := tt.check()
			if v == nil {
				t.Fatal("the check passed")
			}
			if reason, _, _ := strings.Cut(tt.reason, " "); v.State != tt.state || v.Reason != reason || !strings.Contains(v.Message, tt.inMessage) {
				t.Errorf("verdict %+v; want state %d, reason %s, a message with %q", v, tt.state, reason, tt.inMessage)
			}
			if wantWarning := v.Reason != jetonv1alpha1.ReasonInjected; v.Warning != wantWarning {
				t.Errorf("warning %v, want %v", v.Warning, wantWarning)
			}
		})
	}
}

// TestChecksPass: each check lets a sound Habilitation through.
func TestChecksPass(t *testing.T) {
	h := habilitation()
	c := &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: "trifouilly"}}
	if v := NamespaceNotAllowed(h, []string{h.Namespace}); v != nil {
		t.Errorf("NamespaceNotAllowed: %+v", v)
	}
	if v := RefusedForLabel(nil); v != nil {
		t.Errorf("RefusedForLabel: %+v", v)
	}
	if v, wait := ClientProblem(time.Now(), h, c, "", time.Hour); v != nil || wait {
		t.Errorf("ClientProblem: %+v, wait %v", v, wait)
	}
	if v := BindingProblem(h, "fp", Verdict{Outcome: Allowed}, []string{h.Spec.ClientRef.Name}); v != nil {
		t.Errorf("BindingProblem with a label for its own client: %+v", v)
	}
	if v := HostRefused(nil); v != nil {
		t.Errorf("HostRefused: %+v", v)
	}
}

// TestClientProblemWaits: a new Habilitation of a client being set up waits silently
// during the grace, and reports ClientNotReady after it or once it has reported before.
func TestClientProblemWaits(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	settingUp := &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: "trifouilly", Generation: 2}}
	settingUp.Status.Conditions = []metav1.Condition{{Type: jetonv1alpha1.ConditionReady, Status: metav1.ConditionTrue, ObservedGeneration: 1}}
	reported := settingUp.DeepCopy()
	reported.Status.Conditions[0].ObservedGeneration = 2
	for _, tt := range []struct {
		name     string
		age      time.Duration
		client   *jetonv1alpha1.PublicClient
		hasReady bool
		wait     bool
	}{
		{"new, client setting up: waits", time.Minute, settingUp, false, true},
		{"grace over: reports", 2 * time.Hour, settingUp, false, false},
		{"client reported on its generation: reports", time.Minute, reported, false, false},
		{"the Habilitation already reported something: reports", time.Minute, settingUp, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := habilitation()
			h.CreationTimestamp = metav1.NewTime(now.Add(-tt.age))
			if tt.hasReady {
				h.Status.Conditions = []metav1.Condition{{Type: jetonv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: jetonv1alpha1.ReasonSecretNotFound}}
			}
			v, wait := ClientProblem(now, h, tt.client, "Namespace is not there yet.", time.Hour)
			if wait != tt.wait || (v == nil) != tt.wait {
				t.Errorf("verdict %+v, wait %v; want wait %v", v, wait, tt.wait)
			}
		})
	}
}

func TestJudgeNext(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	h := habilitation()
	h.Status.ExpiresAt = &metav1.Time{Time: now.Add(100 * 24 * time.Hour)}
	v1, next := Judge(now, h)
	if next != 10*24*time.Hour {
		t.Errorf("next %v, want 10 days (the start of the 90-day renewal window)", next)
	}
	// Absolute dates only: a day later the message is the same, no status write.
	if v2, _ := Judge(now.Add(24*time.Hour), h); v2 != v1 {
		t.Errorf("the verdict changed in a day: %q then %q", v1.Message, v2.Message)
	}
}

func TestHasForeignKeys(t *testing.T) {
	want := map[string][]byte{"TOKEN": nil, "RECIPIENT": nil}
	for _, tt := range []struct {
		name string
		have map[string][]byte
		ok   bool
	}{
		{"same keys", map[string][]byte{"TOKEN": nil, "RECIPIENT": nil}, false},
		{"fewer keys", map[string][]byte{"TOKEN": nil}, false},
		{"a key added by hand", map[string][]byte{"TOKEN": nil, "RECIPIENT": nil, "EXTRA": nil}, true},
	} {
		if got := HasForeignKeys(tt.have, want); got != tt.ok {
			t.Errorf("%s: HasForeignKeys = %v, want %v", tt.name, got, tt.ok)
		}
	}
}

// TestRotated covers the restart decision: status is jeton's own record; nothing a tenant
// writes (the injected Secret's annotation or data) counts, and a fingerprint recorded
// before canonical fingerprints is the same token.
func TestRotated(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		fp, statusFP, legacyFP string
		want                   bool
	}{
		{"first injection", "new", "", "legacy-new", false},
		{"steady state", "new", "new", "legacy-new", false},
		{"rotation", "new", "old", "legacy-new", true},
		{"crash after the Secret was written, status still old", "new", "old", "legacy-new", true},
		{"status recorded the legacy fingerprint of the same token: no restart", "new", "legacy-new", "legacy-new", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Rotated(tc.fp, tc.statusFP, tc.legacyFP); got != tc.want {
				t.Errorf("Rotated(%q, %q, %q) = %v, want %v", tc.fp, tc.statusFP, tc.legacyFP, got, tc.want)
			}
		})
	}
}

func TestWorkloadList(t *testing.T) {
	names := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("Deployment/web-%03d", i)
		}
		return out
	}
	for _, tt := range []struct {
		n    int
		want string
	}{
		{1, "Deployment/web-000"},
		{10, strings.Join(names(10), ", ")},
		{10000, strings.Join(names(10), ", ") + " and 9990 more"},
	} {
		if got := WorkloadList(names(tt.n)); got != tt.want {
			t.Errorf("%d workloads: %q, want %q", tt.n, got, tt.want)
		}
	}
}
