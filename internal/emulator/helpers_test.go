package emulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// t0 is 5s into a minute, so fixed windows have a known end.
var t0 = time.Date(2026, 3, 2, 10, 0, 5, 0, time.UTC)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newTestServer is an emulator in the legacy shapes, which the older tests of this
// package describe; newRealServer answers as the published backends (the default).
func newTestServer(opts ...Option) (*Server, *fakeClock) {
	return newRealServer(append([]Option{WithLegacyShapes()}, opts...)...)
}

func newRealServer(opts ...Option) (*Server, *fakeClock) {
	c := &fakeClock{now: t0}
	return New(append([]Option{WithClock(c.Now)}, opts...)...), c
}

func mint(t *testing.T, s *Server, api jetonv1alpha1.API, o MintOptions) (tok, id string) {
	t.Helper()
	tok, id, err := s.Mint(api, o)
	if err != nil {
		t.Fatalf("Mint(%s): %v", api, err)
	}
	return tok, id
}

// checkRequest builds the API's own token check, as the operator's probe sends it.
func checkRequest(api jetonv1alpha1.API, tok string) *http.Request {
	var r *http.Request
	switch api {
	case jetonv1alpha1.APIEntreprise:
		r = httptest.NewRequest(http.MethodGet, "/privileges", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
	case jetonv1alpha1.APIParticulier:
		r = httptest.NewRequest(http.MethodGet, "/api/introspect", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
	default:
		r = httptest.NewRequest(http.MethodPost, "/api/v2/graphql", strings.NewReader(`{"query":"{ demarche(number: 42) { id number } }"}`))
		r.Header.Set("Authorization", "Bearer "+tok)
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

func serve(s http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func check(s http.Handler, api jetonv1alpha1.API, tok string) *httptest.ResponseRecorder {
	return serve(s, checkRequest(api, tok))
}

// apiErr is the error body of API Entreprise / API Particulier.
type apiErr struct {
	Errors []struct {
		Code   string         `json:"code"`
		Title  string         `json:"title"`
		Detail string         `json:"detail"`
		Source map[string]any `json:"source"`
		Meta   map[string]any `json:"meta"`
	} `json:"errors"`
}

// dnBody is a GraphQL answer of Démarches Numériques.
type dnBody struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string `json:"message"`
		Extensions struct {
			Code string `json:"code"`
		} `json:"extensions"`
	} `json:"errors"`
}

func decodeJSON(t *testing.T, w *httptest.ResponseRecorder, v any) {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want JSON; body %q", ct, w.Body.String())
	}
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("body %q: %v", w.Body.String(), err)
	}
}

// apiCode returns errors[0].code of an API Entreprise/Particulier error body.
func apiCode(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var e apiErr
	decodeJSON(t, w, &e)
	if len(e.Errors) != 1 || e.Errors[0].Title == "" || e.Errors[0].Detail == "" || e.Errors[0].Source == nil || e.Errors[0].Meta == nil {
		t.Fatalf("error body %q lacks errors[0] with code, title, detail, source and meta", w.Body.String())
	}
	return e.Errors[0].Code
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
