package emulator

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// window is a fixed rate-limit window aligned on the clock (as Rack::Attack does).
type window struct {
	start time.Time
	count int
}

// hit counts one request and says whether it is within max, how many remain and when
// the window resets.
func (w *window) hit(now time.Time, period time.Duration, n int) (allowed bool, remaining int, reset time.Time) {
	start := now.Truncate(period)
	if !start.Equal(w.start) {
		w.start, w.count = start, 0
	}
	w.count++
	return w.count <= n, max(0, n-w.count), start.Add(period)
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /privileges", s.privileges)
	s.mux.HandleFunc("GET /pings", s.pings)
	s.mux.HandleFunc("GET /api/introspect", s.introspect)
	s.mux.HandleFunc("POST /api/v2/graphql", s.graphql)
	s.dataRoutes()
	s.adminRoutes()
}

// view is a snapshot of a token taken under the lock, so answers never race with SetBehaviour.
type view struct {
	id         string
	scopes     []string
	expiresAt  time.Time
	behaviour  Behaviour
	retryAfter time.Duration
	delay      time.Duration
	largeBytes int64 // LargeAnswer's body size

	allowed   bool // within the per-token rate limit
	remaining int
	reset     time.Time
	// networkAllowed: the caller's address is in the token's allow-list (or it has none).
	networkAllowed bool
	remote         netip.Addr
	// expired by the server-side record (a date for Démarches Numériques).
	expired bool
}

func (s *Server) privileges(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, jetonv1alpha1.APIEntreprise, bearer(r), endpoint{}, func(w http.ResponseWriter, v view) {
		if s.legacy {
			// The legacy shape, top-level (older documentation).
			writeJSON(w, http.StatusOK, map[string]any{"privileges": v.scopes})
			return
		}
		// siade/app/controllers/api_entreprise/privileges_controller.rb (also serves /v2/privileges).
		writeRaw(w, http.StatusOK, contentTypeRails, object{{"data", object{{"privileges", v.scopes}}}})
	})
}

func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	cred := bearer(r) // v3
	if cred == "" {
		cred = strings.TrimSpace(r.Header.Get("X-Api-Key")) // v2
	}
	s.serve(w, r, jetonv1alpha1.APIParticulier, cred, endpoint{}, func(w http.ResponseWriter, v view) {
		if s.legacy {
			writeJSON(w, http.StatusOK, map[string]any{"_id": v.id, "name": nil, "scopes": v.scopes})
			return
		}
		// siade/app/controllers/api_particulier/v2/introspect_controller.rb: name is "".
		writeRaw(w, http.StatusOK, contentTypeRails, object{{"_id", v.id}, {"name", ""}, {"scopes", v.scopes}})
	})
}

// demarcheArg finds the démarche number in `demarche(number: 123)` or `demarche(number: $n)`.
var demarcheArg = regexp.MustCompile(`demarche\s*\(\s*number\s*:\s*(?:(\d+)|\$(\w+))\s*\)`)

