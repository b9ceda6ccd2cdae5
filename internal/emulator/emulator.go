// Package emulator is a faithful, in-process emulator of the three public APIs jeton
// checks tokens against (DESIGN.md section 1). Tests use it through httptest; the local
// run (`make dev`, `go run ./cmd/emulator`) serves it on 127.0.0.1:18080.
//
// It signs its own tokens with a random HS256 key, so only tokens it minted are accepted:
//
//	API Entreprise       GET  /privileges      Authorization: Bearer <jwt>
//	                     GET  /pings           (unauthenticated health)
//	API Particulier      GET  /api/introspect  X-Api-Key: <jwt> (v2) or Authorization: Bearer <jwt> (v3)
//	Démarches Numériques POST /api/v2/graphql  Authorization: Bearer <base64url("<uuid>;<secret>")>
//
// and the data routes a gateway proxies (data.go), with the same tokens, limits and
// behaviours, their parameters checked in the backends' order and in their formats:
//
//	API Entreprise       GET  /v3/insee/sirene/etablissements/{siret}  context, object, recipient (a SIRET)
//	                     GET  /v3/insee/sirene/unites_legales/{siren}
//	API Particulier      GET  /v3/france_travail/statut/identifiant    identifiant, recipient (a SIRET)
//	                     GET  /api/v2/situations-pole-emploi           identifiant, recipient optional
//	Démarches Numériques POST /api/v2/graphql                          queries and mutations
//
// Each token has a Behaviour (healthy by default) that decides how the emulator answers
// it: the status codes, error codes, bodies and headers of the real APIs, including 429s
// with and without a body, Retry-After, RateLimit-* headers and slow answers. The real
// rate limits are enforced too: 250 requests/min per API Entreprise token, 20/s per API
// Particulier token, 400/min per Démarches Numériques token, and 1000/min per client IP
// on API Entreprise and API Particulier (fixed windows aligned on the clock); WithLimits
// (cmd/emulator --limit) scales them down for short tests. Requests(id) records, per
// request, what a gateway's tests assert upstream (status, recipient, which credential
// header came, mutation), never a token, header value, body or other query value;
// MaxInWindow, MaxInWindowPerIP, TooManyRequests and TotalTooManyRequests prove a client
// stayed within the limits. The LargeAnswer behaviour streams an answer of any size.
//
// # Admin API
//
// A person at the keyboard drives the emulator under /_emulator/ (unauthenticated: bind
// it to localhost):
//
//	POST /_emulator/tokens       {"api":"APIEntreprise","scopes":["unites_legales_etablissements_insee"],
//	                              "expiresAt":"2027-01-01T00:00:00Z","subject":"…"}
//	                             → 201 {"token":"…","id":"…",…}   (the only answer that ever holds a token)
//	PUT  /_emulator/tokens/{id}  {"behaviour":"revoked","retryAfterSeconds":60,"delayMs":2000,"largeAnswerBytes":52428800}
//	POST /_emulator/tokens/{id}/renew {"expiresAt":"…"}  → {"token":"…",…}  same jti, new exp ("prolongation")
//	GET  /_emulator/tokens       ids, api, behaviour, request counts — never the tokens
//	GET  /_emulator/tokens/{id}/requests
//	PUT  /_emulator/down         {"down":true}   every API answers 502 (/pings included)
//	PUT  /_emulator/banned       {"banned":true} every API request gets no answer (a banned IP)
//
// Tokens may carry an IP allow-list ("allowedNetworks" on mint and PUT): calls from another
// address get the APIs' refusal of the network. The answers are the published backends'
// (answers.go names each source); WithLegacyShapes gives the older documented shapes.
//
// For example:
//
//	curl -s -XPOST localhost:18080/_emulator/tokens -d '{"api":"APIEntreprise","scopes":["a"]}'
//	curl -s -XPUT  localhost:18080/_emulator/tokens/<id> -d '{"behaviour":"rate-limited-empty"}'
//
// Tokens never appear in logs, the listing or error messages; ids (jti or Démarches
// Numériques token id) are used instead.
package emulator

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// Behaviour decides how the emulator answers requests made with one token.
type Behaviour string

