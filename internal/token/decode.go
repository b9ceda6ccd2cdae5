package token

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/sanitize"
)

// Info is what a token says about itself. Nothing in it is secret, and nothing in it is
// arbitrary bytes of the token: it is safe for status. A token is written by its issuer and
// delivered by the credentials admin, not by a stranger, but status must never echo
// whatever a token holds, so claims are kept only in bounded, documented shapes.
//
// The `sub` claim (the habilitation title, free text) is not read: nothing needs it.
type Info struct {
	// ID is the JWT jti when it is a bounded identifier (sanitize.IdentifierPattern; a
	// UUID on both APIs), else empty; or the Démarches Numériques token id (a UUID).
	ID        string
	IssuedAt  *time.Time // iat
	ExpiresAt *time.Time // exp; nil when the token carries none
	// Scopes from the `scopes` claim, or the older `roles`: scope-shaped names only
	// (sanitize.ScopeNames), sorted, without duplicates, at most sanitize.MaxScopes.
	Scopes []string
	// IgnoredScopes counts the entries of the claim left out of Scopes (not scope-shaped,
	// empty, or beyond the bound); never what they were.
	IgnoredScopes int
}

// dnFormat is how error messages describe a Démarches Numériques token.
const dnFormat = "Démarches Numériques tokens are base64url of <token-id UUID>;<secret>"

// maxNumericDate is 9999-12-31T23:59:59Z: later dates cannot be written as RFC 3339,
// so a status holding one could not be saved.
const maxNumericDate = 253402300799

// parser only decodes: clients cannot verify signatures (the HS256 secret is the issuer's),
// so nothing decoded is trusted, only reported. It is safe for concurrent use.
var parser = jwt.NewParser(jwt.WithPaddingAllowed())

// Decode decodes a token for an API, without verifying any signature.
//
// API Entreprise and API Particulier tokens are JWTs: jti, iat, exp and scopes (or the
// older roles) are read, unknown claims are ignored, a JWT without jti, or with a jti that is
// not a bounded identifier, is accepted (ID empty), and any alg, even "none", is fine since
// nothing is verified. Démarches Numériques tokens are base64url (padded or not, or standard
// base64) of "<token-id UUID>;<secret>" and carry no expiry. Errors are *DecodeError
// (wrapping ErrInvalid) and never contain any part of the token.
func Decode(api jetonv1alpha1.API, token string) (Info, error) {
	switch api {
	case jetonv1alpha1.APIEntreprise, jetonv1alpha1.APIParticulier:
		if err := checkCharacters(api, token); err != nil {
			return Info{}, err
		}
		return decodeJWT(api, token)
	case jetonv1alpha1.DemarchesNumeriques:
		if err := checkCharacters(api, token); err != nil {
			return Info{}, err
		}
		return decodeDN(token)
	default:
		return Info{}, fmt.Errorf("cannot decode tokens of unknown API %q: want %s, %s or %s", api,
			jetonv1alpha1.APIEntreprise, jetonv1alpha1.APIParticulier, jetonv1alpha1.DemarchesNumeriques)
	}
}

// checkCharacters rejects what no token of any API contains: both JWTs and base64 are
// printable ASCII without spaces. Checking up front also stops base64 decoders from
// silently skipping line breaks.
func checkCharacters(api jetonv1alpha1.API, token string) error {
	if token == "" {
		return invalid(api, "it is empty")
	}
	if len(token) > MaxSize {
		return invalid(api, "it is %d bytes long, more than the %d bytes a token can be", len(token), MaxSize)
	}
	for i := 0; i < len(token); i++ {
		if token[i] <= ' ' || token[i] > '~' {
			return invalid(api, "byte %d is whitespace or not printable ASCII; tokens are single words of printable ASCII", i+1)
		}
	}
	return nil
}

func decodeJWT(api jetonv1alpha1.API, token string) (Info, error) {
	if n := strings.Count(token, ".") + 1; n != 3 {
		if _, ok := decodeDNPayload(token); ok {
			return Info{}, invalid(api, "looks like a Démarches Numériques token, but %s tokens are JWTs; check spec.api and the Secret key", api)
		}
		return Info{}, invalid(api, "not a JWT: expected three dot-separated parts (header.payload.signature), found %d", n)
	}
	claims := jwt.MapClaims{}
	// ErrTokenUnverifiable only means the alg is missing or unknown: the claims were decoded,
	// and we would not verify the signature anyway.
	if _, _, err := parser.ParseUnverified(token, claims); err != nil && !errors.Is(err, jwt.ErrTokenUnverifiable) {
		return Info{}, jwtError(api, err)
	}

	var info Info
	var err error
	if info.ID, err = stringClaim(claims, "jti"); err != nil {
		return Info{}, invalid(api, "%v", err)
	}
	if !sanitize.IsIdentifier(info.ID) {
		// Dropped, not an error: the token may still work, and the jti is only a label
		// for status, which must not hold arbitrary bytes.
		info.ID = ""
	}
	if info.IssuedAt, err = numericDateClaim(claims, "iat"); err != nil {
		return Info{}, invalid(api, "%v", err)
	}
	if info.ExpiresAt, err = numericDateClaim(claims, "exp"); err != nil {
		return Info{}, invalid(api, "%v", err)
	}
	if info.Scopes, info.IgnoredScopes, err = scopesClaim(claims); err != nil {
		return Info{}, invalid(api, "%v", err)
	}
	return info, nil
}

