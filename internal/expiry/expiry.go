// Package expiry classifies a token's expiry time so reconcilers can report it and requeue
// exactly when the classification next changes, instead of polling.
package expiry

import (
	"fmt"
	"time"
)

// State is where a token stands relative to its expiry.
type State string

const (
	// Valid: the token expires after the renewBefore window.
	Valid State = "Valid"
	// ExpiringSoon: the token is inside the renewBefore window; it still works.
	ExpiringSoon State = "ExpiringSoon"
	// Expired: the token's expiry time has come; the API refuses it.
	Expired State = "Expired"
	// Unknown: no expiry is known (the token carries none and none was declared).
	Unknown State = "Unknown"
)

// Result is the classification of an expiry time at a given instant.
type Result struct {
	State State
	// Next is how long until the state next changes (start of the renewBefore window, or
	// expiry); 0 when it never will (Expired, Unknown). Reconcilers requeue after it.
	Next time.Duration
	// Remaining is the time until expiry, negative once expired; 0 when Unknown.
	Remaining time.Duration
	// Message is English and actionable, e.g. "token expires on 2027-01-03 (in 12 days);
	// renew it before then". It names no Secret or resource: callers add context.
	Message string
}

const day = 24 * time.Hour

// Evaluate classifies expiresAt at now. A nil expiresAt is Unknown. The renewBefore window
// includes its start (exactly renewBefore before expiry is ExpiringSoon) and the expiry
// instant itself is Expired, as for a JWT `exp`. A negative renewBefore counts as zero.
func Evaluate(now time.Time, expiresAt *time.Time, renewBefore time.Duration) Result {
	if expiresAt == nil {
		return Result{
			State:   Unknown,
			Message: "token expiry is unknown: the token carries none; declare it (spec.expiresAt) to be warned before it expires",
		}
	}
	renewBefore = max(renewBefore, 0)
	remaining := expiresAt.Sub(now)
	date := expiresAt.UTC().Format(time.RFC3339)
	switch {
	case remaining <= 0:
		return Result{
			State:     Expired,
			Remaining: remaining,
			Message:   fmt.Sprintf("token expired at %s (%s ago); the API refuses it: renew it on the API portal and update its Secret", date, humanize(-remaining)),
		}
	case remaining <= renewBefore:
		return Result{
			State:     ExpiringSoon,
			Next:      remaining,
			Remaining: remaining,
			Message:   fmt.Sprintf("token expires at %s (in %s); renew it on the API portal and update its Secret before then", date, humanize(remaining)),
		}
	default:
		return Result{
			State:     Valid,
			Next:      remaining - renewBefore,
			Remaining: remaining,
			Message:   fmt.Sprintf("token expires at %s (in %s)", date, humanize(remaining)),
		}
	}
}

// humanize renders a positive duration coarsely (whole days, hours or minutes, rounded
// down), so that messages built from it change rarely and do not churn status updates.
func humanize(d time.Duration) string {
	switch {
	case d >= day:
		return plural(int(d/day), "day")
	case d >= time.Hour:
		return plural(int(d/time.Hour), "hour")
	case d >= time.Minute:
		return plural(int(d/time.Minute), "minute")
	default:
		return "less than a minute"
	}
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
