package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

func TestSlowAnswersCorrectly(t *testing.T) {
	for _, api := range []jetonv1alpha1.API{apiE, apiP, dn} {
		t.Run(string(api), func(t *testing.T) {
			s, _ := newTestServer()
			tok, id := mint(t, s, api, MintOptions{Scopes: []string{"42"}})
			if err := s.SetBehaviour(id, Slow); err != nil {
				t.Fatal(err)
			}
			if err := s.SetDelay(id, 5*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			w := check(s, api, tok)
			if w.Code != 200 || !strings.Contains(w.Body.String(), "42") {
				t.Errorf("slow answer = %d %q, want 200 with the healthy body", w.Code, w.Body.String())
			}
			if got := s.Requests(id); len(got) != 1 || got[0].Duration < 5*time.Millisecond {
				t.Errorf("Requests = %+v, want one request lasting at least the delay", got)
			}
		})
	}
}

// TestSlowHonoursCancellation checks a slow answer stops as soon as the client gives up.
func TestSlowHonoursCancellation(t *testing.T) {
	s, _ := newTestServer(WithDefaultDelay(time.Hour))
	tok, id := mint(t, s, apiE, MintOptions{})
	if err := s.SetBehaviour(id, Slow); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- serve(s, checkRequest(apiE, tok).WithContext(ctx)) }()
	waitFor(t, "the request to be in flight", func() bool { return s.MaxInFlight(id) == 1 })
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow handler did not return after the client gave up")
	}
	if got := s.Requests(id); len(got) != 1 || got[0].Status != StatusClientClosedRequest {
		t.Errorf("Requests = %+v, want one request with status %d", got, StatusClientClosedRequest)
	}
}

// TestMaxInFlight runs concurrent slow requests over real connections.
func TestMaxInFlight(t *testing.T) {
	s, _ := newTestServer(WithDefaultDelay(time.Hour))
	srv := httptest.NewServer(s)
	defer srv.Close()
	tok, id := mint(t, s, apiE, MintOptions{})
	quick, quickID := mint(t, s, apiE, MintOptions{})
	if err := s.SetBehaviour(id, Slow); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 3
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/privileges", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := srv.Client().Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errs <- err
		})
	}
	waitFor(t, "3 requests in flight", func() bool { return s.MaxInFlight(id) == n })
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("client error = %v, want context.Canceled", err)
		}
	}
	waitFor(t, "the server to log the 3 requests", func() bool { return len(s.Requests(id)) == n })
	if got := s.MaxInFlight(id); got != n {
		t.Errorf("MaxInFlight = %d, want %d", got, n)
	}

	for range 3 { // sequential requests never overlap
		resp, err := doReq(srv, http.MethodGet, "/privileges", quick, "")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("quick request: %v %v", resp, err)
		}
	}
	if got := s.MaxInFlight(quickID); got != 1 {
		t.Errorf("MaxInFlight of sequential requests = %d, want 1", got)
	}
}

