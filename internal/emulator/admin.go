package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// TokenInfo describes a minted token without the token itself.
type TokenInfo struct {
	ID                string            `json:"id"`
	API               jetonv1alpha1.API `json:"api"`
	Behaviour         Behaviour         `json:"behaviour"`
	Subject           string            `json:"subject,omitempty"`
	Scopes            []string          `json:"scopes"`
	IssuedAt          time.Time         `json:"issuedAt"`
	ExpiresAt         time.Time         `json:"expiresAt"`
	RetryAfterSeconds int64             `json:"retryAfterSeconds"`
	DelayMs           int64             `json:"delayMs"`
	Requests          int               `json:"requests"`        // total seen, including those dropped from the log
	TooManyRequests   int               `json:"tooManyRequests"` // 429s answered to it
	MaxInFlight       int               `json:"maxInFlight"`
	LargeAnswerBytes  int64             `json:"largeAnswerBytes"`
	AllowedNetworks   []string          `json:"allowedNetworks,omitempty"`
	NoExpiry          bool              `json:"noExpiry,omitempty"`
}

// Tokens lists the minted tokens in minting order, never with the tokens themselves.
func (s *Server) Tokens() []TokenInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TokenInfo, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.info(s.tokens[id]))
	}
	return out
}

// info describes t; the caller holds s.mu.
func (s *Server) info(t *token) TokenInfo {
	delay := t.delay
	if delay == 0 {
		delay = s.defaultDelay
	}
	var networks []string
	for _, p := range t.allowed {
		networks = append(networks, p.String())
	}
	large := t.largeBytes
	if large == 0 {
		large = defaultLarge
	}
	return TokenInfo{ID: t.id, API: t.api, Behaviour: t.behaviour, Subject: t.subject, Scopes: slices.Clone(t.scopes),
		IssuedAt: t.issuedAt.UTC(), ExpiresAt: t.expiresAt.UTC(), RetryAfterSeconds: int64(t.retryAfter / time.Second),
		DelayMs: delay.Milliseconds(), Requests: t.total, TooManyRequests: t.tooMany, MaxInFlight: t.maxInFlight,
		LargeAnswerBytes: large, AllowedNetworks: networks, NoExpiry: t.noExpiry}
}

func (s *Server) adminRoutes() {
	s.mux.HandleFunc("POST /_emulator/tokens", s.adminMint)
	s.mux.HandleFunc("GET /_emulator/tokens", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Tokens())
	})
	s.mux.HandleFunc("GET /_emulator/tokens/{id}", s.adminGet)
	s.mux.HandleFunc("PUT /_emulator/tokens/{id}", s.adminUpdate)
	s.mux.HandleFunc("GET /_emulator/tokens/{id}/requests", s.adminRequests)
	s.mux.HandleFunc("POST /_emulator/tokens/{id}/renew", s.adminRenew)
	s.mux.HandleFunc("PUT /_emulator/down", adminSwitch("down", s.SetDown))
	s.mux.HandleFunc("PUT /_emulator/banned", adminSwitch("banned", s.SetBanned))
}

func (s *Server) adminRenew(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ExpiresAt time.Time `json:"expiresAt"`
	}
	if !decode(w, r, &req) {
		return
	}
	id := r.PathValue("id")
	tok, err := s.Renew(id, req.ExpiresAt)
	switch {
	case errors.Is(err, ErrUnknownToken):
		adminError(w, http.StatusNotFound, err)
		return
	case err != nil:
		adminError(w, http.StatusBadRequest, err)
		return
	}
	s.mu.Lock()
	info := s.info(s.tokens[id])
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, MintResponse{Token: tok, TokenInfo: info})
}

// MintRequest is the body of POST /_emulator/tokens.
type MintRequest struct {
	API       jetonv1alpha1.API `json:"api"`
	Scopes    []string          `json:"scopes,omitempty"`
	ExpiresAt time.Time         `json:"expiresAt,omitzero"`
	IssuedAt  time.Time         `json:"issuedAt,omitzero"`
	Subject   string            `json:"subject,omitempty"`
	// AllowedNetworks and NoExpiry: see MintOptions.
	AllowedNetworks []string `json:"allowedNetworks,omitempty"`
	NoExpiry        bool     `json:"noExpiry,omitempty"`
}

// MintResponse is the answer to POST /_emulator/tokens, the only answer holding a token.
type MintResponse struct {
	Token string `json:"token"`
	TokenInfo
}

// UpdateRequest is the body of PUT /_emulator/tokens/{id}; absent fields are left alone.
type UpdateRequest struct {
	Behaviour         *Behaviour `json:"behaviour,omitempty"`
	RetryAfterSeconds *int64     `json:"retryAfterSeconds,omitempty"`
	DelayMs           *int64     `json:"delayMs,omitempty"`
	// AllowedNetworks replaces the token's IP allow-list ([] removes it).
	AllowedNetworks *[]string `json:"allowedNetworks,omitempty"`
	// LargeAnswerBytes sets the size of a LargeAnswer token's data answers.
	LargeAnswerBytes *int64 `json:"largeAnswerBytes,omitempty"`
}

