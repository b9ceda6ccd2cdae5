package isolation

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
)

// TestJudge has a row for every reason a PublicClient can report, and for the claim the
// spec leads to.
func TestJudge(t *testing.T) {
	client := func(mutate ...func(*jetonv1alpha1.PublicClient)) *jetonv1alpha1.PublicClient {
		c := &jetonv1alpha1.PublicClient{
			ObjectMeta: metav1.ObjectMeta{Name: "mairie"},
			Spec:       jetonv1alpha1.PublicClientSpec{SIRET: "73282932000074", Namespace: "ns-mairie"},
		}
		for _, m := range mutate {
			m(c)
		}
		return c
	}
	badSIRET := func(c *jetonv1alpha1.PublicClient) { c.Spec.SIRET = "73282932000075" }
	noPolicy := func(c *jetonv1alpha1.PublicClient) {
		c.Spec.Isolation = jetonv1alpha1.Isolation{NetworkPolicy: jetonv1alpha1.NetworkPolicyDisabled, PodSecurity: jetonv1alpha1.PodSecurityBaseline}
	}
	privileged := func(c *jetonv1alpha1.PublicClient) {
		c.Spec.Isolation.PodSecurity = jetonv1alpha1.PodSecurityPrivileged
	}
	claimed := func(v Verdict, origin jetonv1alpha1.NamespaceOrigin, message string) *Decision {
		return &Decision{Verdict: v, Origin: origin, Message: message}
	}
	const reservedWhy = "it is the operator's own namespace"

	tests := []struct {
		name  string
		facts Facts
		want  Judgement // Verdict.Message and Err are checked by wantMessage
		// wantMessage are substrings of the condition message (or of Err).
		wantMessage []string
	}{
		{"InvalidSIRET", Facts{Client: client(badSIRET)},
			Judgement{Verdict: conditions.Verdict{State: conditions.Stalled, Reason: jetonv1alpha1.ReasonInvalidSIRET, Warning: true}, Announce: true},
			[]string{"spec.siret", "checksum", "recipient"}},
		{"InvalidSIRET before a reserved namespace", Facts{Client: client(badSIRET), Reserved: reservedWhy},
			Judgement{Verdict: conditions.Verdict{State: conditions.Stalled, Reason: jetonv1alpha1.ReasonInvalidSIRET, Warning: true}, Announce: true},
			[]string{"spec.siret"}},
		{"NamespaceReserved", Facts{Client: client(), Reserved: reservedWhy},
			Judgement{Verdict: conditions.Verdict{State: conditions.Stalled, Reason: jetonv1alpha1.ReasonNamespaceReserved, Warning: true}, Announce: true, Forget: true},
			[]string{"namespace ns-mairie is reserved (" + reservedWhy + ")", "spec.namespace"}},
		{"a namespace the spec allows is claimed", Facts{Client: client()},
			Judgement{Claim: true}, nil},
		{"PodSecurityBelowFloor: privileged under the baseline floor, before any claim", Facts{Client: client(privileged), PodSecurityFloor: jetonv1alpha1.PodSecurityBaseline},
			Judgement{Verdict: conditions.Verdict{State: conditions.Stalled, Reason: jetonv1alpha1.ReasonPodSecurityBelowFloor, Warning: true}, Announce: true},
			[]string{"spec.isolation.podSecurity privileged is below the operator's floor baseline", "--pod-security-floor", "namespace ns-mairie keeps the labels it has"}},
		{"PodSecurityBelowFloor: baseline under a restricted floor", Facts{Client: client(noPolicy), PodSecurityFloor: jetonv1alpha1.PodSecurityRestricted},
			Judgement{Verdict: conditions.Verdict{State: conditions.Stalled, Reason: jetonv1alpha1.ReasonPodSecurityBelowFloor, Warning: true}, Announce: true},
			[]string{"baseline is below the operator's floor restricted"}},
		{"privileged allowed once the admin lowers the floor", Facts{Client: client(privileged), PodSecurityFloor: jetonv1alpha1.PodSecurityPrivileged},
			Judgement{Claim: true}, nil},
		{"the default (restricted) meets any floor", Facts{Client: client(), PodSecurityFloor: jetonv1alpha1.PodSecurityRestricted},
			Judgement{Claim: true}, nil},
		{"NamespaceOwnedElsewhere", Facts{Client: client(), Claim: claimed(OwnedElsewhere, "", "namespace ns-mairie belongs to PublicClient \"region\"")},
			Judgement{Verdict: conditions.Verdict{State: conditions.Stalled, Reason: jetonv1alpha1.ReasonNamespaceOwnedElsewhere, Warning: true}, Announce: true, Forget: true, RequeueAfter: OwnedElsewhereRetry},
			[]string{`belongs to PublicClient "region"`}},
		{"NamespaceTerminating", Facts{Client: client(), Claim: claimed(Terminating, "", "namespace ns-mairie is being deleted")},
			Judgement{Verdict: conditions.Verdict{State: conditions.NotReady, Reason: jetonv1alpha1.ReasonNamespaceTerminating}, RequeueAfter: TerminatingRetry},
			[]string{"being deleted"}},
		{"InternalError: a free namespace that vanished once created by someone else", Facts{Client: client(), Claim: claimed(Create, "", "")},
			Judgement{}, []string{"namespace ns-mairie appeared and vanished"}},
		{"Ready, namespace created", Facts{Client: client(), Claim: claimed(Create, jetonv1alpha1.NamespaceCreated, ""), Created: true},
			Judgement{Verdict: conditions.Verdict{State: conditions.Ready, Reason: jetonv1alpha1.ReasonReady}, Keep: true},
			[]string{"namespace ns-mairie is ready: Pod Security restricted, NetworkPolicy jeton-isolation"}},
		{"Ready, namespace owned, no policy", Facts{Client: client(noPolicy), Claim: claimed(Owned, jetonv1alpha1.NamespaceAdopted, "")},
			Judgement{Verdict: conditions.Verdict{State: conditions.Ready, Reason: jetonv1alpha1.ReasonReady}, Keep: true},
			[]string{"namespace ns-mairie is ready: Pod Security baseline, no NetworkPolicy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Judge(tt.facts)
			message := got.Message
			if got.Err != nil {
				message = got.Err.Error()
			}
			if wantErr := strings.HasPrefix(tt.name, "InternalError"); (got.Err != nil) != wantErr {
				t.Errorf("Err = %v, want an error: %v", got.Err, wantErr)
			}
			got.Message, got.Err = "", nil
			if got != tt.want {
				t.Errorf("Judge = %+v, want %+v", got, tt.want)
			}
			for _, s := range tt.wantMessage {
				if !strings.Contains(message, s) {
					t.Errorf("message %q does not hold %q", message, s)
				}
			}
		})
	}
}