const (
	// Healthy answers 200 with the token's privileges (or démarche).
	Healthy Behaviour = "healthy"
	// Unauthorized: token unknown/invalid. API Entreprise/Particulier 401 00101; DN 403 forbidden.
	Unauthorized Behaviour = "unauthorized"
	// Expired: 401 00103; DN 401 unauthorized "Token expired". Automatic once exp has passed.
	Expired Behaviour = "expired"
	// Revoked: 401 00105 (blacklisted); DN 403 forbidden.
	Revoked Behaviour = "revoked"
	// InsufficientPrivileges: 403 00100; DN 200 data:null code unauthorized (démarche out of scope).
	InsufficientPrivileges Behaviour = "insufficient-privileges"
	// RateLimited: 429 00429 JSON body, Retry-After, RateLimit-* headers.
	RateLimited Behaviour = "rate-limited"
	// RateLimitedEmptyBody: 429 with an EMPTY body and only Retry-After (as seen on staging).
	RateLimitedEmptyBody Behaviour = "rate-limited-empty"
	// Slow answers correctly after a delay (SetDelay, default 30s), honouring request cancellation.
	Slow Behaviour = "slow"
	// Down: 502 with a non-JSON HTML error page.
	Down Behaviour = "down"
	// ServerError: 500 with a non-JSON HTML body.
	ServerError Behaviour = "server-error"
	// Conflict: 409 00015 (same request in progress). API Entreprise and API Particulier only.
	Conflict Behaviour = "conflict"
	// NotFound: Démarches Numériques only, 200 with errors code not_found (unknown démarche).
	NotFound Behaviour = "not-found"
	// LargeAnswer: data routes answer 200 with a body of SetLargeAnswer bytes (default
	// 1 MiB), streamed without holding it; token checks answer as Healthy. For the
	// gateway's streaming benchmark.
	LargeAnswer Behaviour = "large-answer"
)

// Behaviours lists every Behaviour, for usage messages and validation.
var Behaviours = []Behaviour{Healthy, Unauthorized, Expired, Revoked, InsufficientPrivileges,
	RateLimited, RateLimitedEmptyBody, Slow, Down, ServerError, Conflict, NotFound, LargeAnswer}

// ErrUnknownToken is returned (wrapped) for an id the emulator never minted.
var ErrUnknownToken = errors.New("unknown token id")

const (
	defaultRetryAfter = 32 * time.Second // what staging sends
	defaultDelay      = 30 * time.Second
	defaultLarge      = 1 << 20 // bytes of a LargeAnswer token's answers without SetLargeAnswer
	lifetimeMonths    = 18      // the portal's token lifetime
	maxLoggedRequests = 10000   // per token, so a long `make dev` stays bounded
	// StatusClientClosedRequest is recorded in the request log when the client gave up
	// before a slow answer was written (nginx's convention).
	StatusClientClosedRequest = 499
	// StatusNoAnswer is recorded for a request that got no answer at all (SetBanned),
	// nginx's code for a connection closed without a response.
	StatusNoAnswer = 444
)

// MintOptions describes a token to mint.
type MintOptions struct {
	// Scopes granted. For Démarches Numériques: the allowed démarche numbers, as strings;
	// empty means every démarche.
	Scopes []string
	// ExpiresAt is when the token stops working; zero means IssuedAt + 18 months.
	ExpiresAt time.Time
	// Subject is the JWT `sub` claim (the habilitation title); defaults to a generic title.
	Subject string
	// IssuedAt is the JWT `iat` claim; zero means now.
	IssuedAt time.Time
	// AllowedNetworks is the token's IP allow-list (addresses or CIDR prefixes); empty:
	// any address. Calls from elsewhere get 403 code 00107 (API Entreprise, API
	// Particulier) or Démarches Numériques' "forbidden network".
	AllowedNetworks []string
	// NoExpiry: a Démarches Numériques token that never expires, which the API allows
	// only with an allow-list (AllowedNetworks required).
	NoExpiry bool
}

// Request is one request the emulator saw for a token. It holds what tests of the
// gateway assert upstream and nothing more: never a token, a header value, a body or a
// query value other than a SIRET-shaped recipient (a public client's SIRET, not
// personal data).
type Request struct {
	Time     time.Time
	Method   string
	Path     string
	Status   int // StatusClientClosedRequest when the client gave up
	Duration time.Duration
	// Recipient is the query's recipient when it came once and is 14 ASCII digits;
	// "" otherwise (absent, repeated or anything else: nothing else is kept).
	Recipient string
	// Recipients is how many recipient values the query carried (2+: repeated).
	Recipients int
	// Authorization and APIKey: an Authorization or X-Api-Key header came (never its value).
	Authorization, APIKey bool
	// Mutation: a Démarches Numériques request whose operation is a GraphQL mutation.
	Mutation bool
}

