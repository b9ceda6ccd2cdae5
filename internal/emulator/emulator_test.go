package emulator

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

const (
	apiE = jetonv1alpha1.APIEntreprise
	apiP = jetonv1alpha1.APIParticulier
	dn   = jetonv1alpha1.DemarchesNumeriques
)

// TestJWTAPIBehaviours covers every behaviour of API Entreprise (/privileges) and API
// Particulier (/api/introspect), which share the token model and the error format.
func TestJWTAPIBehaviours(t *testing.T) {
	cases := []struct {
		behaviour  Behaviour
		status     int
		code       string // errors[0].code; "" for no JSON error body
		html       bool   // a non-JSON HTML page
		emptyBody  bool
		retryAfter string
		rateLimit  bool // RateLimit-* headers expected
	}{
		{behaviour: Healthy, status: 200, rateLimit: true},
		{behaviour: Unauthorized, status: 401, code: "00101", rateLimit: true},
		{behaviour: Expired, status: 401, code: "00103", rateLimit: true},
		{behaviour: Revoked, status: 401, code: "00105", rateLimit: true},
		{behaviour: InsufficientPrivileges, status: 403, code: "00100", rateLimit: true},
		{behaviour: Conflict, status: 409, code: "00015", rateLimit: true},
		{behaviour: RateLimited, status: 429, code: "00429", retryAfter: "32", rateLimit: true},
		{behaviour: RateLimitedEmptyBody, status: 429, emptyBody: true, retryAfter: "32"},
		{behaviour: Down, status: 502, html: true, rateLimit: true},
		{behaviour: ServerError, status: 500, html: true, rateLimit: true},
	}
	for _, api := range []jetonv1alpha1.API{apiE, apiP} {
		for _, tc := range cases {
			t.Run(string(api)+"/"+string(tc.behaviour), func(t *testing.T) {
				s, _ := newTestServer()
				tok, id := mint(t, s, api, MintOptions{Scopes: []string{"unites_legales_etablissements_insee", "attestations_fiscales"}})
				if err := s.SetBehaviour(id, tc.behaviour); err != nil {
					t.Fatal(err)
				}
				w := check(s, api, tok)
				if w.Code != tc.status {
					t.Fatalf("status = %d, want %d; body %q", w.Code, tc.status, w.Body.String())
				}
				if got := w.Header().Get("Retry-After"); got != tc.retryAfter {
					t.Errorf("Retry-After = %q, want %q", got, tc.retryAfter)
				}
				for _, h := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
					if got := w.Header().Get(h) != ""; got != tc.rateLimit {
						t.Errorf("header %s present = %v, want %v", h, got, tc.rateLimit)
					}
				}
				switch {
				case tc.emptyBody:
					if w.Body.Len() != 0 {
						t.Errorf("body = %q, want empty", w.Body.String())
					}
				case tc.html:
					if json.Valid(w.Body.Bytes()) || !strings.Contains(w.Body.String(), "<html>") {
						t.Errorf("body = %q, want an HTML page that is not JSON", w.Body.String())
					}
				case tc.code != "":
					if got := apiCode(t, w); got != tc.code {
						t.Errorf("errors[0].code = %q, want %q", got, tc.code)
					}
				case api == apiE:
					var got struct{ Privileges []string }
					decodeJSON(t, w, &got)
					if !slices.Equal(got.Privileges, []string{"unites_legales_etablissements_insee", "attestations_fiscales"}) {
						t.Errorf("privileges = %v", got.Privileges)
					}
				default:
					var got map[string]any
					decodeJSON(t, w, &got)
					if got["_id"] != id || got["name"] != nil || len(got["scopes"].([]any)) != 2 {
						t.Errorf("introspect = %v, want _id %s, name null, 2 scopes", got, id)
					}
					if _, ok := got["name"]; !ok {
						t.Errorf("introspect lacks name: %v", got)
					}
				}
			})
		}
	}
}