func TestAdopted(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	pc := &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: "mairie", CreationTimestamp: metav1.NewTime(t0)}}
	ns := func(created time.Time) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns-mairie", UID: "ns-uid", CreationTimestamp: metav1.NewTime(created)}}
	}
	adopted := Decision{Verdict: Owned, Origin: jetonv1alpha1.NamespaceAdopted}
	retained := Decision{Verdict: Owned, Origin: jetonv1alpha1.NamespaceCreated}
	tests := []struct {
		name     string
		recorded types.UID
		ns       *corev1.Namespace
		d        Decision
		want     string // substring of the note; "" for none
	}{
		{"older namespace, asked for", "", ns(t0.Add(-time.Hour)), adopted, "Adopted namespace ns-mairie, which it requested (spec.adoptNamespace)"},
		{"same second as the client", "", ns(t0), adopted, "Adopted namespace ns-mairie"},
		{"retained by an earlier client of this name", "", ns(t0.Add(-time.Hour)), retained, "which jeton created for a PublicClient of this name and retained"},
		{"already recorded", "ns-uid", ns(t0.Add(-time.Hour)), adopted, ""},
		{"younger: jeton created it a moment ago (status write not seen yet)", "", ns(t0.Add(time.Second)), retained, ""},
		{"just created", "", ns(t0), Decision{Verdict: Create, Origin: jetonv1alpha1.NamespaceCreated}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Adopted(pc, tt.recorded, tt.ns, tt.d)
			if (got == "") != (tt.want == "") || !strings.Contains(got, tt.want) {
				t.Errorf("Adopted = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBelowFloor(t *testing.T) {
	const (
		p = jetonv1alpha1.PodSecurityPrivileged
		b = jetonv1alpha1.PodSecurityBaseline
		r = jetonv1alpha1.PodSecurityRestricted
	)
	tests := []struct {
		level, floor jetonv1alpha1.PodSecurityLevel
		want         bool
	}{
		{p, "", false}, {p, p, false}, {p, b, true}, {p, r, true},
		{b, p, false}, {b, b, false}, {b, r, true},
		{r, r, false}, {"", r, false}, // empty: the CRD's default, restricted
		{"unknown", p, true}, {"unknown", b, true},
	}
	for _, tt := range tests {
		if got := BelowFloor(tt.level, tt.floor); got != tt.want {
			t.Errorf("BelowFloor(%q, %q) = %v, want %v", tt.level, tt.floor, got, tt.want)
		}
	}
	for _, s := range []string{"privileged", "baseline", "restricted"} {
		if l, err := ParsePodSecurityLevel(s); err != nil || string(l) != s {
			t.Errorf("ParsePodSecurityLevel(%q) = %q, %v", s, l, err)
		}
	}
	for _, s := range []string{"", "Privileged", "none"} {
		if _, err := ParsePodSecurityLevel(s); err == nil {
			t.Errorf("ParsePodSecurityLevel(%q) accepted", s)
		}
	}
}

// TestDeleteAllowed: a namespace is deleted only when Delete was recorded as it was created,
// or NamespaceDeleteGrace before the deletion; an editor switching to Delete just before
// deleting the client deletes nothing.
func TestDeleteAllowed(t *testing.T) {
	created := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(created.Add(d)); return &t }
	del, ret := jetonv1alpha1.NamespacePolicyDelete, jetonv1alpha1.NamespacePolicyRetain
	tests := []struct {
		name    string
		policy  jetonv1alpha1.NamespacePolicy
		since   *metav1.Time
		now     time.Duration
		want    bool
		wantWhy string
	}{
		{"Delete when the namespace was created", del, at(0), time.Minute, true, ""},
		{"Delete switched on a second after the creation", del, at(time.Second), time.Minute, false, "set 59s ago"},
		{"Retain", ret, nil, time.Hour, false, "namespacePolicy Retain"},
		{"Delete switched on just before the deletion", del, at(72 * time.Hour), 72*time.Hour + 5*time.Second, false, "set 5s ago, after the namespace was created"},
		{"Delete switched on an hour before", del, at(72 * time.Hour), 73 * time.Hour, false, "takes effect only after 24h0m0s"},
		{"Delete in place for the grace period", del, at(72 * time.Hour), 72*time.Hour + NamespaceDeleteGrace, true, ""},
		{"Delete never recorded (status lost)", del, nil, time.Hour, false, "never recorded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, why := DeleteAllowed(tt.policy, tt.since, created, created.Add(tt.now))
			if ok != tt.want || !strings.Contains(why, tt.wantWhy) {
				t.Errorf("DeleteAllowed = %v, %q; want %v, %q", ok, why, tt.want, tt.wantWhy)
			}
		})
	}
	now := created.Add(time.Hour)
	if DeleteSince(ret, at(0), nil, now) != nil {
		t.Error("Retain keeps namespaceDeleteSince")
	}
	if got := DeleteSince(del, at(0), nil, now); !got.Time.Equal(created) {
		t.Errorf("Delete moved namespaceDeleteSince to %v", got)
	}
	if got := DeleteSince(del, nil, nil, now); got == nil || !got.Time.Equal(now) {
		t.Errorf("Delete first seen: namespaceDeleteSince %v, want %v", got, now)
	}
	if got := DeleteSince(del, nil, nil, created.Add(300*time.Millisecond)); got == nil || !got.Time.Equal(created.Add(time.Second)) {
		t.Errorf("Delete first seen within the namespace's creation second: namespaceDeleteSince %v, want the next second", got)
	}
	if got := DeleteSince(del, nil, at(0), now); got == nil || !got.Time.Equal(created) {
		t.Errorf("Delete seen as jeton creates the namespace: namespaceDeleteSince %v, want its creation %v", got, created)
	}
}