// Option configures a Server.
type Option func(*Server)

// WithClock replaces time.Now, for tests of expiry and rate-limit windows.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithLogger logs one line per API request (id, path, status; never a token).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithSigningKey sets the HS256 key (default: 32 random bytes), e.g. to keep tokens
// valid across restarts of a local emulator.
func WithSigningKey(key []byte) Option {
	return func(s *Server) { s.key = slices.Clone(key) }
}

// WithLegacyShapes makes the emulator answer in the shapes of the APIs' older
// documentation instead of their backends' current code: API Entreprise's privileges at the
// top level, API Particulier's introspect name null and JSON:API errors, Démarches
// Numériques' JSON 429 with Retry-After. jeton must read both; the default is the backends'.
func WithLegacyShapes() Option { return func(s *Server) { s.legacy = true } }

// WithDefaultDelay sets the delay of Slow tokens that had no SetDelay (default 30s).
func WithDefaultDelay(d time.Duration) Option { return func(s *Server) { s.defaultDelay = d } }

// Server is the emulator. It implements http.Handler and is safe for concurrent use.
type Server struct {
	mux          *http.ServeMux
	now          func() time.Time
	log          *slog.Logger
	key          []byte
	defaultDelay time.Duration
	legacy       bool

	limits map[jetonv1alpha1.API]Limits

	mu        sync.Mutex
	tokens    map[string]*token // by id
	order     []string          // ids in minting order, for a stable listing
	ipWindows map[string]*window
	ipLog     map[string][]time.Time // arrival times per API and address, for MaxInWindowPerIP
	tooMany   int                    // 429s answered, all tokens and addresses
	// unauthenticated logs the requests whose credential was no token (none, unknown, forged).
	unauthenticated []Request
	down            bool
	banned          bool      // every API request gets no answer (SetBanned)
	lastOK          time.Time // last time /pings was ok, for its body
}

// token is the emulator's server-side record of a minted token. It keeps the DN secret
// (to check the bearer) but never the JWT string.
type token struct {
	api        jetonv1alpha1.API
	id         string
	uid        string // JWT uid claim (the portal user), kept across renewals
	secret     string // DN only
	scopes     []string
	subject    string
	issuedAt   time.Time
	expiresAt  time.Time
	behaviour  Behaviour
	retryAfter time.Duration
	delay      time.Duration // 0: the server default
	// allowed is the token's IP allow-list (siade security settings allowed_ips; Démarches
	// Numériques authorized_networks); empty: any address.
	allowed []netip.Prefix
	// noExpiry: a Démarches Numériques token without expiry (allowed with an allow-list).
	noExpiry bool

	window      window
	requests    []Request
	total       int
	tooMany     int   // 429s answered to this token
	largeBytes  int64 // LargeAnswer body size; 0: defaultLarge
	inFlight    int
	maxInFlight int
}

