package token

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestFingerprintIsOnePerToken(t *testing.T) {
	dnPayload := "0b6c3f5e-9d2a-4e1b-8f7c-1a2b3c4d5e6f;s3cr3t?>~valu"
	upperPayload := "0B6C3F5E-9D2A-4E1B-8F7C-1A2B3C4D5E6F;s3cr3t?>~valu"
	dn := base64.RawURLEncoding.EncodeToString([]byte(dnPayload))
	// A JWT whose payload segment needs padding and holds bytes that differ between alphabets.
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims := []byte(`{"jti":"a","scopes":["x"],"k":"\u00fb\u00ef\u00bf"}` + "\xfb\xff")
	payload := base64.RawURLEncoding.EncodeToString(claims)
	sig := base64.RawURLEncoding.EncodeToString([]byte("signature bytes \xfb\xff"))
	jwt := header + "." + payload + "." + sig

	same := []struct {
		name     string
		a, other string
	}{
		{"DN padded", dn, base64.URLEncoding.EncodeToString([]byte(dnPayload))},
		{"DN standard alphabet", dn, base64.RawStdEncoding.EncodeToString([]byte(dnPayload))},
		{"DN standard alphabet, padded", dn, base64.StdEncoding.EncodeToString([]byte(dnPayload))},
		{"DN upper-case token id", dn, base64.RawURLEncoding.EncodeToString([]byte(upperPayload))},
		{"JWT padded segments", jwt, base64.URLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + base64.URLEncoding.EncodeToString(claims) + "." + base64.URLEncoding.EncodeToString([]byte("signature bytes \xfb\xff"))},
		{"JWT standard alphabet", jwt, header + "." + base64.RawStdEncoding.EncodeToString(claims) + "." + base64.RawStdEncoding.EncodeToString([]byte("signature bytes \xfb\xff"))},
	}
	for _, tt := range same {
		t.Run(tt.name, func(t *testing.T) {
			if tt.a == tt.other {
				t.Fatal("the test spellings must differ as strings")
			}
			if Fingerprint(tt.a) != Fingerprint(tt.other) {
				t.Errorf("two spellings of one token have different fingerprints")
			}
		})
	}

	different := []struct {
		name     string
		a, other string
	}{
		{"DN other secret", dn, base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(dnPayload, "s3cr3t", "S3CR3T", 1)))},
		{"JWT other signature", jwt, header + "." + payload + "." + base64.RawURLEncoding.EncodeToString([]byte("other"))},
		{"opaque strings", "abc", "abd"},
	}
	for _, tt := range different {
		t.Run(tt.name, func(t *testing.T) {
			if Fingerprint(tt.a) == Fingerprint(tt.other) {
				t.Errorf("two different tokens share a fingerprint")
			}
		})
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"opaque", "not-a-token", "not-a-token"},
		{"JWT with an undecodable segment is left alone", "a.b!.c", "a.b!.c"},
		{"JWT with an empty signature (alg none)", "eyJhbGciOiJub25lIn0.e30.", "eyJhbGciOiJub25lIn0.e30."},
		{"base64 that is not a DN token", base64.StdEncoding.EncodeToString([]byte("hello;")), base64.StdEncoding.EncodeToString([]byte("hello;"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Canonical(tt.in); got != tt.want {
				t.Errorf("Canonical(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestLegacyFingerprint(t *testing.T) {
	// The fingerprint before canonical forms: SHA-256 of the string as written.
	tok := base64.URLEncoding.EncodeToString([]byte("0b6c3f5e-9d2a-4e1b-8f7c-1a2b3c4d5e6f;s3cr3t1"))
	sum := sha256.Sum256([]byte(tok))
	if got, want := LegacyFingerprint(tok), hex.EncodeToString(sum[:8]); got != want {
		t.Errorf("LegacyFingerprint = %q, want %q", got, want)
	}
	if LegacyFingerprint(tok) == Fingerprint(tok) {
		t.Errorf("a padded token's legacy fingerprint should differ from its canonical one")
	}
}
