// Package expiry classifies a token's expiry time so reconcilers can report it and requeue
// exactly when the classification next changes, instead of polling.
package expiry

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// State is where a token stands relative to its expiry.
type State string

const (
	// Valid: the token expires after the renewBefore window.
	Valid State = "Valid"
	// ExpiringSoon: the token is inside the renewBefore window; it still works.
	ExpiringSoon State = "ExpiringSoon"
	// Expired: the token's expiry time has come. The API refuses it unless it was
	// prolonged: API Entreprise and API Particulier read the expiry from their database.
	Expired State = "Expired"
	// Unknown: no expiry is known (the token carries none and none was declared).
	Unknown State = "Unknown"
)

// DefaultRenewBefore is the CRD default of spec.renewBefore: a token is reported as
// expiring 90 days before it does.
const DefaultRenewBefore = 90 * 24 * time.Hour

// Result is the classification of an expiry time at a given instant.
type Result struct {
	State State
	// Next is how long until the state next changes (start of the renewBefore window, or
	// expiry); 0 when it never will (Expired, Unknown). Reconcilers requeue after it.
	Next time.Duration
	// Date is the expiry as messages show it, RFC 3339 in UTC; "" when Unknown. Messages
	// carry this absolute date, never "in N days": a message that changed as time passes
	// would cost a status write a day.
	Date string
}

// Evaluate classifies expiresAt at now. A nil expiresAt is Unknown. The renewBefore window
// includes its start (exactly renewBefore before expiry is ExpiringSoon) and the expiry
// instant itself is Expired, as for a JWT `exp`. A negative renewBefore counts as zero.
func Evaluate(now time.Time, expiresAt *time.Time, renewBefore time.Duration) Result {
	if expiresAt == nil {
		return Result{State: Unknown}
	}
	renewBefore = max(renewBefore, 0)
	remaining := expiresAt.Sub(now)
	date := expiresAt.UTC().Format(time.RFC3339)
	switch {
	case remaining <= 0:
		return Result{State: Expired, Date: date}
	case remaining <= renewBefore:
		return Result{State: ExpiringSoon, Next: remaining, Date: date}
	default:
		return Result{State: Valid, Next: remaining - renewBefore, Date: date}
	}
}

// EvaluateResource is Evaluate for a resource's fields: expiresAt as its status records it
// (nil: unknown) and its spec.renewBefore (nil: DefaultRenewBefore).
func EvaluateResource(now time.Time, expiresAt *metav1.Time, renewBefore *metav1.Duration) Result {
	window := DefaultRenewBefore
	if renewBefore != nil {
		window = renewBefore.Duration
	}
	if expiresAt == nil {
		return Evaluate(now, nil, window)
	}
	return Evaluate(now, &expiresAt.Time, window)
}
