// Package token turns the bytes of a Secret key into a token and learns what it can from it
// (identifier, scopes, expiry) without ever revealing it: no error, and nothing returned
// except Info and the fingerprint, contains any part of the token.
package token

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// MaxSize is the largest token accepted, in bytes. Real tokens are well under 2 KiB; a larger
// value is surely the wrong Secret key (a certificate, a kubeconfig...).
const MaxSize = 8 << 10

// bearer is the HTTP authorization scheme, often pasted along with the token.
const bearer = "Bearer "

// ErrInvalid is wrapped by every error of this package: the token cannot be used as is.
var ErrInvalid = errors.New("invalid token")

// DecodeError says why a token was rejected. Reason never contains any part of the token.
type DecodeError struct {
	// API the token was decoded for; empty for errors of Normalize.
	API jetonv1alpha1.API
	// Reason is an English explanation that says what to fix.
	Reason string
}

func (e *DecodeError) Error() string {
	if e.API == "" {
		return "invalid token: " + e.Reason
	}
	return fmt.Sprintf("invalid %s token: %s", e.API, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *DecodeError) Unwrap() error { return ErrInvalid }

func invalid(api jetonv1alpha1.API, format string, args ...any) *DecodeError {
	return &DecodeError{API: api, Reason: fmt.Sprintf(format, args...)}
}

// Normalize turns the raw bytes of a Secret key into a token: trims surrounding ASCII
// whitespace (files created with a trailing newline are common); rejects empty, larger than
// MaxSize, non-UTF-8, or containing whitespace, control or invisible formatting characters
// (such as a byte order mark) inside. Errors never contain any part of the token, only
// byte offsets.
func Normalize(raw []byte) (string, error) {
	b := trimASCIISpace(raw)
	switch {
	case len(b) == 0 && len(raw) == 0:
		return "", invalid("", "the Secret key is empty")
	case len(b) == 0:
		return "", invalid("", "the Secret key holds only whitespace")
	case len(b) > MaxSize:
		return "", invalid("", "it is %d bytes long, more than the %d bytes a token can be; check that the Secret key holds the token", len(b), MaxSize)
	case !utf8.Valid(b):
		return "", invalid("", "it is not valid UTF-8 text; check that the Secret holds the token itself, not a binary or differently encoded file")
	}
	if len(b) > len(bearer) && strings.EqualFold(string(b[:len(bearer)]), bearer) {
		return "", invalid("", "the Secret value starts with %q: store the token alone, without the HTTP scheme", bearer)
	}
	for i := 0; i < len(b); {
		if c := b[i]; c > ' ' && c < 0x7f {
			i++ // printable ASCII, all of a real token: skip the Unicode tables
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			pos := len(raw) - len(trimLeftASCIISpace(raw)) + i + 1
			return "", invalid("", "it contains whitespace or an invisible character at byte %d of the Secret value; a token is a single word: remove what was pasted inside it", pos)
		}
		i += size
	}
	return string(b), nil
}

// Fingerprint is the first 16 hex characters of the SHA-256 of the token's canonical form
// (see Canonical): enough to tell tokens apart (64 bits) and to match one you hold, without
// revealing it. Every spelling the APIs accept for one token has one fingerprint, so "one
// token, one client" cannot be bypassed by re-encoding a token.
func Fingerprint(token string) string {
	return hash(Canonical(token))
}

// LegacyFingerprint is the fingerprint jeton recorded before fingerprints were taken over
// the canonical form: the SHA-256 of the token as written. It is only used to recognise a
// token recorded under it as the same token (no rotation, no restart).
func LegacyFingerprint(token string) string {
	return hash(token)
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

func isASCIISpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func trimLeftASCIISpace(b []byte) []byte {
	for len(b) > 0 && isASCIISpace(b[0]) {
		b = b[1:]
	}
	return b
}

func trimASCIISpace(b []byte) []byte {
	b = trimLeftASCIISpace(b)
	for len(b) > 0 && isASCIISpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
