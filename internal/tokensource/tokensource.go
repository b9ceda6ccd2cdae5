// Package tokensource reads the token of a Habilitation or a TechnicalToken from its source
// Secret, and says in a condition verdict why it cannot when it cannot. Both kinds read
// their token the same way, with the same refusals; only the words differ.
package tokensource

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
	"github.com/jeton-dev/jeton/internal/token"
)

// DefaultKey is the CRD default of spec.tokenSecretRef.key.
const DefaultKey = "token"

// Reader is who reads a token source.
type Reader struct {
	// Namespace and Ref name the source Secret and key.
	Namespace string
	Ref       jetonv1alpha1.SecretKeyReference
	API       jetonv1alpha1.API
	// Client is the client a Habilitation binds the token to; "" for a TechnicalToken,
	// whose token is nobody's: a Secret labelled for any client is refused.
	Client string
	// Noun names the token in messages ("token", "technical token"); Issued says which
	// token belongs there ("the token issued for this habilitation").
	Noun, Issued string
}

// Token is a token read from its source. Value is the token itself: it goes into the
// injected Secret or a probe, never into status, logs, events or errors.
type Token struct {
	Value       string
	Fingerprint string
	Info        token.Info
}

// Key is the Secret key the token is read from.
func (r Reader) Key() string { return cmp.Or(r.Ref.Key, DefaultKey) }

// Read reads the token from src, the source Secret (nil when it does not exist). When it
// cannot, the verdict says why (Ready=False; Stalled when only a human can fix it). Its
// messages never quote the token: the token package's errors never do.
func (r Reader) Read(src *corev1.Secret) (Token, *conditions.Verdict) {
	key := r.Key()
	if src == nil {
		// Not stalled: the Secret is watched, and often arrives later (Sealed Secrets,
		// External Secrets).
		return Token{}, &conditions.Verdict{State: conditions.NotReady, Reason: jetonv1alpha1.ReasonSecretNotFound, Warning: true,
			Message: fmt.Sprintf("Secret %s/%s (spec.tokenSecretRef) not found: create it with the %s under key %q.", r.Namespace, r.Ref.Name, r.Noun, key)}
	}
	if owner := src.Labels[jetonv1alpha1.LabelClient]; owner != "" && owner != r.Client {
		// The credentials admin said whose token this is; an editor cannot say otherwise.
		msg := fmt.Sprintf("Secret %s/%s is labelled %s=%s: its token is client %q's, not client %q's. Reference client %q's own token Secret.",
			r.Namespace, r.Ref.Name, jetonv1alpha1.LabelClient, owner, owner, r.Client, r.Client)
		if r.Client == "" {
			msg = fmt.Sprintf("Secret %s/%s is labelled %s=%s: it holds client %q's token, which is never used as a technical token, so it is not probed. Reference the vendor's own technical token Secret.",
				r.Namespace, r.Ref.Name, jetonv1alpha1.LabelClient, owner, owner)
		}
		return Token{}, stalled(jetonv1alpha1.ReasonSecretClientMismatch, "%s", msg)
	}
	raw, ok := src.Data[key]
	if !ok {
		return Token{}, stalled(jetonv1alpha1.ReasonSecretKeyNotFound,
			"Secret %s/%s has no key %q (keys: %s): put the %s under that key or fix spec.tokenSecretRef.key.",
			r.Namespace, r.Ref.Name, key, strings.Join(slices.Sorted(maps.Keys(src.Data)), ", "), r.Noun)
	}
	tok, err := token.Normalize(raw)
	var info token.Info
	if err == nil {
		info, err = token.Decode(r.API, tok)
	}
	if err != nil {
		return Token{}, stalled(jetonv1alpha1.ReasonInvalidToken,
			"Secret %s/%s key %q does not hold a valid token: %v. Put %s there.", r.Namespace, r.Ref.Name, key, err, r.Issued)
	}
	return Token{Value: tok, Fingerprint: token.Fingerprint(tok), Info: info}, nil
}

func stalled(reason, format string, args ...any) *conditions.Verdict {
	return &conditions.Verdict{State: conditions.Stalled, Reason: reason, Message: fmt.Sprintf(format, args...), Warning: true}
}

// paris is the time zone of Démarches Numériques (demarches-simplifiees.fr
// config/application.rb: config.time_zone = 'Paris'). Embedded tzdata (cmd/main.go) makes
// it available in the distroless image.
var paris = func() *time.Location {
	if loc, err := time.LoadLocation("Europe/Paris"); err == nil {
		return loc
	}
	return time.FixedZone("CET", 3600) // never reached with time/tzdata linked in
}()

// DNExpiry is when a Démarches Numériques token declared to expire at declared stops
// working. The API stores the expiry as a date and refuses the token once that date is past
// (app/models/api_token.rb: `expires_at&.past?` on a date column): the token works through
// that whole day, Paris time. Only the date of spec.expiresAt (as written, in UTC) counts.
func DNExpiry(declared time.Time) time.Time {
	y, m, d := declared.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, paris)
}

// Status is what status records of a token: what it says about itself, never the token.
// declaredExpiry (spec.expiresAt) counts when the token carries no expiry; for Démarches
// Numériques it is a date (DNExpiry).
func Status(t Token, api jetonv1alpha1.API, declaredExpiry *metav1.Time) jetonv1alpha1.TokenStatus {
	st := jetonv1alpha1.TokenStatus{
		TokenFingerprint: t.Fingerprint,
		TokenID:          t.Info.ID,
		IssuedAt:         Time(t.Info.IssuedAt),
		ExpiresAt:        Time(t.Info.ExpiresAt),
		Scopes:           t.Info.Scopes,
	}
	if st.ExpiresAt == nil && declaredExpiry != nil {
		at := declaredExpiry.Time
		if api == jetonv1alpha1.DemarchesNumeriques {
			at = DNExpiry(at)
		}
		st.ExpiresAt = Time(&at)
	}
	return st
}

// Time is t as status stores it: UTC, truncated to the second (status round-trips through
// RFC 3339 with second precision), so an unchanged token compares equal and makes no
// status write. nil stays nil.
func Time(t *time.Time) *metav1.Time {
	if t == nil {
		return nil
	}
	mt := metav1.NewTime(t.UTC().Truncate(time.Second))
	return &mt
}
