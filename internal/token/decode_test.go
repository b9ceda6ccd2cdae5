package token

import (
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/sanitize"
)

const (
	apiEntreprise  = jetonv1alpha1.APIEntreprise
	apiParticulier = jetonv1alpha1.APIParticulier
	apiDN          = jetonv1alpha1.DemarchesNumeriques

	testJTI  = "6d7e1f32-0a4b-4c1e-9b53-2f6a8c9d0e1f"
	dnID     = "9c1f3e52-7b8a-4d2c-a1e0-5f6b7c8d9e0a"
	dnSecret = "Zk8sJ2m9QxW4vT7yR1pL6nB3"
)

var (
	testKey = []byte("jeton-test-hs256-key-not-a-real-issuer-secret")
	iat     = time.Date(2025, 7, 1, 9, 30, 0, 0, time.UTC)
	exp     = iat.AddDate(0, 18, 0) // API Entreprise tokens live 18 months
)

// fullClaims are the claims of an API Entreprise token as the portal issues them,
// including the unknown `mcp` claim that must be accepted.
func fullClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"uid":     "0f0e6c4a-5d2b-4a47-8f8e-1c2d3e4f5a6b",
		"jti":     testJTI,
		"sub":     "Mairie de Trifouilly - marchés publics",
		"scopes":  []string{"unites_legales_etablissements_insee", "attestations_fiscales", "attestations_sociales"},
		"iat":     iat.Unix(),
		"exp":     exp.Unix(),
		"version": "1.0",
		"mcp":     true,
	}
}

