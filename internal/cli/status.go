package cli

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// Section is a group of the status report. Sections are listed in this order: most urgent
// first.
type Section int

const (
	SectionExpired Section = iota
	SectionConflict
	SectionStalled
	SectionFailingProbe
	SectionNotReady
	SectionNotReconciled
	SectionExpiring7
	SectionExpiring30
	SectionExpiring90
	sectionCount
)

var sectionTitles = [sectionCount]string{
	SectionExpired:       "EXPIRED",
	SectionConflict:      "CONFLICTS",
	SectionStalled:       "STALLED",
	SectionFailingProbe:  "FAILING PROBES",
	SectionNotReady:      "NOT READY",
	SectionNotReconciled: "NOT RECONCILED",
	SectionExpiring7:     "EXPIRING WITHIN 7 DAYS",
	SectionExpiring30:    "EXPIRING WITHIN 30 DAYS",
	SectionExpiring90:    "EXPIRING WITHIN 90 DAYS",
}

// sectionHints say what a section means, after its title.
var sectionHints = [sectionCount]string{
	SectionConflict:      "refused to keep one token to one client (or a Secret name taken): each message says what holds it",
	SectionStalled:       "a human must act: each message says what to do",
	SectionFailingProbe:  "the API's own check fails for these technical tokens",
	SectionNotReconciled: "just applied? is the operator running?",
}

// conflictReasons are the refusals of "one token, one client" and of name clashes.
var conflictReasons = map[string]bool{
	jetonv1alpha1.ReasonTokenConflict:        true,
	jetonv1alpha1.ReasonTechnicalTokenReuse:  true,
	jetonv1alpha1.ReasonSecretClientMismatch: true,
	jetonv1alpha1.ReasonTargetSecretConflict: true,
}

// Item is one resource that needs attention.
type Item struct {
	Kind, Namespace, Name string
	// Client and API/Environment, when the kind has them.
	Client, API, Environment string
	ExpiresAt                *time.Time
	DaysLeft                 *int
	// Detail is a short fact (an expiry, a count of failed probes); Reason and Message
	// are the Ready condition's.
	Detail, Reason, Message string
}

func (it Item) ref() string {
	if it.Namespace == "" {
		return it.Name
	}
	return it.Namespace + "/" + it.Name
}

// Report is the fleet sorted by urgency.
type Report struct {
	Now      time.Time
	Sections [sectionCount][]Item
	// What is fine, counted.
	ClientsReady, HabilitationsFine, TechnicalTokensFine, TechnicalTokensSuspended int
	Clients, Habilitations, TechnicalTokens                                        int
}