func TestRateLimitedHeaders(t *testing.T) {
	s, _ := newTestServer()
	tok, id := mint(t, s, apiE, MintOptions{})
	if err := s.SetBehaviour(id, RateLimited); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRetryAfter(id, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	w := check(s, apiE, tok)
	h := w.Header()
	if h.Get("Retry-After") != "60" || h.Get("RateLimit-Limit") != "250" || h.Get("RateLimit-Remaining") != "0" ||
		h.Get("RateLimit-Reset") != strconv.FormatInt(t0.Add(time.Minute).Unix(), 10) {
		t.Errorf("headers = %v, want Retry-After 60, RateLimit-Limit 250, Remaining 0, Reset now+60s", h)
	}
	if err := s.SetRetryAfter(id, 0); err == nil {
		t.Error("SetRetryAfter(0) succeeded, want an error (Retry-After is whole seconds)")
	}
}

// TestJWTCredentials checks that only tokens this emulator minted for this API pass.
func TestJWTCredentials(t *testing.T) {
	s, _ := newTestServer()
	other, _ := newTestServer() // another signing key
	tokE, _ := mint(t, s, apiE, MintOptions{})
	tokP, _ := mint(t, s, apiP, MintOptions{})
	foreign, _ := mint(t, other, apiE, MintOptions{})
	parts := strings.Split(tokE, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(bytes.Replace(payload, []byte(`"scopes":[]`), []byte(`"scopes":["all"]`), 1)) + "." + parts[2]
	if tampered == tokE {
		t.Fatal("test setup: tampering changed nothing")
	}
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + "."

	cases := []struct {
		name   string
		api    jetonv1alpha1.API
		header string
		value  string
		status int
	}{
		{"API Entreprise own token", apiE, "Authorization", "Bearer " + tokE, 200},
		{"lower-case bearer", apiE, "Authorization", "bearer " + tokE, 200},
		{"missing", apiE, "", "", 401},
		{"not a JWT", apiE, "Authorization", "Bearer not-a-jwt", 401},
		{"signed by another key", apiE, "Authorization", "Bearer " + foreign, 401},
		{"tampered claims", apiE, "Authorization", "Bearer " + tampered, 401},
		{"alg none", apiE, "Authorization", "Bearer " + none, 401},
		{"API Particulier token on API Entreprise", apiE, "Authorization", "Bearer " + tokP, 401},
		{"API Particulier v3 bearer", apiP, "Authorization", "Bearer " + tokP, 200},
		{"API Particulier v2 X-Api-Key", apiP, "X-Api-Key", tokP, 200},
		{"API Entreprise token on API Particulier", apiP, "X-Api-Key", tokE, 401},
		{"API Particulier missing", apiP, "", "", 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := checkRequest(tc.api, "")
			r.Header.Del("Authorization")
			if tc.header != "" {
				r.Header.Set(tc.header, tc.value)
			}
			w := serve(s, r)
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d", w.Code, tc.status)
			}
			if tc.status == 401 {
				if code := apiCode(t, w); code != "00101" {
					t.Errorf("code = %q, want 00101", code)
				}
				if w.Header().Get("RateLimit-Limit") != "" {
					t.Error("unauthenticated answer carries RateLimit-* headers of some token")
				}
			}
		})
	}
}