// New returns an emulator with no tokens.
func New(opts ...Option) *Server {
	s := &Server{
		now:          time.Now,
		log:          slog.New(slog.DiscardHandler),
		defaultDelay: defaultDelay,
		tokens:       map[string]*token{},
		ipWindows:    map[string]*window{},
		ipLog:        map[string][]time.Time{},
		limits:       maps.Clone(defaultLimits),
	}
	for _, o := range opts {
		o(s)
	}
	if len(s.key) == 0 {
		s.key = randomBytes(32)
	}
	s.lastOK = s.now()
	s.mux = http.NewServeMux()
	s.routes()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Mint issues a token for api and returns it with its id (JWT jti, or DN token id).
// The token is returned only here: the emulator keeps no copy of JWTs.
func (s *Server) Mint(api jetonv1alpha1.API, o MintOptions) (tok, id string, err error) {
	now := s.now()
	if o.IssuedAt.IsZero() {
		o.IssuedAt = now
	}
	if o.ExpiresAt.IsZero() {
		o.ExpiresAt = o.IssuedAt.AddDate(0, lifetimeMonths, 0)
	}
	// JWT times are whole seconds: keep the server-side record equal to the claims.
	o.IssuedAt, o.ExpiresAt = o.IssuedAt.Truncate(time.Second), o.ExpiresAt.Truncate(time.Second)
	if !o.ExpiresAt.After(o.IssuedAt) {
		return "", "", fmt.Errorf("expiresAt %s must be after issuedAt %s", o.ExpiresAt.Format(time.RFC3339), o.IssuedAt.Format(time.RFC3339))
	}
	if o.Subject == "" {
		o.Subject = "jeton emulator habilitation"
	}
	allowed, err := ParseNetworks(o.AllowedNetworks)
	if err != nil {
		return "", "", err
	}
	if o.NoExpiry && (api != jetonv1alpha1.DemarchesNumeriques || len(allowed) == 0) {
		return "", "", fmt.Errorf("noExpiry: only Démarches Numériques tokens with allowedNetworks may have no expiry")
	}
	t := &token{api: api, id: newUUID(), uid: newUUID(), scopes: slices.Clone(o.Scopes), subject: o.Subject,
		issuedAt: o.IssuedAt, expiresAt: o.ExpiresAt, behaviour: Healthy, retryAfter: defaultRetryAfter,
		allowed: allowed, noExpiry: o.NoExpiry}
	if t.scopes == nil {
		t.scopes = []string{}
	}
	switch api {
	case jetonv1alpha1.APIEntreprise, jetonv1alpha1.APIParticulier:
		tok, err = s.signJWT(t)
		if err != nil {
			return "", "", err
		}
	case jetonv1alpha1.DemarchesNumeriques:
		for _, sc := range t.scopes {
			if _, err := strconv.ParseUint(sc, 10, 64); err != nil {
				return "", "", fmt.Errorf("démarches numériques scopes are démarche numbers, got %q", sc)
			}
		}
		t.secret = randomHex(24)
		tok = dnToken(t.id, t.secret)
	default:
		return "", "", fmt.Errorf("unknown API %q: want %s, %s or %s", api,
			jetonv1alpha1.APIEntreprise, jetonv1alpha1.APIParticulier, jetonv1alpha1.DemarchesNumeriques)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[t.id] = t
	s.order = append(s.order, t.id)
	return tok, t.id, nil
}

// Renew extends the token with this id to expiresAt, as the portal's "prolongation"
// does: a JWT gets a new string with the same jti and iat and a new exp; a Démarches
// Numériques token keeps its string, its expiry being server-side only. Strings issued
// before stay accepted, the expiry being checked against the server-side record.
func (s *Server) Renew(id string, expiresAt time.Time) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[id]
	if !ok {
		return "", fmt.Errorf("%w %q", ErrUnknownToken, id)
	}
	now := s.now().Truncate(time.Second)
	expiresAt = expiresAt.Truncate(time.Second)
	if !expiresAt.After(now) {
		return "", fmt.Errorf("renewal expiry %s must be in the future", expiresAt.Format(time.RFC3339))
	}
	renewed := *t
	renewed.expiresAt = expiresAt
	if t.api == jetonv1alpha1.DemarchesNumeriques {
		t.expiresAt = expiresAt
		return dnToken(t.id, t.secret), nil
	}
	tok, err := s.signJWT(&renewed)
	if err != nil {
		return "", err
	}
	t.expiresAt = renewed.expiresAt
	return tok, nil
}

// SetBehaviour changes how the emulator answers the token with this id.
func (s *Server) SetBehaviour(id string, b Behaviour) error {
	return s.update(id, func(t *token) error {
		if err := checkBehaviour(t, b); err != nil {
			return err
		}
		t.behaviour = b
		return nil
	})
}

// checkBehaviour says whether b exists and makes sense for t's API.
func checkBehaviour(t *token, b Behaviour) error {
	if !slices.Contains(Behaviours, b) {
		return fmt.Errorf("unknown behaviour %q, want one of %v", b, Behaviours)
	}
	if b == NotFound && t.api != jetonv1alpha1.DemarchesNumeriques {
		return fmt.Errorf("behaviour %q applies to %s tokens only; token %s is for %s", b, jetonv1alpha1.DemarchesNumeriques, t.id, t.api)
	}
	if b == Conflict && t.api == jetonv1alpha1.DemarchesNumeriques {
		return fmt.Errorf("behaviour %q does not exist on %s; token %s is for %s", b, t.api, t.id, t.api)
	}
	return nil
}

// SetRetryAfter sets the Retry-After of RateLimited and RateLimitedEmptyBody answers (default 32s).
func (s *Server) SetRetryAfter(id string, d time.Duration) error {
	return s.update(id, func(t *token) error {
		if d < time.Second {
			return fmt.Errorf("retry-after %s: must be at least 1s (it is sent in whole seconds)", d)
		}
		t.retryAfter = d
		return nil
	})
}

// SetDelay sets how long a Slow token waits before answering.
func (s *Server) SetDelay(id string, d time.Duration) error {
	return s.update(id, func(t *token) error {
		if d < 0 {
			return fmt.Errorf("delay %s: must not be negative", d)
		}
		t.delay = d
		return nil
	})
}

// SetLargeAnswer sets the size in bytes of a LargeAnswer token's data answers.
func (s *Server) SetLargeAnswer(id string, n int64) error {
	return s.update(id, func(t *token) error {
		if n < minLargeAnswer || n > maxLargeAnswer {
			return fmt.Errorf("large answer of %d bytes: want %d to %d", n, minLargeAnswer, maxLargeAnswer)
		}
		t.largeBytes = n
		return nil
	})
}

// SetBanned makes every API request get no answer at all, its connection closed, as calls
// from an address API Entreprise has banned (12 hours, after ignored 429s).
func (s *Server) SetBanned(banned bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.banned = banned
}

// SetAllowedNetworks sets the token's IP allow-list (empty: any address).
func (s *Server) SetAllowedNetworks(id string, networks []string) error {
	allowed, err := ParseNetworks(networks)
	if err != nil {
		return err
	}
	return s.update(id, func(t *token) error {
		if len(allowed) == 0 && t.noExpiry {
			return fmt.Errorf("token %s has no expiry, which needs an allow-list", t.id)
		}
		t.allowed = allowed
		return nil
	})
}

// ParseNetworks reads addresses and CIDR prefixes.
func ParseNetworks(networks []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, n := range networks {
		if p, err := netip.ParsePrefix(n); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(n)
		if err != nil {
			return nil, fmt.Errorf("allowed network %q is neither an address nor a CIDR prefix", n)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// networkAllows reports whether the token may be used from remote.
func (t *token) networkAllows(remote netip.Addr) bool {
	if len(t.allowed) == 0 {
		return true
	}
	for _, p := range t.allowed {
		if p.Contains(remote) {
			return true
		}
	}
	return false
}

// paris is Démarches Numériques' time zone (config/application.rb).
var paris = func() *time.Location {
	if loc, err := time.LoadLocation("Europe/Paris"); err == nil {
		return loc
	}
	return time.FixedZone("CET", 3600)
}()

// expired reports whether the server-side record says the token has expired at now. siade
// reads exp from its database (siade/app/services/jwt_token_service.rb, JwtUser#expired?),
// so a prolonged token's old string keeps working. Démarches Numériques keeps a date and
// refuses the token once it is past, Paris time (app/models/api_token.rb `expires_at&.past?`).
func (t *token) expired(now time.Time) bool {
	if t.api != jetonv1alpha1.DemarchesNumeriques {
		return !now.Before(t.expiresAt)
	}
	if t.noExpiry {
		return false
	}
	y, m, d := t.expiresAt.In(paris).Date()
	return !now.Before(time.Date(y, m, d+1, 0, 0, 0, 0, paris))
}

// SetDown makes every API answer 502 (GET /pings with its JSON status body, the other
// endpoints with an HTML error page), as when the whole service is down.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Requests returns the requests seen for the token with this id, oldest first (the
// last 10000 at most).
func (s *Server) Requests(id string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[id]; ok {
		return slices.Clone(t.requests[max(0, len(t.requests)-maxLoggedRequests):])
	}
	return nil
}

// Unauthenticated returns the requests (to any API but /pings) whose credential was no
// token the emulator minted — missing, unknown or forged — oldest first (the last 10000 at
// most). A gateway that always sets a valid token leaves it empty.
func (s *Server) Unauthenticated() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.unauthenticated[max(0, len(s.unauthenticated)-maxLoggedRequests):])
}

// MaxInFlight returns the highest number of concurrent requests seen for the token.
func (s *Server) MaxInFlight(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[id]; ok {
		return t.maxInFlight
	}
	return 0
}

func (s *Server) update(id string, f func(*token) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[id]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownToken, id)
	}
	return f(t)
}