func testJWT(tb testing.TB, claims jwt.MapClaims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(testKey)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func withClaims(changes map[string]any, remove ...string) jwt.MapClaims {
	c := fullClaims()
	for k, v := range changes {
		c[k] = v
	}
	for _, k := range remove {
		delete(c, k)
	}
	return c
}

// rawJWT assembles a JWT from literal header and payload JSON, for shapes golang-jwt won't sign.
func rawJWT(header, payload string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString([]byte("signature"))
}

func dnToken(enc *base64.Encoding, payload string) string {
	return enc.EncodeToString([]byte(payload))
}

func ptr(t time.Time) *time.Time { return &t }

func TestDecode(t *testing.T) {
	noneToken, err := jwt.NewWithClaims(jwt.SigningMethodNone, withClaims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	full := Info{
		ID:        testJTI,
		IssuedAt:  ptr(iat),
		ExpiresAt: ptr(exp),
		Scopes:    []string{"attestations_fiscales", "attestations_sociales", "unites_legales_etablissements_insee"},
	}
	// A secret whose standard base64 has '+' and '/', so the std and url encodings differ.
	stdSecret := "s3cr3t>>>???~~~"
	if enc := base64.StdEncoding.EncodeToString([]byte(dnID + ";" + stdSecret)); !strings.ContainsAny(enc, "+/") {
		t.Fatalf("test secret does not exercise standard base64: %s", enc)
	}

	tests := []struct {
		name    string
		api     jetonv1alpha1.API
		token   string
		want    Info
		wantErr string
	}{
		{"API Entreprise token", apiEntreprise, testJWT(t, fullClaims()), full, ""},
		{"API Particulier token", apiParticulier, testJWT(t, fullClaims()), full, ""},
		{"old token with roles", apiEntreprise,
			testJWT(t, withClaims(map[string]any{"roles": []string{"liasse_fiscale", "certificat_cnetp"}}, "scopes")),
			Info{ID: testJTI, IssuedAt: ptr(iat), ExpiresAt: ptr(exp), Scopes: []string{"certificat_cnetp", "liasse_fiscale"}}, ""},
		{"scopes win over roles", apiEntreprise,
			testJWT(t, withClaims(map[string]any{"scopes": []string{"b"}, "roles": []string{"a"}})),
			Info{ID: testJTI, IssuedAt: ptr(iat), ExpiresAt: ptr(exp), Scopes: []string{"b"}}, ""},
		{"scopes sorted and deduplicated, empty dropped", apiParticulier,
			testJWT(t, withClaims(map[string]any{"scopes": []string{"cnaf_quotient_familial", "", "cnaf_allocataires", "cnaf_quotient_familial"}})),
			Info{ID: testJTI, IssuedAt: ptr(iat), ExpiresAt: ptr(exp), Scopes: []string{"cnaf_allocataires", "cnaf_quotient_familial"}, IgnoredScopes: 1}, ""},
		{"no jti, no sub, no scopes", apiEntreprise,
			testJWT(t, withClaims(nil, "jti", "sub", "scopes")),
			Info{IssuedAt: ptr(iat), ExpiresAt: ptr(exp)}, ""},
		{"no exp", apiEntreprise, testJWT(t, withClaims(nil, "exp")),
			Info{ID: testJTI, IssuedAt: ptr(iat), Scopes: full.Scopes}, ""},
		{"null claims are absent", apiEntreprise, testJWT(t, withClaims(map[string]any{"exp": nil, "jti": nil, "scopes": nil})),
			Info{IssuedAt: ptr(iat)}, ""},
		{"fractional exp is truncated to the second", apiEntreprise, testJWT(t, withClaims(map[string]any{"exp": float64(exp.Unix()) + 0.75})),
			full, ""},
		{"alg none", apiEntreprise, noneToken, full, ""},
		{"unknown alg", apiEntreprise, rawJWT(`{"alg":"XY999","typ":"JWT"}`, `{"jti":"`+testJTI+`"}`), Info{ID: testJTI}, ""},
		// Claims reach status only in bounded shapes: what does not fit is dropped, not an error.
		{"jti too long is dropped", apiEntreprise, testJWT(t, withClaims(map[string]any{"jti": strings.Repeat("a", 129)})),
			Info{IssuedAt: ptr(iat), ExpiresAt: ptr(exp), Scopes: full.Scopes}, ""},
		{"jti of 128 characters is kept", apiEntreprise, testJWT(t, withClaims(map[string]any{"jti": strings.Repeat("a", 128)})),
			Info{ID: strings.Repeat("a", 128), IssuedAt: ptr(iat), ExpiresAt: ptr(exp), Scopes: full.Scopes}, ""},
		{"jti with spaces and quotes is dropped", apiEntreprise, testJWT(t, withClaims(map[string]any{"jti": `a "b" c`})),
			Info{IssuedAt: ptr(iat), ExpiresAt: ptr(exp), Scopes: full.Scopes}, ""},
		{"jti with control characters is dropped", apiEntreprise, testJWT(t, withClaims(map[string]any{"jti": "abc\nlevel=error msg=forged"})),
			Info{IssuedAt: ptr(iat), ExpiresAt: ptr(exp), Scopes: full.Scopes}, ""},
		{"jti with unicode is dropped", apiEntreprise, testJWT(t, withClaims(map[string]any{"jti": "idé"})),
			Info{IssuedAt: ptr(iat), ExpiresAt: ptr(exp), Scopes: full.Scopes}, ""},
		{"empty jti", apiEntreprise, testJWT(t, withClaims(map[string]any{"jti": ""})),
			Info{IssuedAt: ptr(iat), ExpiresAt: ptr(exp), Scopes: full.Scopes}, ""},
		{"upper-case UUID jti is kept", apiEntreprise, testJWT(t, withClaims(map[string]any{"jti": strings.ToUpper(testJTI)})),
			Info{ID: strings.ToUpper(testJTI), IssuedAt: ptr(iat), ExpiresAt: ptr(exp), Scopes: full.Scopes}, ""},
		{"scopes: only scope-shaped names are kept", apiEntreprise,
			testJWT(t, withClaims(map[string]any{"scopes": []string{
				"attestations_fiscales",
				"eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJ4In0.c2lnbmF0dXJl", // JWT-looking
				"a" + strings.Repeat("b", 128),                      // too long
				"Attestations_fiscales",                             // upper case
				"attestations fiscales",                             // space
				"attestations_fiscalés",                             // unicode
				"scope\x00",                                         // NUL
				"scope\nlevel=error",                                // newline
				"d7e9c9f4c3ca00caadde31f50fd4521a",                  // a hex key
			}})),
			Info{ID: testJTI, IssuedAt: ptr(iat), ExpiresAt: ptr(exp), Scopes: []string{"attestations_fiscales"}, IgnoredScopes: 8}, ""},
		{"roles: same filter", apiEntreprise,
			testJWT(t, withClaims(map[string]any{"roles": []string{"liasse_fiscale", "LIASSE"}}, "scopes")),
			Info{ID: testJTI, IssuedAt: ptr(iat), ExpiresAt: ptr(exp), Scopes: []string{"liasse_fiscale"}, IgnoredScopes: 1}, ""},
		{"scopes: none kept", apiParticulier, testJWT(t, withClaims(map[string]any{"scopes": []string{"", "Bad"}})),
			Info{ID: testJTI, IssuedAt: ptr(iat), ExpiresAt: ptr(exp), IgnoredScopes: 2}, ""},
		{"scopes: too many", apiParticulier, testJWT(t, withClaims(map[string]any{"scopes": manyScopes(300)})),
			Info{ID: testJTI, IssuedAt: ptr(iat), ExpiresAt: ptr(exp), Scopes: manyScopes(256), IgnoredScopes: 300 - 256}, ""},
		{"scopes: duplicates are not ignored names", apiParticulier, testJWT(t, withClaims(map[string]any{"scopes": []string{"b", "a", "b", "a"}})),
			Info{ID: testJTI, IssuedAt: ptr(iat), ExpiresAt: ptr(exp), Scopes: []string{"a", "b"}}, ""},
		{"padded segments", apiEntreprise,
			base64.URLEncoding.EncodeToString([]byte(`{"alg":"HS256"}`)) + "." + base64.URLEncoding.EncodeToString([]byte(`{"jti":"`+testJTI+`"}`)) + ".c2ln",
			Info{ID: testJTI}, ""},

		{"two parts", apiEntreprise, "eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJ4In0", Info{}, "not a JWT: expected three dot-separated parts (header.payload.signature), found 2"},
		{"four parts", apiEntreprise, testJWT(t, fullClaims()) + ".c2ln", Info{}, "found 4"},
		{"opaque string", apiParticulier, "4f5e6d7c8b9a0f1e2d3c4b5a69788796", Info{}, "not a JWT: expected three dot-separated parts"},
		{"bad base64 header", apiEntreprise, "eyJhbGc!OiJIUzI1NiJ9.eyJqdGkiOiJ4In0.c2ln", Info{}, "the JWT header is not valid base64url"},
		{"bad base64 payload", apiEntreprise, "eyJhbGciOiJIUzI1NiJ9.eyJqd$kiOiJ4In0.c2ln", Info{}, "the JWT payload is not valid base64url"},
		{"header not JSON", apiEntreprise, rawJWT(`alg=HS256`, `{}`), Info{}, "the JWT header is not valid JSON"},
		{"payload JSON not an object", apiEntreprise, rawJWT(`{"alg":"HS256"}`, `["jti","scopes"]`), Info{}, "the JWT payload is not a JSON object"},
		{"payload truncated JSON", apiEntreprise, rawJWT(`{"alg":"HS256"}`, `{"jti":"6d7e1f32-0a4b`), Info{}, "the JWT payload is not valid JSON"},
		{"bad base64 signature", apiEntreprise, testJWT(t, fullClaims()) + "!", Info{}, "the JWT signature is not valid base64url"},
		{"exp a string", apiEntreprise, testJWT(t, withClaims(map[string]any{"exp": "2027-01-01T00:00:00Z"})), Info{}, "exp claim is not a number"},
		{"iat a string", apiEntreprise, testJWT(t, withClaims(map[string]any{"iat": "1751362200"})), Info{}, "iat claim is not a number"},
		{"exp beyond year 9999", apiEntreprise, testJWT(t, withClaims(map[string]any{"exp": 1e15})), Info{}, "exp claim is out of range"},
		{"exp negative", apiEntreprise, testJWT(t, withClaims(map[string]any{"exp": -1})), Info{}, "exp claim is out of range"},
		{"jti a number", apiEntreprise, testJWT(t, withClaims(map[string]any{"jti": 42})), Info{}, "jti claim is not a string"},
		{"sub is not read, whatever its type", apiEntreprise, testJWT(t, withClaims(map[string]any{"sub": map[string]any{"title": "x"}})), full, ""},
		{"scopes a string", apiEntreprise, testJWT(t, withClaims(map[string]any{"scopes": "attestations_fiscales"})), Info{}, "scopes claim is not a list of strings"},
		{"roles with numbers", apiEntreprise, testJWT(t, withClaims(map[string]any{"roles": []any{"a", 1}}, "scopes")), Info{}, "roles claim is not a list of strings"},
		{"DN token given to API Entreprise", apiEntreprise, dnToken(base64.RawURLEncoding, dnID+";"+dnSecret), Info{}, "looks like a Démarches Numériques token, but APIEntreprise tokens are JWTs"},
		{"Bearer prefix", apiEntreprise, "Bearer " + testJWT(t, fullClaims()), Info{}, "byte 7 is whitespace or not printable ASCII"},
		{"inner newline", apiEntreprise, testJWT(t, fullClaims()) + "\n", Info{}, "is whitespace or not printable ASCII"},
		{"empty", apiEntreprise, "", Info{}, "it is empty"},
		{"oversized", apiParticulier, strings.Repeat("a", MaxSize+1), Info{}, "more than the 8192 bytes"},

		{"DN token, base64url unpadded", apiDN, dnToken(base64.RawURLEncoding, dnID+";"+dnSecret), Info{ID: dnID}, ""},
		{"DN token, base64url padded", apiDN, dnToken(base64.URLEncoding, dnID+";"+stdSecret), Info{ID: dnID}, ""},
		{"DN token, standard base64", apiDN, dnToken(base64.StdEncoding, dnID+";"+stdSecret), Info{ID: dnID}, ""},
		{"DN token, upper-case UUID", apiDN, dnToken(base64.RawURLEncoding, strings.ToUpper(dnID)+";"+dnSecret), Info{ID: strings.ToUpper(dnID)}, ""},
		{"DN token, secret holding ';'", apiDN, dnToken(base64.RawURLEncoding, dnID+";a;b"), Info{ID: dnID}, ""},
		{"DN token, bad base64", apiDN, "OWMxZjNlNTIt*2I4YS00ZDJj", Info{}, "not valid base64url"},
		{"DN token, mixed alphabets", apiDN, "ab+c-def", Info{}, "not valid base64url"},
		{"DN token, no ';'", apiDN, dnToken(base64.RawURLEncoding, dnID+dnSecret), Info{}, "its decoded value has no ';'"},
		{"DN token, id not a UUID", apiDN, dnToken(base64.RawURLEncoding, "12345;"+dnSecret), Info{}, "the token id before ';' is not a UUID"},
		{"DN token, UUID without dashes", apiDN, dnToken(base64.RawURLEncoding, strings.ReplaceAll(dnID, "-", "")+";"+dnSecret), Info{}, "not a UUID"},
		{"DN token, UUID with a non-hex digit", apiDN, dnToken(base64.RawURLEncoding, "9c1f3e52-7b8a-4d2c-a1e0-5f6b7c8d9e0g;"+dnSecret), Info{}, "not a UUID"},
		{"DN token, empty secret", apiDN, dnToken(base64.RawURLEncoding, dnID+";"), Info{}, "the secret after ';' is empty"},
		{"JWT given to DN", apiDN, testJWT(t, fullClaims()), Info{}, "looks like a JWT, but Démarches Numériques tokens are base64url of <token-id UUID>;<secret>"},
		{"DN token with trailing newline", apiDN, dnToken(base64.RawURLEncoding, dnID+";"+dnSecret) + "\n", Info{}, "is whitespace or not printable ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.api, tt.token)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Decode() error = %v", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("Decode() = %s\nwant       %s", fmtInfo(got), fmtInfo(tt.want))
				}
				return
			}
			if err == nil {
				t.Fatalf("Decode() = %s, want an error containing %q", fmtInfo(got), tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Decode() error = %q\nwant it to contain %q", err, tt.wantErr)
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.API != tt.api || !errors.Is(err, ErrInvalid) {
				t.Errorf("Decode() error %#v is not a *DecodeError for %s wrapping ErrInvalid", err, tt.api)
			}
			if !reflect.DeepEqual(got, Info{}) {
				t.Errorf("Decode() returned %s with an error, want a zero Info", fmtInfo(got))
			}
			assertNoLeak(t, err.Error(), tt.token)
		})
	}
}

func TestDecodeUnknownAPI(t *testing.T) {
	_, err := Decode("APIImpots", testJWT(t, fullClaims()))
	if err == nil || !strings.Contains(err.Error(), `unknown API "APIImpots"`) {
		t.Fatalf("Decode(unknown API) error = %v, want it to name the API", err)
	}
	if errors.Is(err, ErrInvalid) {
		t.Error("an unknown API is a programming error, not an invalid token")
	}
}

// TestErrorsNeverRevealTheToken feeds many broken tokens, built around distinctive secrets,
// to every entry point and checks that no message carries any 6-character piece of them
// or of what they decode to.
func TestErrorsNeverRevealTheToken(t *testing.T) {
	const secret = "QuaSiMoDo7NotreDame1482"
	b64 := base64.RawURLEncoding.EncodeToString
	good := testJWT(t, withClaims(map[string]any{"jti": secret, "sub": secret}))
	parts := strings.Split(good, ".")
	bad := []string{
		secret,
		"Bearer " + good,
		parts[0] + "." + parts[1],
		good + "." + b64([]byte(secret)),
		parts[0] + "." + parts[1] + "!" + "." + parts[2],
		parts[0] + ".." + parts[2],
		rawJWT(`{"alg":"HS256"}`, `["`+secret+`"]`),
		rawJWT(`{"alg":"HS256"}`, `{"jti":"`+secret+`"`),
		rawJWT(`{"alg":"HS256"}`, `{"exp":"`+secret+`"}`),
		rawJWT(`{"alg":"HS256"}`, `{"scopes":"`+secret+`"}`),
		rawJWT(`{"alg":"HS256"}`, `{"jti":["`+secret+`"]}`),
		rawJWT(`{"alg":"`+secret+`"}`, `{"exp":"x"}`),
		rawJWT(`{"alg":"HS256"}`, secret),
		rawJWT(secret, `{}`),
		rawJWT(`{"alg":"HS256"}`, `{"`+secret+`":`),
		b64([]byte(dnID + secret)),
		b64([]byte(secret + ";" + secret)),
		b64([]byte(dnID + ";")),
		base64.StdEncoding.EncodeToString([]byte(secret+";"+secret)) + "-_",
		secret + "\n" + secret,
		secret + "\xff" + secret,
		strings.Repeat(secret, MaxSize/len(secret)+1),
	}
	for i, tok := range bad {
		for _, api := range []jetonv1alpha1.API{apiEntreprise, apiParticulier, apiDN} {
			if _, err := Decode(api, tok); err != nil {
				assertNoLeak(t, err.Error(), tok, secret)
			} else {
				t.Errorf("Decode(%s, bad token #%d) succeeded", api, i)
			}
		}
		if _, err := Normalize([]byte(tok)); err != nil {
			assertNoLeak(t, err.Error(), tok, secret)
		}
	}
}

// assertNoLeak fails if msg contains any 6-byte piece of the secrets (or a whole secret
// shorter than that), a "Bearer " prefix excepted.
func assertNoLeak(t *testing.T, msg string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if len(s) > len(bearer) && strings.EqualFold(s[:len(bearer)], bearer) {
			s = s[len(bearer):] // the HTTP scheme is no secret, and messages name it
		}
		if s == "" {
			continue
		}
		if len(s) < 6 {
			if strings.Contains(msg, s) {
				t.Errorf("message %q contains the token %q", msg, s)
			}
			continue
		}
		for i := 0; i+6 <= len(s); i++ {
			if piece := s[i : i+6]; strings.Contains(msg, piece) {
				t.Errorf("message %q contains %q, a piece of the token", msg, piece)
				return
			}
		}
	}
}