// Status sorts every resource of the fleet into the first section that fits it, or counts
// it as fine. now is the clock for expiry.
func Status(f Fleet, now time.Time) Report {
	rep := Report{Now: now, Clients: len(f.Clients), Habilitations: len(f.Habilitations), TechnicalTokens: len(f.TechnicalTokens)}
	for i := range f.Clients {
		c := &f.Clients[i]
		it := Item{Kind: KindPublicClient, Name: c.Name}
		if s, ok := classify(&it, c.Status.Conditions, c.Generation, nil, now); ok {
			rep.add(s, it)
			continue
		}
		rep.ClientsReady++
	}
	for i := range f.Habilitations {
		h := &f.Habilitations[i]
		it := Item{Kind: KindHabilitation, Namespace: h.Namespace, Name: h.Name, Client: h.Spec.ClientRef.Name,
			API: string(h.Spec.API), Environment: environment(h.Spec.Environment)}
		if s, ok := classify(&it, h.Status.Conditions, h.Generation, h.Status.ExpiresAt, now); ok {
			rep.add(s, it)
			continue
		}
		rep.HabilitationsFine++
	}
	for i := range f.TechnicalTokens {
		tt := &f.TechnicalTokens[i]
		it := Item{Kind: KindTechnicalToken, Namespace: tt.Namespace, Name: tt.Name,
			API: string(tt.Spec.API), Environment: environment(tt.Spec.Environment)}
		if s, ok := classifyTechnicalToken(&it, tt, now); ok {
			rep.add(s, it)
			continue
		}
		if tt.Spec.Suspend {
			rep.TechnicalTokensSuspended++
		} else {
			rep.TechnicalTokensFine++
		}
	}
	for s := range rep.Sections {
		items := rep.Sections[s]
		slices.SortStableFunc(items, func(a, b Item) int {
			return cmp.Or(compareExpiry(a, b), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
		})
	}
	return rep
}

// compareExpiry puts the soonest expiry first, and items without one last.
func compareExpiry(a, b Item) int {
	switch {
	case a.ExpiresAt == nil && b.ExpiresAt == nil:
		return 0
	case a.ExpiresAt == nil:
		return 1
	case b.ExpiresAt == nil:
		return -1
	}
	return a.ExpiresAt.Compare(*b.ExpiresAt)
}

func (r *Report) add(s Section, it Item) { r.Sections[s] = append(r.Sections[s], it) }

// classify fills it from the conditions and expiry and returns its section, or false when
// the resource is fine. expiresAt is nil for kinds without a token.
func classify(it *Item, conds []metav1.Condition, generation int64, expiresAt *metav1.Time, now time.Time) (Section, bool) {
	ready := meta.FindStatusCondition(conds, jetonv1alpha1.ConditionReady)
	current := ready != nil && ready.ObservedGeneration >= generation
	if current {
		it.Reason, it.Message = ready.Reason, oneLine(ready.Message)
	}
	if expiresAt != nil {
		t := expiresAt.UTC()
		d := DaysLeft(now, t)
		it.ExpiresAt, it.DaysLeft = &t, &d
	}
	switch {
	case it.ExpiresAt != nil && !it.ExpiresAt.After(now):
		it.Detail = fmt.Sprintf("expired %s (%s ago)", it.ExpiresAt.Format(time.DateOnly), days(-*it.DaysLeft))
		return SectionExpired, true
	case current && (it.Reason == jetonv1alpha1.ReasonTokenExpired || it.Reason == jetonv1alpha1.ReasonExpired) && ready.Status != metav1.ConditionTrue:
		it.Detail = "the API says the token expired"
		return SectionExpired, true
	case !current:
		if ready == nil {
			it.Detail = "no Ready condition yet"
		} else {
			it.Detail = fmt.Sprintf("status describes generation %d, the spec is at %d", ready.ObservedGeneration, generation)
		}
		return SectionNotReconciled, true
	case conflictReasons[it.Reason]:
		return SectionConflict, true
	case meta.IsStatusConditionTrue(conds, jetonv1alpha1.ConditionStalled):
		return SectionStalled, true
	case ready.Status != metav1.ConditionTrue:
		return SectionNotReady, true
	}
	if it.DaysLeft != nil {
		it.Detail = fmt.Sprintf("expires %s (%s left)", it.ExpiresAt.Format(time.DateOnly), days(*it.DaysLeft))
		switch {
		case *it.DaysLeft < 7:
			return SectionExpiring7, true
		case *it.DaysLeft < 30:
			return SectionExpiring30, true
		case *it.DaysLeft < 90:
			return SectionExpiring90, true
		}
	}
	return 0, false
}

func classifyTechnicalToken(it *Item, tt *jetonv1alpha1.TechnicalToken, now time.Time) (Section, bool) {
	s, ok := classify(it, tt.Status.Conditions, tt.Generation, tt.Status.ExpiresAt, now)
	if tt.Spec.Suspend && ok && s == SectionNotReady && it.Reason == jetonv1alpha1.ReasonSuspended {
		return 0, false // never probed and suspended on purpose: counted as suspended
	}
	st := tt.Status
	failing := st.ConsecutiveFailures > 0 && st.LastResult != nil
	if !failing || (ok && s < SectionFailingProbe) {
		return s, ok
	}
	lr := st.LastResult
	threshold := cmp.Or(tt.Spec.FailureThreshold, 3)
	it.Detail = fmt.Sprintf("%d failed probe(s) in a row (Ready turns False at %d), last: %s", st.ConsecutiveFailures, threshold, lr.Reason)
	if lr.HTTPStatus != 0 {
		it.Detail += fmt.Sprintf(", HTTP %d", lr.HTTPStatus)
	}
	if lr.Code != "" {
		it.Detail += ", code " + lr.Code
	}
	return SectionFailingProbe, true
}

func days(n int) string {
	if n == 1 {
		return "1 day"
	}
	return fmt.Sprintf("%d days", n)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// NeedsAction counts the items that need action: everything listed, except tokens
// expiring in failWithinDays days or more.
func (r Report) NeedsAction(failWithinDays int) int {
	n := 0
	for s, items := range r.Sections {
		for _, it := range items {
			if Section(s) < SectionExpiring7 || (it.DaysLeft != nil && *it.DaysLeft < failWithinDays) {
				n++
			}
		}
	}
	return n
}

// WriteStatus prints the report; scope says what it covers ("all namespaces", "namespace x").
func WriteStatus(w io.Writer, r Report, scope string, failWithinDays int) {
	n := r.NeedsAction(failWithinDays)
	verdict := "nothing needs action"
	if n > 0 {
		verdict = fmt.Sprintf("%d need action", n)
	}
	fmt.Fprintf(w, "jeton fleet in %s at %s: %d PublicClient(s), %d Habilitation(s), %d TechnicalToken(s); %s.\n",
		scope, r.Now.UTC().Format(time.RFC3339), r.Clients, r.Habilitations, r.TechnicalTokens, verdict)
	for s, items := range r.Sections {
		if len(items) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s (%d)", sectionTitles[s], len(items))
		if h := sectionHints[s]; h != "" {
			fmt.Fprintf(w, " - %s", h)
		}
		fmt.Fprintln(w)
		for _, it := range items {
			line := "  " + it.Kind + " " + it.ref()
			if it.Client != "" {
				line += "  client=" + it.Client
			}
			if it.API != "" {
				line += "  api=" + it.API + "/" + it.Environment
			}
			if it.Detail != "" {
				line += "  " + it.Detail
			}
			fmt.Fprintln(w, line)
			if it.Reason != "" {
				fmt.Fprintf(w, "      %s: %s\n", it.Reason, it.Message)
			}
		}
	}
	fmt.Fprintf(w, "\nFINE\n")
	fmt.Fprintf(w, "  %d PublicClient(s) Ready\n", r.ClientsReady)
	fmt.Fprintf(w, "  %d Habilitation(s) injected, token valid for 90 days or more (or expiry unknown)\n", r.HabilitationsFine)
	fmt.Fprintf(w, "  %d TechnicalToken(s) probing fine\n", r.TechnicalTokensFine)
	if r.TechnicalTokensSuspended > 0 {
		fmt.Fprintf(w, "  %d TechnicalToken(s) suspended (spec.suspend)\n", r.TechnicalTokensSuspended)
	}
}