func (s *Server) adminMint(w http.ResponseWriter, r *http.Request) {
	var req MintRequest
	if !decode(w, r, &req) {
		return
	}
	tok, id, err := s.Mint(req.API, MintOptions{Scopes: req.Scopes, ExpiresAt: req.ExpiresAt, IssuedAt: req.IssuedAt, Subject: req.Subject,
		AllowedNetworks: req.AllowedNetworks, NoExpiry: req.NoExpiry})
	if err != nil {
		adminError(w, http.StatusBadRequest, err)
		return
	}
	s.mu.Lock()
	info := s.info(s.tokens[id])
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, MintResponse{Token: tok, TokenInfo: info})
}

func (s *Server) adminGet(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	t, ok := s.tokens[r.PathValue("id")]
	var info TokenInfo
	if ok {
		info = s.info(t)
	}
	s.mu.Unlock()
	if !ok {
		adminError(w, http.StatusNotFound, fmt.Errorf("%w %q", ErrUnknownToken, r.PathValue("id")))
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) adminUpdate(w http.ResponseWriter, r *http.Request) {
	var req UpdateRequest
	if !decode(w, r, &req) {
		return
	}
	id := r.PathValue("id")
	var info TokenInfo
	// All fields are checked before any is applied, so a bad request changes nothing.
	err := s.update(id, func(t *token) error {
		next := *t
		if req.Behaviour != nil {
			if err := checkBehaviour(&next, *req.Behaviour); err != nil {
				return err
			}
			next.behaviour = *req.Behaviour
		}
		if req.RetryAfterSeconds != nil {
			if *req.RetryAfterSeconds < 1 {
				return fmt.Errorf("retryAfterSeconds must be at least 1")
			}
			next.retryAfter = time.Duration(*req.RetryAfterSeconds) * time.Second
		}
		if req.DelayMs != nil {
			if *req.DelayMs < 0 {
				return fmt.Errorf("delayMs must not be negative")
			}
			next.delay = time.Duration(*req.DelayMs) * time.Millisecond
		}
		if req.AllowedNetworks != nil {
			allowed, err := ParseNetworks(*req.AllowedNetworks)
			if err != nil {
				return err
			}
			if len(allowed) == 0 && t.noExpiry {
				return fmt.Errorf("token %s has no expiry, which needs an allow-list", t.id)
			}
			next.allowed = allowed
		}
		if req.LargeAnswerBytes != nil {
			if n := *req.LargeAnswerBytes; n < minLargeAnswer || n > maxLargeAnswer {
				return fmt.Errorf("largeAnswerBytes must be %d to %d", minLargeAnswer, maxLargeAnswer)
			}
			next.largeBytes = *req.LargeAnswerBytes
		}
		t.behaviour, t.retryAfter, t.delay, t.allowed, t.largeBytes = next.behaviour, next.retryAfter, next.delay, next.allowed, next.largeBytes
		info = s.info(t)
		return nil
	})
	switch {
	case errors.Is(err, ErrUnknownToken):
		adminError(w, http.StatusNotFound, err)
	case err != nil:
		adminError(w, http.StatusBadRequest, err)
	default:
		writeJSON(w, http.StatusOK, info)
	}
}

// requestJSON is a Request as the admin API shows it.
type requestJSON struct {
	Time       time.Time `json:"time"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Status     int       `json:"status"`
	DurationMs float64   `json:"durationMs"`
	// What a gateway's tests assert upstream; never a token, header value or body.
	Recipient     string `json:"recipient,omitempty"`
	Recipients    int    `json:"recipients,omitempty"`
	Authorization bool   `json:"authorization,omitempty"`
	APIKey        bool   `json:"apiKey,omitempty"`
	Mutation      bool   `json:"mutation,omitempty"`
}

func (s *Server) adminRequests(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	_, ok := s.tokens[id]
	s.mu.Unlock()
	if !ok {
		adminError(w, http.StatusNotFound, fmt.Errorf("%w %q", ErrUnknownToken, id))
		return
	}
	reqs := s.Requests(id)
	out := make([]requestJSON, 0, len(reqs))
	for _, q := range reqs {
		out = append(out, requestJSON{Time: q.Time.UTC(), Method: q.Method, Path: q.Path, Status: q.Status,
			DurationMs: float64(q.Duration.Microseconds()) / 1000, Recipient: q.Recipient, Recipients: q.Recipients,
			Authorization: q.Authorization, APIKey: q.APIKey, Mutation: q.Mutation})
	}
	writeJSON(w, http.StatusOK, out)
}

// adminSwitch handles PUT {"<name>": true|false}, a server-wide switch set by set.
func adminSwitch(name string, set func(bool)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req map[string]*bool
		if !decode(w, r, &req) {
			return
		}
		v, ok := req[name]
		if !ok || v == nil || len(req) != 1 {
			adminError(w, http.StatusBadRequest, fmt.Errorf(`body must be {"%s": true} or {"%s": false}`, name, name))
			return
		}
		set(*v)
		writeJSON(w, http.StatusOK, map[string]bool{name: *v})
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		adminError(w, http.StatusBadRequest, fmt.Errorf("invalid JSON body: %v", err))
		return false
	}
	return true
}

func adminError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
