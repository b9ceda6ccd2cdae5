package emulator

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// jwtHeader is the fixed header of the tokens the emulator signs (HS256, as on staging).
var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// signJWT builds the token string for t. The claims are those of the real portal, plus
// `mcp`, a claim clients do not know, so that they prove they ignore unknown claims.
func (s *Server) signJWT(t *token) (string, error) {
	claims, err := json.Marshal(map[string]any{
		"uid":     t.uid,
		"jti":     t.id,
		"scopes":  t.scopes,
		"sub":     t.subject,
		"iat":     t.issuedAt.Unix(),
		"exp":     t.expiresAt.Unix(),
		"version": "1.0",
		"mcp":     map[string]any{"enabled": false},
	})
	if err != nil {
		return "", fmt.Errorf("encoding claims: %w", err)
	}
	signingInput := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(claims)
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(s.mac(signingInput)), nil
}

func (s *Server) mac(signingInput string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(signingInput))
	return m.Sum(nil)
}

// jwtID returns the jti of a JWT signed by this emulator, or "" when the string is not
// a JWT, not signed with this emulator's key, or signed with another algorithm.
func (s *Server) jwtID(raw string) string {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return ""
	}
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return ""
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(header, &h) != nil || h.Alg != "HS256" {
		return ""
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, s.mac(parts[0]+"."+parts[1])) {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		JTI string `json:"jti"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return ""
	}
	return c.JTI
}

// dnToken is the Démarches Numériques token format: base64url of "<token id>;<secret>".
func dnToken(id, secret string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(id + ";" + secret))
}

// lookup finds the token a credential stands for on api, or nil. The caller holds s.mu.
func (s *Server) lookup(api jetonv1alpha1.API, credential string) *token {
	if credential == "" {
		return nil
	}
	if api == jetonv1alpha1.DemarchesNumeriques {
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(credential, "="))
		if err != nil {
			return nil
		}
		id, secret, ok := strings.Cut(string(raw), ";")
		t := s.tokens[id]
		if !ok || t == nil || t.api != api || subtle.ConstantTimeCompare([]byte(secret), []byte(t.secret)) != 1 {
			return nil
		}
		return t
	}
	t := s.tokens[s.jwtID(credential)]
	if t == nil || t.api != api {
		return nil
	}
	return t
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	b := randomBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
