package emulator

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/fidelity"
)

// TestAnswersAreThePublishedBackends' checks that the emulator answers every token check
// of internal/fidelity byte for byte: status, body, and each compared header present with
// the same value or absent. The default server gives the backends' current answers; the
// legacy ones come from WithLegacyShapes.
func TestAnswersAreThePublishedBackends(t *testing.T) {
	// setups put the emulator in each answer's case; req is the token check to send.
	scopes := map[jetonv1alpha1.API][]string{
		apiE: {"attestations_fiscales", "unites_legales_etablissements_insee"},
		apiP: {"cnaf_quotient_familial"},
		dn:   {"42"},
	}
	type setup func(t *testing.T, s *Server, c *fakeClock, id string)
	behave := func(b Behaviour) setup {
		return func(t *testing.T, s *Server, _ *fakeClock, id string) {
			if err := s.SetBehaviour(id, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	elsewhere := func(t *testing.T, s *Server, _ *fakeClock, id string) {
		if err := s.SetAllowedNetworks(id, []string{"203.0.113.0/24"}); err != nil {
			t.Fatal(err)
		}
	}
	none := func(*testing.T, *Server, *fakeClock, string) {}
	setups := map[string]setup{
		"ae-privileges": none, "ae-privileges-legacy": none, "ap-introspect": none, "dn-demarche": none,
		"ae-invalid": behave(Unauthorized), "ap-invalid": behave(Unauthorized), "dn-invalid": behave(Unauthorized),
		"ae-expired": behave(Expired), "ap-expired": behave(Expired),
		"dn-expired": func(t *testing.T, s *Server, c *fakeClock, id string) {
			c.Add(48 * time.Hour) // minted to expire the next hour: the day after its date
		},
		"ae-blacklisted": behave(Revoked), "ap-blacklisted": behave(Revoked),
		"ae-insufficient-privileges": behave(InsufficientPrivileges), "ap-insufficient-privileges": behave(InsufficientPrivileges),
		"dn-out-of-scope": behave(InsufficientPrivileges), "dn-not-found": behave(NotFound),
		"ae-ip-not-allowed": elsewhere, "ap-ip-not-allowed": elsewhere, "dn-forbidden-network": elsewhere,
		"ae-throttled": behave(RateLimited), "ae-throttled-empty": behave(RateLimitedEmptyBody),
		"dn-throttled": behave(RateLimited), "dn-throttled-legacy": behave(RateLimited),
	}
	for _, a := range fidelity.Answers {
		t.Run(a.Name, func(t *testing.T) {
			set, ok := setups[a.Name]
			if !ok {
				t.Fatalf("no emulator case for answer %s: every published answer must be emulated", a.Name)
			}
			var opts []Option
			if a.Legacy {
				opts = append(opts, WithLegacyShapes())
			}
			c := &fakeClock{now: fidelity.Now}
			s := New(append(opts, WithClock(c.Now))...)
			o := MintOptions{Scopes: scopes[a.API]}
			if a.Name == "dn-expired" {
				o.ExpiresAt = fidelity.Now.Add(time.Hour)
			}
			tok, id := mint(t, s, a.API, o)
			if err := s.SetRetryAfter(id, fidelity.RetryAfter*time.Second); err != nil {
				t.Fatal(err)
			}
			set(t, s, c, id)
			r := checkRequest(a.API, tok)
			if a.API == apiP {
				// API Particulier v2 clients send X-Api-Key; both are accepted.
				r.Header.Del("Authorization")
				r.Header.Set("X-Api-Key", tok)
			}
			r.RemoteAddr = fidelity.RemoteAddr + ":40000"
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != a.Status {
				t.Errorf("status = %d, want %d", w.Code, a.Status)
			}
			if got, want := w.Body.String(), fidelity.WithTokenID(a.Body, id); got != want {
				t.Errorf("body differs from %s:\n got %q\nwant %q", a.Source, got, want)
			}
			for _, name := range fidelity.Compared {
				got, want := w.Header().Values(name), a.Header.Values(name)
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Errorf("header %s = %q, want %q", name, got, want)
				}
			}
			if strings.Contains(w.Body.String(), tok) {
				t.Error("the answer echoes the token")
			}
		})
	}
}

// A banned address gets no HTTP answer at all: the connection closes.
func TestBannedAddressGetsNoAnswer(t *testing.T) {
	s := New()
	tok, id, err := s.Mint(apiE, MintOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	s.SetBanned(true)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/privileges", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := srv.Client().Do(req)
	if err == nil {
		_ = resp.Body.Close()
		t.Fatalf("a banned address got an answer: %d", resp.StatusCode)
	}
	if reqs := s.Requests(id); len(reqs) != 1 || reqs[0].Status != StatusNoAnswer {
		t.Errorf("request log = %+v, want one request without answer", reqs)
	}
	s.SetBanned(false)
	resp, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after the ban: %d, want 200", resp.StatusCode)
	}
}

// A Démarches Numériques token without expiry needs an allow-list, as on the real API.
func TestDNNoExpiryNeedsAllowList(t *testing.T) {
	s, c := newRealServer()
	if _, _, err := s.Mint(dn, MintOptions{NoExpiry: true}); err == nil {
		t.Error("a token without expiry and without allow-list was minted")
	}
	tok, _ := mint(t, s, dn, MintOptions{NoExpiry: true, AllowedNetworks: []string{"192.0.2.0/24"}})
	c.Add(5 * 365 * 24 * time.Hour)
	if w := check(s, dn, tok); w.Code != 200 {
		t.Errorf("five years on, a token without expiry: %d, want 200", w.Code)
	}
}