// jwtError describes a parse error of the jwt library in our own words: the library's
// messages may quote decoded bytes of the token (encoding/json does), so they are never shown.
func jwtError(api jetonv1alpha1.API, err error) error {
	part := "JWT"
	switch msg := err.Error(); {
	case strings.Contains(msg, "decode header"):
		part = "JWT header"
	case strings.Contains(msg, "decode claim"):
		part = "JWT payload"
	case strings.Contains(msg, "decode signature"):
		part = "JWT signature"
	}
	var corrupt base64.CorruptInputError
	var wrongType *json.UnmarshalTypeError
	switch {
	case errors.As(err, &corrupt):
		return invalid(api, "the %s is not valid base64url", part)
	case errors.As(err, &wrongType):
		return invalid(api, "the %s is not a JSON object", part)
	default:
		return invalid(api, "the %s is not valid JSON", part)
	}
}

func stringClaim(claims jwt.MapClaims, name string) (string, error) {
	v, ok := claims[name]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s claim is not a string", name)
	}
	return s, nil
}

// numericDateClaim reads a JWT NumericDate (seconds since the epoch; fractions are dropped,
// as Kubernetes times have second precision).
func numericDateClaim(claims jwt.MapClaims, name string) (*time.Time, error) {
	v, ok := claims[name]
	if !ok || v == nil {
		return nil, nil
	}
	f, ok := v.(float64) // encoding/json decodes every JSON number as float64
	if !ok {
		return nil, fmt.Errorf("%s claim is not a number (seconds since 1970-01-01)", name)
	}
	if f < 0 || f > maxNumericDate {
		return nil, fmt.Errorf("%s claim is out of range: want seconds since 1970-01-01, before year 10000", name)
	}
	t := time.Unix(int64(f), 0).UTC()
	return &t, nil
}

// scopesClaim reads `scopes`, or `roles` on older tokens, keeping the scope-shaped names as
// a sorted set (sanitize.ScopeNames) and counting the others.
func scopesClaim(claims jwt.MapClaims) (scopes []string, ignored int, err error) {
	name := "scopes"
	v, ok := claims[name]
	if !ok || v == nil {
		name = "roles"
		v = claims[name]
	}
	if v == nil {
		return nil, 0, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, 0, fmt.Errorf("%s claim is not a list of strings", name)
	}
	names := make([]string, 0, len(list))
	for _, item := range list {
		s, ok := item.(string)
		if !ok {
			return nil, 0, fmt.Errorf("%s claim is not a list of strings", name)
		}
		names = append(names, s)
	}
	scopes, ignored = sanitize.ScopeNames(names)
	return scopes, ignored, nil
}

func decodeDN(token string) (Info, error) {
	api := jetonv1alpha1.DemarchesNumeriques
	if looksLikeJWT(token) {
		return Info{}, invalid(api, "looks like a JWT, but %s; check spec.api and the Secret key", dnFormat)
	}
	payload, ok := decodeBase64(token)
	if !ok {
		return Info{}, invalid(api, "not valid base64url; %s", dnFormat)
	}
	id, secret, found := strings.Cut(string(payload), ";")
	switch {
	case !found:
		return Info{}, invalid(api, "its decoded value has no ';'; %s", dnFormat)
	case !isUUID(id):
		return Info{}, invalid(api, "the token id before ';' is not a UUID; %s", dnFormat)
	case secret == "":
		return Info{}, invalid(api, "the secret after ';' is empty; %s", dnFormat)
	}
	return Info{ID: id}, nil
}

// decodeDNPayload reports whether token decodes like a Démarches Numériques token.
func decodeDNPayload(token string) (id string, ok bool) {
	payload, ok := decodeBase64(token)
	if !ok {
		return "", false
	}
	id, secret, found := strings.Cut(string(payload), ";")
	return id, found && isUUID(id) && secret != ""
}

// decodeBase64 accepts base64url and standard base64, padded or not: the format is
// specified as base64url, but tokens copied through other tools come back in either form.
func decodeBase64(s string) ([]byte, bool) {
	s = strings.TrimRight(s, "=")
	enc := base64.RawURLEncoding
	if strings.ContainsAny(s, "+/") {
		enc = base64.RawStdEncoding
	}
	b, err := enc.DecodeString(s)
	return b, err == nil
}

// looksLikeJWT reports whether token has three parts and a header that is a JSON object.
func looksLikeJWT(token string) bool {
	header, _, found := strings.Cut(token, ".")
	if !found || strings.Count(token, ".") != 2 {
		return false
	}
	b, err := parser.DecodeSegment(header)
	if err != nil {
		return false
	}
	var obj map[string]any
	return json.Unmarshal(b, &obj) == nil && obj != nil
}

// isUUID reports whether s is a UUID in its canonical 8-4-4-4-12 hexadecimal form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// MissingScopes returns the expected scopes the token lacks (sorted, without duplicates),
// or nil when it has them all.
func MissingScopes(have, expected []string) []string {
	var missing []string
	for _, s := range expected {
		if !slices.Contains(have, s) {
			missing = append(missing, s)
		}
	}
	slices.Sort(missing)
	return slices.Compact(missing)
}