func TestDemarchesNumeriques(t *testing.T) {
	cases := []struct {
		name      string
		scopes    []string
		behaviour Behaviour
		body      string
		status    int
		code      string // errors[0].extensions.code, "" when no error
		message   string
		dataNull  bool
		emptyBody bool
		html      bool
	}{
		{name: "healthy inline number", behaviour: Healthy, status: 200},
		{name: "healthy variable", behaviour: Healthy, status: 200,
			body: `{"query":"query q($number: Int!) { demarche(number: $number) { id number } }","variables":{"number":42}}`},
		{name: "healthy variable as string", behaviour: Healthy, status: 200,
			body: `{"query":"query q($n: Int!) { demarche(number: $n) { id number } }","variables":{"n":"42"}}`},
		{name: "démarche in the token's list", scopes: []string{"7", "42"}, behaviour: Healthy, status: 200},
		{name: "démarche out of the token's list", scopes: []string{"7"}, behaviour: Healthy, status: 200, code: "unauthorized", dataNull: true},
		{name: "insufficient privileges", behaviour: InsufficientPrivileges, status: 200, code: "unauthorized", dataNull: true},
		{name: "unknown démarche", behaviour: NotFound, status: 200, code: "not_found", dataNull: true},
		{name: "invalid token", behaviour: Unauthorized, status: 403, code: "forbidden"},
		{name: "revoked", behaviour: Revoked, status: 403, code: "forbidden"},
		{name: "expired", behaviour: Expired, status: 401, code: "unauthorized", message: "Token expired"},
		{name: "rate limited", behaviour: RateLimited, status: 429, code: "too_many_requests"},
		{name: "rate limited, empty body", behaviour: RateLimitedEmptyBody, status: 429, emptyBody: true},
		{name: "down", behaviour: Down, status: 502, html: true},
		{name: "server error", behaviour: ServerError, status: 500, html: true},
		{name: "not a démarche query", behaviour: Healthy, status: 400, code: "bad_request", body: `{"query":"{ dossier(number: 1) { id } }"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestServer()
			tok, id := mint(t, s, dn, MintOptions{Scopes: tc.scopes})
			if err := s.SetBehaviour(id, tc.behaviour); err != nil {
				t.Fatal(err)
			}
			r := checkRequest(dn, tok)
			if tc.body != "" {
				r = httptest.NewRequest(http.MethodPost, "/api/v2/graphql", strings.NewReader(tc.body))
				r.Header.Set("Authorization", "Bearer "+tok)
			}
			w := serve(s, r)
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %q", w.Code, tc.status, w.Body.String())
			}
			if tc.status == 429 && w.Header().Get("Retry-After") != "32" {
				t.Errorf("Retry-After = %q, want 32", w.Header().Get("Retry-After"))
			}
			switch {
			case tc.emptyBody:
				if w.Body.Len() != 0 {
					t.Errorf("body = %q, want empty", w.Body.String())
				}
				return
			case tc.html:
				if json.Valid(w.Body.Bytes()) {
					t.Errorf("body = %q, want a non-JSON page", w.Body.String())
				}
				return
			}
			var got dnBody
			decodeJSON(t, w, &got)
			if tc.code == "" {
				want := `{"demarche":{"id":"` + base64.StdEncoding.EncodeToString([]byte("Procedure-42")) + `","number":42}}`
				if string(got.Data) != want || len(got.Errors) != 0 {
					t.Errorf("body = %s, want data %s", w.Body.String(), want)
				}
				return
			}
			if len(got.Errors) != 1 || got.Errors[0].Extensions.Code != tc.code {
				t.Fatalf("body = %s, want errors[0].extensions.code %q", w.Body.String(), tc.code)
			}
			if tc.message != "" && got.Errors[0].Message != tc.message {
				t.Errorf("message = %q, want %q", got.Errors[0].Message, tc.message)
			}
			if tc.dataNull && string(got.Data) != "null" {
				t.Errorf("body = %s, want \"data\": null", w.Body.String())
			}
		})
	}
}

func TestDemarchesNumeriquesCredentials(t *testing.T) {
	s, _ := newTestServer()
	tok, id := mint(t, s, dn, MintOptions{})
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		t.Fatalf("token is not base64url: %v", err)
	}
	gotID, secret, ok := strings.Cut(string(raw), ";")
	if !ok || gotID != id || secret == "" || len(strings.Split(id, "-")) != 5 {
		t.Fatalf("token decodes to %d bytes not shaped <uuid>;<secret> with uuid %s", len(raw), id)
	}
	tokE, _ := mint(t, s, apiE, MintOptions{})
	cases := map[string]string{
		"wrong secret":         base64.RawURLEncoding.EncodeToString([]byte(id + ";" + secret + "x")),
		"no secret":            base64.RawURLEncoding.EncodeToString([]byte(id)),
		"garbage":              "%%%",
		"missing":              "",
		"API Entreprise token": tokE,
	}
	for name, cred := range cases {
		t.Run(name, func(t *testing.T) {
			w := check(s, dn, cred)
			var got dnBody
			decodeJSON(t, w, &got)
			if w.Code != 403 || len(got.Errors) != 1 || got.Errors[0].Extensions.Code != "forbidden" {
				t.Errorf("got %d %s, want 403 forbidden", w.Code, w.Body.String())
			}
		})
	}
	t.Run("padded base64url is accepted", func(t *testing.T) {
		padded := base64.URLEncoding.EncodeToString(raw)
		if w := check(s, dn, padded); w.Code != 200 {
			t.Errorf("status = %d, want 200", w.Code)
		}
	})
}

func TestBehaviourValidation(t *testing.T) {
	s, _ := newTestServer()
	_, idE := mint(t, s, apiE, MintOptions{})
	_, idD := mint(t, s, dn, MintOptions{})
	for _, tc := range []struct {
		id string
		b  Behaviour
	}{{idE, NotFound}, {idD, Conflict}, {idE, "sleepy"}, {"no-such-id", Healthy}} {
		if err := s.SetBehaviour(tc.id, tc.b); err == nil {
			t.Errorf("SetBehaviour(%s, %q) succeeded, want an error", tc.id, tc.b)
		}
	}
	if _, _, err := s.Mint(dn, MintOptions{Scopes: []string{"abc"}}); err == nil {
		t.Error("Mint(DN, scopes [abc]) succeeded, want an error: DN scopes are démarche numbers")
	}
	if _, _, err := s.Mint("Unknown", MintOptions{}); err == nil {
		t.Error("Mint(Unknown) succeeded")
	}
	if _, _, err := s.Mint(apiE, MintOptions{IssuedAt: t0, ExpiresAt: t0.Add(-time.Hour)}); err == nil {
		t.Error("Mint with expiresAt before issuedAt succeeded")
	}
}

func TestJWTClaims(t *testing.T) {
	s, _ := newTestServer()
	exp := t0.Add(90 * 24 * time.Hour)
	tok, id := mint(t, s, apiE, MintOptions{Scopes: []string{"a", "b"}, Subject: "Mairie de X - marchés publics", ExpiresAt: exp})
	parts := strings.Split(tok, ".")
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var h map[string]any
	var c map[string]any
	if json.Unmarshal(header, &h) != nil || json.Unmarshal(payload, &c) != nil {
		t.Fatal("token header or claims are not base64url JSON")
	}
	if h["alg"] != "HS256" {
		t.Errorf("alg = %v, want HS256", h["alg"])
	}
	if c["jti"] != id || c["sub"] != "Mairie de X - marchés publics" || c["iat"] != float64(t0.Unix()) ||
		c["exp"] != float64(exp.Unix()) || c["version"] == nil || c["uid"] == nil || c["mcp"] == nil {
		t.Errorf("claims = %v", c)
	}
	if sc, _ := c["scopes"].([]any); len(sc) != 2 {
		t.Errorf("scopes claim = %v", c["scopes"])
	}

	_, id2 := mint(t, s, apiE, MintOptions{})
	var c2 map[string]any
	tok2, _ := mint(t, s, apiE, MintOptions{})
	p2, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok2, ".")[1])
	_ = json.Unmarshal(p2, &c2)
	if c2["exp"] != float64(t0.AddDate(0, 18, 0).Unix()) {
		t.Errorf("default exp = %v, want now + 18 months", c2["exp"])
	}
	if id2 == id {
		t.Error("two mints gave the same jti")
	}
}

const day = 24 * time.Hour

func TestAutomaticExpiry(t *testing.T) {
	for _, api := range []jetonv1alpha1.API{apiE, apiP, dn} {
		t.Run(string(api), func(t *testing.T) {
			s, clock := newTestServer()
			tok, _ := mint(t, s, api, MintOptions{ExpiresAt: t0.Add(time.Hour)})
			if w := check(s, api, tok); w.Code != 200 {
				t.Fatalf("before exp: status = %d, want 200", w.Code)
			}
			clock.Add(time.Hour)
			if api == dn {
				// A Démarches Numériques expiry is a date: the token works through that day
				// (Paris time), and is refused the day after.
				if w := check(s, api, tok); w.Code != 200 {
					t.Fatalf("on its expiry date: status = %d, want 200; body %s", w.Code, w.Body.String())
				}
				clock.Add(day)
			}
			w := check(s, api, tok)
			if w.Code != 401 {
				t.Fatalf("at exp: status = %d, want 401; body %s", w.Code, w.Body.String())
			}
			if api == dn {
				var got dnBody
				decodeJSON(t, w, &got)
				if got.Errors[0].Extensions.Code != "unauthorized" || got.Errors[0].Message != "Token expired" {
					t.Errorf("body = %s, want unauthorized/Token expired", w.Body.String())
				}
			} else if code := apiCode(t, w); code != "00103" {
				t.Errorf("code = %q, want 00103", code)
			}
		})
	}
}

// TestPerTokenRateLimit checks the real limits are enforced per token, with the headers
// a well-behaved client needs, and that the window resets.
func TestPerTokenRateLimit(t *testing.T) {
	for _, tc := range []struct {
		api    jetonv1alpha1.API
		limit  int
		period time.Duration
	}{
		{apiE, 250, time.Minute},
		{apiP, 20, time.Second},
		{dn, 400, time.Minute},
	} {
		t.Run(string(tc.api), func(t *testing.T) {
			s, clock := newTestServer()
			tok, id := mint(t, s, tc.api, MintOptions{})
			other, _ := mint(t, s, tc.api, MintOptions{})
			reset := strconv.FormatInt(t0.Truncate(tc.period).Add(tc.period).Unix(), 10)
			for i := 1; i <= tc.limit; i++ {
				w := check(s, tc.api, tok)
				if w.Code != 200 {
					t.Fatalf("request %d: status = %d, want 200", i, w.Code)
				}
				if got := w.Header().Get("RateLimit-Remaining"); got != strconv.Itoa(tc.limit-i) {
					t.Fatalf("request %d: RateLimit-Remaining = %s, want %d", i, got, tc.limit-i)
				}
				if w.Header().Get("RateLimit-Limit") != strconv.Itoa(tc.limit) || w.Header().Get("RateLimit-Reset") != reset {
					t.Fatalf("request %d: RateLimit-Limit %s Reset %s, want %d %s", i,
						w.Header().Get("RateLimit-Limit"), w.Header().Get("RateLimit-Reset"), tc.limit, reset)
				}
			}
			w := check(s, tc.api, tok)
			if w.Code != 429 {
				t.Fatalf("request %d: status = %d, want 429", tc.limit+1, w.Code)
			}
			ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
			if err != nil || ra < 1 || time.Duration(ra)*time.Second > tc.period {
				t.Errorf("Retry-After = %q, want 1..%v seconds", w.Header().Get("Retry-After"), tc.period)
			}
			if tc.api != dn {
				if code := apiCode(t, w); code != "00429" {
					t.Errorf("code = %q, want 00429", code)
				}
			}
			if w := check(s, tc.api, other); w.Code != 200 {
				t.Errorf("another token: status = %d, want 200 (limits are per token)", w.Code)
			}
			clock.Add(tc.period)
			if w := check(s, tc.api, tok); w.Code != 200 {
				t.Errorf("next window: status = %d, want 200", w.Code)
			}
			if n := len(s.Requests(id)); n != tc.limit+2 {
				t.Errorf("Requests logged %d, want %d", n, tc.limit+2)
			}
		})
	}
}

func TestPerIPRateLimit(t *testing.T) {
	s, _ := newTestServer()
	tok, _ := mint(t, s, apiE, MintOptions{})
	for i := 0; i < 1000; i++ {
		r := httptest.NewRequest(http.MethodGet, "/pings", nil)
		r.RemoteAddr = "192.0.2.1:1234"
		if w := serve(s, r); w.Code != 200 {
			t.Fatalf("ping %d: status = %d", i, w.Code)
		}
	}
	r := checkRequest(apiE, tok)
	r.RemoteAddr = "192.0.2.1:5678" // same IP, another port
	w := serve(s, r)
	if w.Code != 429 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("request 1001 from the same IP: status %d Retry-After %q, want 429 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	if code := apiCode(t, w); code != "00429" {
		t.Errorf("code = %q, want 00429", code)
	}
	r = checkRequest(apiE, tok)
	r.RemoteAddr = "192.0.2.2:1234"
	if w := serve(s, r); w.Code != 200 {
		t.Errorf("another IP: status = %d, want 200", w.Code)
	}
	r = checkRequest(apiP, mustMint(t, s, apiP))
	r.RemoteAddr = "192.0.2.1:1234"
	if w := serve(s, r); w.Code != 200 {
		t.Errorf("same IP on API Particulier: status = %d, want 200 (another service, another counter)", w.Code)
	}
}

func mustMint(t *testing.T, s *Server, api jetonv1alpha1.API) string {
	tok, _ := mint(t, s, api, MintOptions{})
	return tok
}

func TestPingsAndDown(t *testing.T) {
	s, clock := newTestServer()
	tok, _ := mint(t, s, apiE, MintOptions{})
	ping := func() (int, map[string]string) {
		w := serve(s, httptest.NewRequest(http.MethodGet, "/pings", nil))
		var body map[string]string
		decodeJSON(t, w, &body)
		return w.Code, body
	}
	code, body := ping()
	if code != 200 || body["status"] != "ok" || body["last_update"] == "" || body["last_ok_status"] == "" {
		t.Errorf("pings = %d %v, want 200 ok", code, body)
	}
	s.SetDown(true)
	clock.Add(time.Minute)
	code, body = ping()
	if code != 502 || body["status"] == "ok" || body["last_ok_status"] != t0.Format(time.RFC3339) {
		t.Errorf("pings while down = %d %v, want 502, not ok, last_ok_status %s", code, body, t0.Format(time.RFC3339))
	}
	for _, api := range []jetonv1alpha1.API{apiE, apiP, dn} {
		w := check(s, api, mustMint(t, s, api))
		if w.Code != 502 || json.Valid(w.Body.Bytes()) {
			t.Errorf("%s while down: %d %q, want 502 with a non-JSON page", api, w.Code, w.Body.String())
		}
	}
	s.SetDown(false)
	if w := check(s, apiE, tok); w.Code != 200 {
		t.Errorf("after SetDown(false): status = %d", w.Code)
	}
}

func TestParseDemarcheQuery(t *testing.T) {
	cases := []struct {
		body string
		want int64
		ok   bool
	}{
		{`{"query":"{ demarche(number: 123) { id number } }"}`, 123, true},
		{`{"query":"query{demarche(number:7){id}}"}`, 7, true},
		{`{"query":"query q($number: Int!) { demarche(number: $number) { id } }","variables":{"number":5}}`, 5, true},
		{`{"query":"query q($demarcheNumber: Int!) { demarche(number: $demarcheNumber) { id } }","variables":{"demarcheNumber":"9"}}`, 9, true},
		{`{"query":"query q($number: Int!) { demarche(number: $number) { id } }","variables":{}}`, 0, false},
		{`{"query":"query q($number: Int!) { demarche(number: $number) { id } }","variables":{"number":1.5}}`, 0, false},
		{`{"query":"{ dossier(number: 1) { id } }"}`, 0, false},
		{`not json`, 0, false},
	}
	for _, tc := range cases {
		got, err := parseDemarcheQuery([]byte(tc.body))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseDemarcheQuery(%s) = %d, %v; want %d, ok=%v", tc.body, got, err, tc.want, tc.ok)
		}
	}
}

func TestRequestsLog(t *testing.T) {
	s, clock := newTestServer()
	tok, id := mint(t, s, apiE, MintOptions{})
	check(s, apiE, tok)
	clock.Add(time.Second)
	if err := s.SetBehaviour(id, Revoked); err != nil {
		t.Fatal(err)
	}
	check(s, apiE, tok)
	check(s, apiE, "garbage") // not this token's request
	got := s.Requests(id)
	if len(got) != 2 {
		t.Fatalf("Requests = %v, want 2 entries", got)
	}
	want := []Request{{Time: t0, Method: "GET", Path: "/privileges", Status: 200, Authorization: true}, {Time: t0.Add(time.Second), Method: "GET", Path: "/privileges", Status: 401, Authorization: true}}
	for i := range want {
		g := got[i]
		g.Duration = 0
		if g != want[i] {
			t.Errorf("Requests[%d] = %+v, want %+v", i, g, want[i])
		}
	}
	if s.Requests("nope") != nil {
		t.Error("Requests of an unknown id is not nil")
	}
}

// TestLogsNeverContainTokens makes requests of every kind and checks no token, nor its
// secret part, reaches the log.
func TestLogsNeverContainTokens(t *testing.T) {
	var buf bytes.Buffer
	s, _ := newTestServer(WithLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	var secrets []string
	for _, api := range []jetonv1alpha1.API{apiE, apiP, dn} {
		for _, b := range []Behaviour{Healthy, Revoked, RateLimitedEmptyBody} {
			tok, id := mint(t, s, api, MintOptions{})
			_ = s.SetBehaviour(id, b)
			check(s, api, tok)
			secrets = append(secrets, tok)
			if api == dn {
				raw, _ := base64.RawURLEncoding.DecodeString(tok)
				_, secret, _ := strings.Cut(string(raw), ";")
				secrets = append(secrets, secret)
			} else {
				secrets = append(secrets, strings.Split(tok, ".")[2])
			}
		}
	}
	if !strings.Contains(buf.String(), "/privileges") {
		t.Fatalf("logger saw no requests: %q", buf.String())
	}
	for _, sec := range secrets {
		if strings.Contains(buf.String(), sec) {
			t.Fatal("the log contains a token or its secret part")
		}
	}
}

func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	var c map[string]any
	if err != nil || json.Unmarshal(payload, &c) != nil {
		t.Fatal("token claims are not base64url JSON")
	}
	return c
}

func TestRenew(t *testing.T) {
	for _, api := range []jetonv1alpha1.API{apiE, apiP, dn} {
		t.Run(string(api), func(t *testing.T) {
			s, clock := newTestServer()
			old, id := mint(t, s, api, MintOptions{ExpiresAt: t0.Add(time.Hour)})
			clock.Add(2 * time.Hour)
			if api == dn {
				clock.Add(day) // past the expiry date
			}
			if w := check(s, api, old); w.Code != 401 {
				t.Fatalf("before renewal: status = %d, want 401 (expired)", w.Code)
			}
			newExp := t0.AddDate(1, 0, 0)
			renewed, err := s.Renew(id, newExp)
			if err != nil {
				t.Fatal(err)
			}
			if w := check(s, api, renewed); w.Code != 200 {
				t.Fatalf("renewed token: status = %d, want 200", w.Code)
			}
			if api == dn {
				if renewed != old {
					t.Error("a DN renewal changed the token string; DN expiry is server-side")
				}
			} else {
				c0, c1 := jwtClaims(t, old), jwtClaims(t, renewed)
				// A prolongation keeps jti and iat, and changes exp only.
				if renewed == old || c1["jti"] != id || c1["uid"] != c0["uid"] || c1["iat"] != c0["iat"] || c1["exp"] != float64(newExp.Unix()) {
					t.Errorf("renewal claims = %v, want a new string with jti %s, same uid and iat, exp %d", c1, id, newExp.Unix())
				}
				// The old string keeps working: the backend reads exp from its records.
				if w := check(s, api, old); w.Code != 200 {
					t.Errorf("the old string after a prolongation: status = %d, want 200", w.Code)
				}
			}
			if _, err := s.Renew(id, t0); err == nil {
				t.Error("Renew to a past time succeeded")
			}
			if _, err := s.Renew("nope", newExp); !errors.Is(err, ErrUnknownToken) {
				t.Errorf("Renew(unknown) = %v, want ErrUnknownToken", err)
			}
		})
	}
}

// BenchmarkPrivileges measures one healthy API Entreprise token check through the handler.
func BenchmarkPrivileges(b *testing.B) {
	clock := &fakeClock{now: t0}
	s := New(WithClock(clock.Now))
	tok, _, err := s.Mint(apiE, MintOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		clock.Add(time.Minute) // a new rate-limit window each time: every answer is a 200
		r := checkRequest(apiE, tok)
		r.RemoteAddr = "192.0.2.1:1"
		if w := serve(s, r); w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
}