// parseDemarcheQuery returns the démarche number the GraphQL request asks for.
func parseDemarcheQuery(body []byte) (int64, error) {
	var req struct {
		Query     string         `json:"query"`
		Variables map[string]any `json:"variables"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, fmt.Errorf("body is not a GraphQL JSON request: %v", err)
	}
	m := demarcheArg.FindStringSubmatch(req.Query)
	if m == nil {
		return 0, fmt.Errorf("the emulator only answers `demarche(number: N) { id number }` queries")
	}
	if m[1] != "" {
		return strconv.ParseInt(m[1], 10, 64)
	}
	switch n := req.Variables[m[2]].(type) {
	case float64:
		if n == math.Trunc(n) && n > 0 {
			return int64(n), nil
		}
	case string:
		if v, err := strconv.ParseInt(n, 10, 64); err == nil {
			return v, nil
		}
	}
	return 0, fmt.Errorf("variable $%s must hold a démarche number", m[2])
}

// pings is API Entreprise's unauthenticated health endpoint.
func (s *Server) pings(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	lim := s.limits[jetonv1alpha1.APIEntreprise]
	s.mu.Lock()
	allowed, _, reset := s.ipWindow(jetonv1alpha1.APIEntreprise, r).hit(now, lim.IPPeriod, lim.PerIP)
	s.logArrival(jetonv1alpha1.APIEntreprise, remoteKey(r), now)
	if !allowed {
		s.tooMany++
	}
	down := s.down
	if !down {
		s.lastOK = now
	}
	lastOK := s.lastOK
	s.mu.Unlock()
	if !allowed {
		w.Header().Set("Retry-After", seconds(reset.Sub(now)))
		writeAPIFailure(w, RateLimited)
		return
	}
	status, code := "ok", http.StatusOK
	if down {
		status, code = "bad", http.StatusBadGateway
	}
	writeJSON(w, code, map[string]any{"status": status, "last_update": now.UTC().Format(time.RFC3339), "last_ok_status": lastOK.UTC().Format(time.RFC3339)})
}

// ipWindow returns the per-IP window of api for the request's remote address. The
// caller holds s.mu. X-Forwarded-For is ignored: the emulator is reached directly.
func (s *Server) ipWindow(api jetonv1alpha1.API, r *http.Request) *window {
	key := string(api) + "|" + remoteKey(r)
	w := s.ipWindows[key]
	if w == nil {
		w = &window{}
		s.ipWindows[key] = w
	}
	return w
}

// remoteKey is the caller's address as the per-address limits key it.
func remoteKey(r *http.Request) string {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return ip
}

// endpoint tells serve what kind of route it answers.
type endpoint struct {
	// data: a data route, not a token check. siade's RateLimitHeadersMiddleware
	// (siade/app/lib/rate_limit_headers_middleware.rb) adds the RateLimit-* headers of
	// the route's throttle group to every answer past Rack::Attack.
	data bool
	// mutation: a Démarches Numériques request whose operation is a mutation (recorded).
	mutation bool
}

// serve runs the part every authenticated endpoint shares: per-IP limit, whole-service
// outage, authentication, per-token limit, then the token's behaviour; ok writes the
// healthy answer.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, api jetonv1alpha1.API, credential string, ep endpoint, ok func(http.ResponseWriter, view)) {
	rec := &statusRecorder{ResponseWriter: w}
	started := time.Now()
	now := s.now()
	lim := s.limits[api]
	remote := remoteAddr(r)

	s.mu.Lock()
	t := s.lookup(api, credential)
	if s.banned {
		s.mu.Unlock()
		s.noAnswer(api, t, w, r, ep, started, now)
		return
	}
	s.logArrival(api, remoteKey(r), now)
	ipAllowed, ipReset := true, time.Time{}
	if lim.PerIP > 0 {
		ipAllowed, _, ipReset = s.ipWindow(api, r).hit(now, lim.IPPeriod, lim.PerIP)
	}
	down := s.down
	var v view
	if t != nil {
		t.inFlight++
		t.maxInFlight = max(t.maxInFlight, t.inFlight)
		v = view{id: t.id, scopes: slices.Clone(t.scopes), expiresAt: t.expiresAt, behaviour: t.behaviour,
			retryAfter: t.retryAfter, delay: t.delay, largeBytes: t.largeBytes, remote: remote, networkAllowed: t.networkAllows(remote), expired: t.expired(now)}
		if v.delay == 0 {
			v.delay = s.defaultDelay
		}
		if v.largeBytes == 0 {
			v.largeBytes = defaultLarge
		}
		if ipAllowed && !down {
			v.allowed, v.remaining, v.reset = t.window.hit(now, lim.TokenPeriod, lim.PerToken)
		}
	}
	s.mu.Unlock()
	defer s.finish(api, t, r, rec, ep, started, now)

	switch {
	case !ipAllowed && !s.legacy:
		writeSiadeThrottled(rec, lim.PerIP, ipReset, now, rackFlat(r))
	case !ipAllowed:
		rec.Header().Set("Retry-After", seconds(ipReset.Sub(now)))
		writeFailure(api, rec, RateLimited)
	case down:
		writeHTML(rec, http.StatusBadGateway)
	case t == nil && s.legacy:
		writeFailure(api, rec, Unauthorized)
	case t == nil:
		s.writeInvalid(api, r, rec)
	case s.legacy:
		s.answer(api, rec, r, v, now, lim, ok)
	default:
		s.answerReal(api, rec, r, v, ep, now, lim, ok)
	}
}

// remoteAddr is the caller's address (the emulator is reached directly: no proxy header
// is trusted).
func remoteAddr(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// noAnswer is what a banned address gets: no HTTP answer at all (API Entreprise's
// documentation: calls from a banned IP return no HTTP code). The connection is closed.
func (s *Server) noAnswer(api jetonv1alpha1.API, t *token, w http.ResponseWriter, r *http.Request, ep endpoint, started, now time.Time) {
	if t != nil {
		s.mu.Lock()
		t.inFlight++
		t.maxInFlight = max(t.maxInFlight, t.inFlight)
		s.mu.Unlock()
	}
	// Recorded before the connection closes: the client learns of it at once, and whoever
	// reads the request log next must find it.
	s.finish(api, t, r, &statusRecorder{ResponseWriter: w, status: StatusNoAnswer}, ep, started, now)
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
		return
	}
	panic(http.ErrAbortHandler) // no hijacking (HTTP/2): abort, the client gets no answer either
}

// particulierV2 reports whether r reaches one of API Particulier's v2 controllers
// (/api/introspect, /api/v2/…), which answer in their own formats
// (siade/app/controllers/api_particulier/v2/base_controller.rb); the v3 ones (/v3/…)
// inherit APIController's JSON:API errors, as API Entreprise's do
// (siade/app/controllers/api_controller.rb).
func particulierV2(api jetonv1alpha1.API, r *http.Request) bool {
	return api == jetonv1alpha1.APIParticulier && !strings.HasPrefix(r.URL.Path, "/v3/")
}

// rackFlat reports whether siade's Rack::Attack responders answer r in the flat format:
// under /api/v2/ only (siade/config/initializers/rack_attack.rb, error_format).
func rackFlat(r *http.Request) bool { return strings.Contains(r.URL.Path, "/api/v2/") }

// writeInvalid answers a credential that is no token of the API
// (siade HandleTokens#authenticate_user!; Démarches Numériques authenticate_from_token).
func (s *Server) writeInvalid(api jetonv1alpha1.API, r *http.Request, w http.ResponseWriter) {
	switch {
	case api == jetonv1alpha1.APIEntreprise || (api == jetonv1alpha1.APIParticulier && !particulierV2(api, r)):
		writeSiadeJSONAPI(w, http.StatusUnauthorized, contentTypeRails, siadeInvalidToken())
	case api == jetonv1alpha1.APIParticulier:
		writeParticulierAccessDenied(w, siadeInvalidToken())
	default:
		// Without a valid token the request is an unauthenticated one, and only persisted
		// queries are allowed (app/controllers/api/v2/base_controller.rb).
		writeDNControllerError(w, http.StatusForbidden, "Without a token, only persisted queries are allowed", "forbidden")
	}
}

// answerReal answers a known token as the published backends do, in their order: siade's
// Rack::Attack (blacklist, IP allow-list, throttles) then its controller (expiry, scopes);
// Démarches Numériques' Rack::Attack (throttle) then its controller (network, expiry) and
// the GraphQL execution.
func (s *Server) answerReal(api jetonv1alpha1.API, w http.ResponseWriter, r *http.Request, v view, ep endpoint, now time.Time, lim Limits, ok func(http.ResponseWriter, view)) {
	b := v.behaviour
	throttledUntil := time.Time{}
	switch {
	case !v.allowed:
		throttledUntil = v.reset
	case b == RateLimited:
		throttledUntil = now.Add(v.retryAfter)
	}
	if api == jetonv1alpha1.DemarchesNumeriques {
		switch {
		case !throttledUntil.IsZero():
			writeDNThrottled(w, throttledUntil)
		case b == RateLimitedEmptyBody:
			writeEmpty429(w, v.retryAfter)
		case b == Unauthorized || b == Revoked:
			// A revoked token is deleted: it authenticates no more.
			s.writeInvalid(api, r, w)
		case !v.networkAllowed:
			writeDNControllerError(w, http.StatusForbidden, dnForbiddenNetwork(v.remote), "forbidden")
		case b == Expired || (v.expired && (b == Healthy || b == Slow || b == LargeAnswer)):
			writeDNControllerError(w, http.StatusUnauthorized, "Token expired", "unauthorized")
		default:
			s.respond(api, w, r, v, b, ok)
		}
		return
	}
	flat, v2 := rackFlat(r), particulierV2(api, r)
	switch {
	case b == Revoked:
		writeSiadeRack(w, http.StatusUnauthorized, siadeBlacklisted(api), flat)
		return
	case !v.networkAllowed:
		writeSiadeRack(w, http.StatusForbidden, siadeForbiddenIP(), flat)
		return
	case !throttledUntil.IsZero():
		writeSiadeThrottled(w, lim.PerToken, throttledUntil, now, flat)
		return
	case b == RateLimitedEmptyBody:
		writeEmpty429(w, v.retryAfter)
		return
	}
	if ep.data {
		setRateLimit(w.Header(), lim.PerToken, v.remaining, v.reset)
	}
	switch {
	case b == Unauthorized:
		s.writeInvalid(api, r, w)
	case b == Expired || (v.expired && (b == Healthy || b == Slow || b == LargeAnswer)):
		if v2 {
			writeSiadeFlat(w, http.StatusUnauthorized, siadeExpiredToken(api))
		} else {
			writeSiadeJSONAPI(w, http.StatusUnauthorized, contentTypeRails, siadeExpiredToken(api))
		}
	case b == InsufficientPrivileges && v2:
		// API Particulier v2 answers NotAuthorizedError with 401 access_denied.
		writeParticulierAccessDenied(w, siadeInsufficientPrivileges(api))
	case b == InsufficientPrivileges:
		writeSiadeJSONAPI(w, http.StatusForbidden, contentTypeRails, siadeInsufficientPrivileges(api))
	case b == Conflict && v2:
		writeSiadeFlat(w, http.StatusConflict, siadeConflict())
	case b == Conflict:
		writeSiadeJSONAPI(w, http.StatusConflict, contentTypeRails, siadeConflict())
	default:
		s.respond(api, w, r, v, b, ok)
	}
}

// respond writes the answers that do not depend on the API's error formats: healthy, slow,
// down, server error; and the Démarches Numériques GraphQL field errors.
func (s *Server) respond(api jetonv1alpha1.API, w http.ResponseWriter, r *http.Request, v view, b Behaviour, ok func(http.ResponseWriter, view)) {
	switch b {
	case Healthy, LargeAnswer: // ok tells the two apart on data routes
		ok(w, v)
	case Slow:
		timer := time.NewTimer(v.delay)
		defer timer.Stop()
		select {
		case <-r.Context().Done(): // the client gave up: so do we
		case <-timer.C:
			ok(w, v)
		}
	case Down:
		writeHTML(w, http.StatusBadGateway)
	case ServerError:
		writeHTML(w, http.StatusInternalServerError)
	default:
		s.writeDN(w, b)
	}
}

// writeDN writes Démarches Numériques' GraphQL field errors (real or legacy shapes).
func (s *Server) writeDN(w http.ResponseWriter, b Behaviour) {
	if s.legacy {
		writeDNFailure(w, b)
		return
	}
	switch b {
	case InsufficientPrivileges:
		writeRaw(w, http.StatusOK, contentTypeRails, dnFieldError("An object of type Demarche was hidden due to permissions", "unauthorized"))
	case NotFound:
		writeRaw(w, http.StatusOK, contentTypeRails, dnFieldError("Demarche not found", "not_found"))
	default:
		panic(fmt.Sprintf("emulator: no Démarches Numériques answer for behaviour %q", b))
	}
}

// writeEmpty429 is the 429 seen on API Entreprise's staging: no body, no RateLimit-*
// headers, only Retry-After.
func writeEmpty429(w http.ResponseWriter, retryAfter time.Duration) {
	w.Header().Set("Retry-After", seconds(retryAfter))
	w.WriteHeader(http.StatusTooManyRequests)
}

// answer answers a known token in the legacy shapes (WithLegacyShapes: what the APIs'
// older documentation describes), kept to prove jeton reads them too.
func (s *Server) answer(api jetonv1alpha1.API, w http.ResponseWriter, r *http.Request, v view, now time.Time, lim Limits, ok func(http.ResponseWriter, view)) {
	h := w.Header()
	if !v.allowed {
		setRateLimit(h, lim.PerToken, 0, v.reset)
		h.Set("Retry-After", seconds(v.reset.Sub(now)))
		writeFailure(api, w, RateLimited)
		return
	}
	b := v.behaviour
	if (b == Healthy || b == Slow || b == LargeAnswer) && v.expired {
		b = Expired // tokens expire on their own, like the real ones
	}
	switch b {
	case RateLimited:
		setRateLimit(h, lim.PerToken, 0, now.Add(v.retryAfter))
		h.Set("Retry-After", seconds(v.retryAfter))
		writeFailure(api, w, RateLimited)
		return
	case RateLimitedEmptyBody:
		writeEmpty429(w, v.retryAfter)
		return
	}
	setRateLimit(h, lim.PerToken, v.remaining, v.reset)
	switch b {
	case Healthy, Slow, Down, ServerError, LargeAnswer:
		s.respond(api, w, r, v, b, ok)
	default:
		writeFailure(api, w, b)
	}
}

// finish records the request in the token's log and logs it (never the token, a header
// value, a body or a query value but a SIRET-shaped recipient).
func (s *Server) finish(api jetonv1alpha1.API, t *token, r *http.Request, rec *statusRecorder, ep endpoint, started, now time.Time) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
		if r.Context().Err() != nil {
			status = StatusClientClosedRequest
		}
	}
	d := time.Since(started)
	id := ""
	s.mu.Lock()
	if status == http.StatusTooManyRequests {
		s.tooMany++
	}
	if t != nil {
		id = t.id
		t.inFlight--
		t.total++
		if status == http.StatusTooManyRequests {
			t.tooMany++
		}
	}
	q := Request{Time: now, Method: r.Method, Path: r.URL.Path, Status: status, Duration: d,
		Authorization: len(r.Header.Values("Authorization")) > 0, APIKey: len(r.Header.Values("X-Api-Key")) > 0,
		Mutation: ep.mutation}
	q.Recipient, q.Recipients = recordedRecipient(r)
	log := &s.unauthenticated
	if t != nil {
		log = &t.requests
	}
	*log = append(*log, q)
	if len(*log) >= 2*maxLoggedRequests { // trim in bulk, so logging stays O(1) amortised
		*log = slices.Delete(*log, 0, len(*log)-maxLoggedRequests)
	}
	s.mu.Unlock()
	s.log.Info("request", "api", api, "method", r.Method, "path", r.URL.Path, "tokenID", id, "status", status, "duration", d)
}

// bearer returns the credential of an `Authorization: Bearer …` header, or "".
func bearer(r *http.Request) string {
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(cred)
}

// seconds renders a duration as whole seconds, rounded up and at least 1, for Retry-After.
func seconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}

func setRateLimit(h http.Header, limit, remaining int, reset time.Time) {
	h.Set("RateLimit-Limit", strconv.Itoa(limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
}

type apiError struct {
	status        int
	code, title   string
	detail, param string
}

// apiErrors are API Entreprise's (and API Particulier's) answers per behaviour.
var apiErrors = map[Behaviour]apiError{
	Unauthorized:           {http.StatusUnauthorized, "00101", "Interdit", "Votre token n'est pas valide ou n'est pas renseigné.", "token"},
	Expired:                {http.StatusUnauthorized, "00103", "Interdit", "Votre token est expiré. Veuillez le prolonger ou en demander un nouveau.", "token"},
	Revoked:                {http.StatusUnauthorized, "00105", "Interdit", "Votre token a été révoqué (blacklisté).", "token"},
	InsufficientPrivileges: {http.StatusForbidden, "00100", "Privilèges insuffisants", "Votre token est valide mais vos privilèges sont insuffisants.", "token"},
	Conflict:               {http.StatusConflict, "00015", "Requête en cours", "Une requête identique est déjà en cours de traitement.", ""},
	RateLimited:            {http.StatusTooManyRequests, "00429", "Trop de requêtes", "Vous avez effectué trop de requêtes, réessayez après le délai indiqué par Retry-After.", ""},
}

func writeFailure(api jetonv1alpha1.API, w http.ResponseWriter, b Behaviour) {
	if api == jetonv1alpha1.DemarchesNumeriques {
		writeDNFailure(w, b)
		return
	}
	writeAPIFailure(w, b)
}

func writeAPIFailure(w http.ResponseWriter, b Behaviour) {
	e, ok := apiErrors[b]
	if !ok {
		panic(fmt.Sprintf("emulator: no API Entreprise error for behaviour %q", b))
	}
	source := map[string]any{}
	if e.param != "" {
		source["parameter"] = e.param
	}
	writeJSON(w, e.status, map[string]any{"errors": []any{map[string]any{
		"code": e.code, "title": e.title, "detail": e.detail, "source": source, "meta": map[string]any{},
	}}})
}

// writeDNFailure writes Démarches Numériques' answers (DESIGN.md section 1).
func writeDNFailure(w http.ResponseWriter, b Behaviour) {
	switch b {
	case Unauthorized, Revoked:
		writeJSON(w, http.StatusForbidden, dnErrors("Invalid or revoked token", "forbidden"))
	case Expired:
		writeJSON(w, http.StatusUnauthorized, dnErrors("Token expired", "unauthorized"))
	case InsufficientPrivileges:
		body := dnErrors("An object of type Demarche was hidden due to permissions", "unauthorized")
		body["data"] = nil
		writeJSON(w, http.StatusOK, body)
	case NotFound:
		body := dnErrors("Demarche not found", "not_found")
		body["data"] = nil
		writeJSON(w, http.StatusOK, body)
	case RateLimited:
		writeJSON(w, http.StatusTooManyRequests, dnErrors("Too many requests", "too_many_requests"))
	default:
		panic(fmt.Sprintf("emulator: no Démarches Numériques error for behaviour %q", b))
	}
}

func dnErrors(message, code string) map[string]any {
	return map[string]any{"errors": []any{map[string]any{
		"message": message, "path": []string{"demarche"}, "extensions": map[string]any{"code": code},
	}}}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body) // the client may be gone; nothing to do about it
}

// writeHTML writes the kind of error page a reverse proxy sends: clients must cope
// with bodies that are not JSON.
func writeHTML(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	text := strconv.Itoa(status) + " " + http.StatusText(status)
	fmt.Fprintf(w, "<html>\r\n<head><title>%s</title></head>\r\n<body>\r\n<center><h1>%s</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n", text, text)
}

// statusRecorder remembers the status written, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}