func TestMissingScopes(t *testing.T) {
	tests := []struct {
		name           string
		have, expected []string
		want           []string
	}{
		{"all present", []string{"a", "b", "c"}, []string{"c", "a"}, nil},
		{"nothing expected", []string{"a"}, nil, nil},
		{"token has none", nil, []string{"b", "a"}, []string{"a", "b"}},
		{"some missing, sorted", []string{"attestations_fiscales"}, []string{"liasse_fiscale", "attestations_fiscales", "attestations_sociales"}, []string{"attestations_sociales", "liasse_fiscale"}},
		{"duplicates in expected reported once", []string{"a"}, []string{"b", "b"}, []string{"b"}},
		{"case matters", []string{"Attestations_fiscales"}, []string{"attestations_fiscales"}, []string{"attestations_fiscales"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MissingScopes(tt.have, tt.expected); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("MissingScopes(%q, %q) = %q, want %q", tt.have, tt.expected, got, tt.want)
			}
		})
	}
}

// FuzzDecode checks Decode never panics, that results are coherent and that errors
// reveal nothing of the token.
func FuzzDecode(f *testing.F) {
	f.Add(testJWT(f, fullClaims()))
	f.Add(testJWT(f, withClaims(map[string]any{"roles": []string{"a"}}, "scopes")))
	f.Add(testJWT(f, withClaims(map[string]any{"exp": "soon"})))
	f.Add(rawJWT(`{"alg":"none"}`, `[]`))
	f.Add(rawJWT(`{}`, `{"exp":1e300,"iat":-5}`))
	f.Add("a.b")
	f.Add("a.b.c")
	f.Add(dnToken(base64.RawURLEncoding, dnID+";"+dnSecret))
	f.Add(dnToken(base64.StdEncoding, dnID+";"+dnSecret))
	f.Add(dnToken(base64.RawURLEncoding, "x;y"))
	f.Add("")
	f.Add("\xff")
	// Claims that must not reach status as they are.
	f.Add(rawJWT(`{"alg":"none"}`, `{"jti":"a \"b\"\n","scopes":["A","\u0000","scopé","","ok"]}`))
	f.Add(rawJWT(`{"alg":"none"}`, `{"jti":"`+strings.Repeat("j", 200)+`","roles":["`+strings.Repeat("r", 200)+`"]}`))
	f.Fuzz(func(t *testing.T, tok string) {
		for _, api := range []jetonv1alpha1.API{apiEntreprise, apiParticulier, apiDN} {
			info, err := Decode(api, tok)
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Decode(%s) error %v does not wrap ErrInvalid", api, err)
				}
				if len(err.Error()) > 300 {
					t.Fatalf("Decode(%s) error message is %d bytes: messages must not grow with the token", api, len(err.Error()))
				}
				if len(tok) >= 16 && strings.Contains(err.Error(), tok) {
					t.Fatalf("Decode(%s) error %q contains the token", api, err)
				}
				continue
			}
			if api == apiDN && (!isUUID(info.ID) || info.ExpiresAt != nil || info.Scopes != nil) {
				t.Fatalf("Decode(DN) = %s: want a UUID id and nothing else", fmtInfo(info))
			}
			for _, ts := range []*time.Time{info.IssuedAt, info.ExpiresAt} {
				if ts != nil {
					if _, err := ts.MarshalText(); err != nil {
						t.Fatalf("Decode(%s) returned a time that cannot be stored in a status: %v", api, err)
					}
				}
			}
			for i := 1; i < len(info.Scopes); i++ {
				if info.Scopes[i-1] >= info.Scopes[i] {
					t.Fatalf("Decode(%s) scopes %q are not sorted and unique", api, info.Scopes)
				}
			}
			// What goes to status keeps its documented shape, whatever the token holds.
			if len(info.Scopes) > sanitize.MaxScopes {
				t.Fatalf("Decode(%s) returned %d scopes, more than %d", api, len(info.Scopes), sanitize.MaxScopes)
			}
			for _, s := range info.Scopes {
				if !sanitize.IsScopeName(s) {
					t.Fatalf("Decode(%s) returned scope %.80q, not shaped like a scope name", api, s)
				}
			}
			if info.ID != "" && !sanitize.IsIdentifier(info.ID) {
				t.Fatalf("Decode(%s) returned id %.80q, not a bounded identifier", api, info.ID)
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		api jetonv1alpha1.API
		tok string
	}{
		{apiEntreprise, testJWT(b, fullClaims())},
		{apiDN, dnToken(base64.RawURLEncoding, dnID+";"+dnSecret)},
	} {
		b.Run(string(bc.api), func(b *testing.B) {
			for b.Loop() {
				if _, err := Decode(bc.api, bc.tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// manyScopes returns n scope names, in sorted order.
func manyScopes(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("scope_%04d", i)
	}
	return s
}

func fmtInfo(i Info) string {
	ts := func(t *time.Time) string {
		if t == nil {
			return "nil"
		}
		return t.Format(time.RFC3339)
	}
	return fmt.Sprintf("{ID:%q IssuedAt:%s ExpiresAt:%s Scopes:%q IgnoredScopes:%d}", i.ID, ts(i.IssuedAt), ts(i.ExpiresAt), i.Scopes, i.IgnoredScopes)
}
