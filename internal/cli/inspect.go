package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/token"
)

// Inspection is what a token says about itself and its fingerprint: never the token.
type Inspection struct {
	// Kind is "JWT" (API Entreprise, API Particulier) or "DemarchesNumeriques".
	Kind string `json:"kind"`
	// API is the API it was decoded for, when known (given, or Démarches Numériques).
	API         string     `json:"api,omitempty"`
	TokenID     string     `json:"tokenID,omitempty"`
	Scopes      []string   `json:"scopes,omitempty"`
	IssuedAt    *time.Time `json:"issuedAt,omitempty"`
	ExpiresAt   *time.Time `json:"expiresAt,omitempty"`
	DaysLeft    *int       `json:"daysLeft,omitempty"`
	Fingerprint string     `json:"fingerprint"`
}

// Inspect decodes raw (the bytes of a Secret key, or what was piped in) offline, without
// verifying any signature: nobody but the issuer can. api may be empty: a JWT is then
// decoded as API Entreprise and API Particulier tokens are alike, anything else as a
// Démarches Numériques token. Errors come from the token package and never quote the token.
func Inspect(raw []byte, api jetonv1alpha1.API, now time.Time) (Inspection, error) {
	tok, err := token.Normalize(raw)
	if err != nil {
		return Inspection{}, err
	}
	kind := "JWT"
	decodeAs := api
	if api == "" {
		decodeAs = jetonv1alpha1.APIEntreprise
		if strings.Count(tok, ".") != 2 {
			decodeAs = jetonv1alpha1.DemarchesNumeriques
		}
	}
	if decodeAs == jetonv1alpha1.DemarchesNumeriques {
		kind = string(jetonv1alpha1.DemarchesNumeriques)
	}
	info, err := token.Decode(decodeAs, tok)
	if err != nil {
		return Inspection{}, err
	}
	in := Inspection{Kind: kind, TokenID: info.ID, Scopes: info.Scopes, Fingerprint: token.Fingerprint(tok)}
	if api != "" || kind != "JWT" {
		in.API = string(decodeAs)
	}
	if info.IssuedAt != nil {
		t := info.IssuedAt.UTC()
		in.IssuedAt = &t
	}
	if info.ExpiresAt != nil {
		t := info.ExpiresAt.UTC()
		d := DaysLeft(now, t)
		in.ExpiresAt, in.DaysLeft = &t, &d
	}
	return in, nil
}

// Expired reports whether the token's own expiry has passed.
func (in Inspection) Expired(now time.Time) bool {
	return in.ExpiresAt != nil && !in.ExpiresAt.After(now)
}

// WriteInspection prints an inspection as text, or as JSON when format is "json".
func WriteInspection(w io.Writer, in Inspection, format string, now time.Time) error {
	if format == FormatJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	}
	if format != "" && format != FormatTable {
		return fmt.Errorf("unknown output format %q: use table or json", format)
	}
	var kind string
	switch {
	case in.Kind == "JWT" && in.API == "":
		kind = "JWT (API Entreprise or API Particulier; signature not verified)"
	case in.Kind == "JWT":
		kind = fmt.Sprintf("JWT (%s; signature not verified)", in.API)
	default:
		kind = "Démarches Numériques token (its expiry is known only to the API: declare it in spec.expiresAt)"
	}
	fmt.Fprintf(w, "Kind:         %s\n", kind)
	fmt.Fprintf(w, "Token ID:     %s\n", orDash(in.TokenID))
	fmt.Fprintf(w, "Scopes:       %s\n", orDash(strings.Join(in.Scopes, ", ")))
	fmt.Fprintf(w, "Issued:       %s\n", orDash(rfc3339(in.IssuedAt)))
	expires := orDash(rfc3339(in.ExpiresAt))
	if in.DaysLeft != nil {
		if in.Expired(now) {
			expires += fmt.Sprintf(" (EXPIRED %s ago)", days(-*in.DaysLeft))
		} else {
			expires += fmt.Sprintf(" (%s left)", days(*in.DaysLeft))
		}
	}
	fmt.Fprintf(w, "Expires:      %s\n", expires)
	fmt.Fprintf(w, "Fingerprint:  %s\n", in.Fingerprint)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