func doReq(srv *httptest.Server, method, path, tok, body string) (*http.Response, error) {
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	return resp, nil
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestAdminAPIRoundTrip(t *testing.T) {
	s, _ := newTestServer()
	srv := httptest.NewServer(s)
	defer srv.Close()

	resp, err := doReq(srv, http.MethodPost, "/_emulator/tokens", "", `{"api":"APIEntreprise","scopes":["a","b"],"expiresAt":"2027-01-01T00:00:00Z","subject":"Mairie"}`)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("mint: %v %v", resp, err)
	}
	var minted MintResponse
	if err := json.Unmarshal([]byte(readAll(t, resp)), &minted); err != nil || minted.Token == "" || minted.ID == "" {
		t.Fatalf("mint answer: %+v %v", minted, err)
	}
	if !minted.ExpiresAt.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) || minted.API != apiE {
		t.Errorf("minted = %+v", minted.TokenInfo)
	}

	if resp, _ := doReq(srv, http.MethodGet, "/privileges", minted.Token, ""); resp.StatusCode != 200 {
		t.Fatalf("privileges with the minted token: %d", resp.StatusCode)
	}
	resp, _ = doReq(srv, http.MethodPut, "/_emulator/tokens/"+minted.ID, "", `{"behaviour":"rate-limited","retryAfterSeconds":60,"delayMs":100}`)
	if resp.StatusCode != 200 {
		t.Fatalf("update: %d %s", resp.StatusCode, readAll(t, resp))
	}
	resp, _ = doReq(srv, http.MethodGet, "/privileges", minted.Token, "")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "60" {
		t.Errorf("after update: %d Retry-After %q, want 429 and 60", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	// A bad update changes nothing.
	for body, status := range map[string]int{
		`{"behaviour":"revoked","retryAfterSeconds":0}`: 400,
		`{"behaviour":"not-found"}`:                     400,
		`{"behavior":"revoked"}`:                        400,
	} {
		if resp, _ := doReq(srv, http.MethodPut, "/_emulator/tokens/"+minted.ID, "", body); resp.StatusCode != status {
			t.Errorf("PUT %s: %d, want %d", body, resp.StatusCode, status)
		}
	}
	if resp, _ := doReq(srv, http.MethodPut, "/_emulator/tokens/no-such-id", "", `{"behaviour":"revoked"}`); resp.StatusCode != 404 {
		t.Errorf("PUT unknown id: %d, want 404", resp.StatusCode)
	}
	if resp, _ := doReq(srv, http.MethodPost, "/_emulator/tokens", "", `{"api":"Nope"}`); resp.StatusCode != 400 {
		t.Errorf("mint unknown API: %d, want 400", resp.StatusCode)
	}

	resp, _ = doReq(srv, http.MethodGet, "/_emulator/tokens", "", "")
	listing := readAll(t, resp)
	var list []TokenInfo
	if err := json.Unmarshal([]byte(listing), &list); err != nil || len(list) != 1 {
		t.Fatalf("listing %q: %v", listing, err)
	}
	want := TokenInfo{ID: minted.ID, API: apiE, Behaviour: RateLimited, Subject: "Mairie", Scopes: []string{"a", "b"},
		IssuedAt: t0, ExpiresAt: minted.ExpiresAt, RetryAfterSeconds: 60, DelayMs: 100, Requests: 2, MaxInFlight: 1}
	got := list[0]
	if got.ID != want.ID || got.Behaviour != want.Behaviour || got.RetryAfterSeconds != 60 || got.DelayMs != 100 ||
		got.Requests != 2 || got.MaxInFlight != 1 || !got.IssuedAt.Equal(t0) {
		t.Errorf("listing = %+v, want %+v", got, want)
	}
	for i, part := range strings.Split(minted.Token, ".") {
		if i > 0 && strings.Contains(listing, part) { // the header part is the same for every token
			t.Fatalf("the listing contains part %d of the token", i)
		}
	}

	resp, _ = doReq(srv, http.MethodGet, "/_emulator/tokens/"+minted.ID+"/requests", "", "")
	var reqs []map[string]any
	if err := json.Unmarshal([]byte(readAll(t, resp)), &reqs); err != nil || len(reqs) != 2 ||
		reqs[0]["status"] != float64(200) || reqs[1]["status"] != float64(429) || reqs[1]["path"] != "/privileges" {
		t.Errorf("requests = %v (%v), want a 200 then a 429 on /privileges", reqs, err)
	}
	if resp, _ := doReq(srv, http.MethodGet, "/_emulator/tokens/no-such-id/requests", "", ""); resp.StatusCode != 404 {
		t.Errorf("requests of unknown id: %d, want 404", resp.StatusCode)
	}

	if resp, _ := doReq(srv, http.MethodPut, "/_emulator/down", "", `{"down":true}`); resp.StatusCode != 200 {
		t.Fatalf("down: %d", resp.StatusCode)
	}
	if resp, _ := doReq(srv, http.MethodGet, "/pings", "", ""); resp.StatusCode != 502 {
		t.Errorf("pings after PUT down: %d, want 502", resp.StatusCode)
	}
	if resp, _ := doReq(srv, http.MethodPut, "/_emulator/down", "", `{}`); resp.StatusCode != 400 {
		t.Errorf("PUT down without a value: %d, want 400", resp.StatusCode)
	}
}

func TestAdminRenew(t *testing.T) {
	s, clock := newTestServer()
	srv := httptest.NewServer(s)
	defer srv.Close()
	old, id := mint(t, s, apiE, MintOptions{ExpiresAt: t0.Add(time.Hour)})
	clock.Add(2 * time.Hour)
	resp, _ := doReq(srv, http.MethodPost, "/_emulator/tokens/"+id+"/renew", "", `{"expiresAt":"2027-06-01T00:00:00Z"}`)
	var renewed MintResponse
	if err := json.Unmarshal([]byte(readAll(t, resp)), &renewed); err != nil || resp.StatusCode != 200 {
		t.Fatalf("renew: %d %v", resp.StatusCode, err)
	}
	if renewed.Token == old || renewed.ID != id || !renewed.ExpiresAt.Equal(time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("renewal = %+v, want a new token for %s expiring 2027-06-01", renewed.TokenInfo, id)
	}
	if resp, _ := doReq(srv, http.MethodGet, "/privileges", renewed.Token, ""); resp.StatusCode != 200 {
		t.Errorf("renewed token: %d, want 200", resp.StatusCode)
	}
	if resp, _ := doReq(srv, http.MethodPost, "/_emulator/tokens/nope/renew", "", `{"expiresAt":"2027-06-01T00:00:00Z"}`); resp.StatusCode != 404 {
		t.Errorf("renew unknown id: %d, want 404", resp.StatusCode)
	}
	if resp, _ := doReq(srv, http.MethodPost, "/_emulator/tokens/"+id+"/renew", "", `{}`); resp.StatusCode != 400 {
		t.Errorf("renew without expiresAt: %d, want 400", resp.StatusCode)
	}
}
