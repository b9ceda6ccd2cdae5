package gateway

// The vendor's rules, checked on each request before anything is sent upstream. Every
// function here is pure (no API server, no clock): the proxy handler (proxy.go) calls, in
// this order, CheckFraming, ExtractCredential (then verifies the credential and finds the
// Habilitation), CheckRequest, and builds the upstream request from the Route with
// Route.UpstreamHeader. docs/gateway.md, section "Rules", lists each rule with its source.
//
// Sources (bare mirrors of the backends):
//   - API Entreprise and API Particulier: datagouv/apistration, siade/ (Rails 8.1, Rack 3.2):
//     config/routes/api_entreprise.rb, config/routes/api_particulier.rb, the controllers
//     under app/controllers, app/lib/user_resolution_middleware.rb.
//   - Démarches Numériques: demarches-simplifiees/demarches-simplifiees.fr: config/routes.rb,
//     app/controllers/api/v2/graphql_controller.rb and base_controller.rb.

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/siret"
)

// Route is the validated upstream request.
type Route struct {
	Method   string
	Path     string // cleaned absolute path, as sent upstream
	RawQuery string // rebuilt from the validated values (url.Values.Encode)
	// Body is the validated body (Démarches Numériques), rebuilt from the checked fields;
	// nil for GET: send no body then (http.NoBody, ContentLength 0), never the client's.
	Body []byte
	// ContentType is the Content-Type to send upstream ("application/json" with a Body,
	// empty for GET: a GET goes without a body and without Content-Type).
	ContentType string
}

// Bounds on what is read from a request.
const (
	// maxPathLen: the longest route of the APIs (API Entreprise's gip_mds monthly
	// headcount, with a SIRET, a month and a year) is under 100 bytes.
	maxPathLen = 512
	// maxQueryLen: API Particulier's identity queries (names, birth date and place) are a
	// few hundred bytes.
	maxQueryLen = 8 << 10
	// maxPresentedCredentialLen: a gateway credential is 106 bytes (credential.go); a
	// projected ServiceAccount token, the planned second identity mode, a few KiB at most.
	maxPresentedCredentialLen = 8 << 10
)

// CheckFraming refuses what a reverse proxy must never pass: CONNECT (and HTTP/2's
// extended CONNECT for websockets), absolute-form or authority-form request targets
// (r.RequestURI not starting with "/": the gateway is no forward proxy), any Upgrade
// header or "upgrade" in Connection (websocket, h2c), HTTP2-Settings (h2c), the PRI method
// (the HTTP/2 preface sent as a request) and TRACE (reflects headers, credentials included).
func CheckFraming(r *http.Request) *Refusal {
	switch strings.ToUpper(r.Method) {
	case http.MethodConnect, "PRI", http.MethodTrace:
		return NewRefusal(http.StatusMethodNotAllowed, ReasonFraming,
			"CONNECT, PRI and TRACE are not served: the gateway is a reverse proxy for the API's own routes")
	}
	if !strings.HasPrefix(r.RequestURI, "/") {
		return NewRefusal(http.StatusBadRequest, ReasonFraming,
			"the request target must be a path (origin-form, \"/...\"): the gateway is a reverse proxy, not a forward proxy; call $BASE_URL/<route>")
	}
	if len(r.Header.Values("Upgrade")) > 0 || headerHasToken(r.Header, "Connection", "upgrade") {
		return NewRefusal(http.StatusBadRequest, ReasonFraming,
			"protocol upgrades (websocket, h2c) are not served: send plain HTTP/1.1 or HTTP/2 over TLS requests")
	}
	if len(r.Header.Values("Http2-Settings")) > 0 {
		return NewRefusal(http.StatusBadRequest, ReasonFraming,
			"h2c (HTTP2-Settings) is not served: send plain HTTP/1.1 or HTTP/2 over TLS requests")
	}
	return nil
}

// headerHasToken reports whether the comma-separated header name holds token (case-insensitive).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// ExtractCredential returns the gateway credential the caller sent: Authorization:
// Bearer <cred> (all APIs) or X-Api-Key: <cred> (API Particulier v2 style). Missing → 401
// missing_credential; two different values, or a repeated header → 401
// conflicting_credentials; an Authorization that is not "Bearer <cred>", or a value that
// cannot be a credential (empty, spaces, over 8 KiB) → 401 invalid_credential. Both headers
// with the same value are accepted (some API Particulier clients send both). It does not
// verify the credential (the handler does) and never echoes it.
func ExtractCredential(r *http.Request) (string, *Refusal) {
	auths, keys := r.Header.Values("Authorization"), r.Header.Values("X-Api-Key")
	if len(auths) > 1 || len(keys) > 1 {
		return "", NewRefusal(http.StatusUnauthorized, ReasonConflictingCredentials,
			"send the credential once: one Authorization: Bearer header or one X-Api-Key header")
	}
	var fromAuth, fromKey string
	if len(auths) == 1 {
		scheme, cred, _ := strings.Cut(strings.TrimSpace(auths[0]), " ")
		fromAuth = strings.TrimLeft(cred, " ")
		if !strings.EqualFold(scheme, "Bearer") || !credentialShape(fromAuth) {
			return "", NewRefusal(http.StatusUnauthorized, ReasonInvalidCredential,
				"the Authorization header must be \"Bearer <TOKEN>\", TOKEN being the value of the Secret jeton injected")
		}
	}
	if len(keys) == 1 {
		fromKey = strings.TrimSpace(keys[0])
		if !credentialShape(fromKey) {
			return "", NewRefusal(http.StatusUnauthorized, ReasonInvalidCredential,
				"the X-Api-Key header must hold the TOKEN of the Secret jeton injected")
		}
	}
	switch {
	case fromAuth != "" && fromKey != "" && fromAuth != fromKey:
		return "", NewRefusal(http.StatusUnauthorized, ReasonConflictingCredentials,
			"Authorization and X-Api-Key hold different credentials: send only the TOKEN of the Secret jeton injected")
	case fromAuth != "":
		return fromAuth, nil
	case fromKey != "":
		return fromKey, nil
	}
	return "", NewRefusal(http.StatusUnauthorized, ReasonMissingCredential,
		"no credential: send Authorization: Bearer <TOKEN> (or X-Api-Key: <TOKEN>), TOKEN being the value of the Secret jeton injected")
}

// credentialShape accepts visible ASCII without spaces, 1 to maxPresentedCredentialLen bytes.
func credentialShape(s string) bool {
	if s == "" || len(s) > maxPresentedCredentialLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// CheckRequest validates a request for api on behalf of the client whose SIRET is siret
// and returns the upstream route. It reads at most maxBody bytes of r.Body (Démarches
// Numériques only; maxBody <= 0 allows no body at all).
func CheckRequest(r *http.Request, api jetonv1alpha1.API, siret string, allowMutations bool, maxBody int64) (Route, *Refusal) {
	switch api {
	case jetonv1alpha1.APIEntreprise, jetonv1alpha1.APIParticulier:
		return checkRESTRequest(r, api, siret)
	case jetonv1alpha1.DemarchesNumeriques:
		return checkGraphQLRequest(r, allowMutations, maxBody)
	}
	return Route{}, NewRefusal(http.StatusServiceUnavailable, ReasonNotReady, "the gateway serves no such API")
}

// allowedMethod is the one method the gateway passes for api (the Allow header of a 405).
func allowedMethod(api jetonv1alpha1.API) string {
	if api == jetonv1alpha1.DemarchesNumeriques {
		return http.MethodPost
	}
	return http.MethodGet
}

// checkRESTRequest: API Entreprise and API Particulier. Every route of both is a GET
// (siade/config/routes/api_entreprise.rb, api_particulier.rb). HEAD is refused too: Rails
// serves a HEAD with the GET route's action, so it calls the data provider, counts
// against the token's limits and is logged as a data access, for an answer without data.
func checkRESTRequest(r *http.Request, api jetonv1alpha1.API, clientSIRET string) (Route, *Refusal) {
	if r.Method != http.MethodGet {
		return Route{}, NewRefusal(http.StatusMethodNotAllowed, ReasonMethodNotAllowed,
			"only GET is allowed for this API through the gateway (all its data routes are GET)")
	}
	segs, path, ref := cleanPath(r)
	if ref != nil {
		return Route{}, ref
	}
	if api == jetonv1alpha1.APIEntreprise {
		ref = checkEntreprisePath(segs)
	} else {
		ref = checkParticulierPath(segs)
	}
	if ref != nil {
		return Route{}, ref
	}
	// A GET goes upstream without a body: Rails would parse a form or JSON body into the
	// same params as the query (ActionDispatch request_parameters), a second place for a
	// recipient the gateway does not check. Refuse rather than drop silently.
	if r.ContentLength != 0 {
		return Route{}, NewRefusal(http.StatusBadRequest, ReasonBadBody, "a GET request carries no body: remove it")
	}
	if siret.Validate(clientSIRET) != nil {
		// Fail closed: the handler passes the PublicClient's SIRET, which its CRD already
		// validates; without a valid one no recipient can be vouched for.
		return Route{}, NewRefusal(http.StatusServiceUnavailable, ReasonNotReady,
			"the public client of this Habilitation has no valid SIRET: fix the PublicClient")
	}
	query, ref := checkQuery(r.URL.RawQuery, clientSIRET)
	if ref != nil {
		return Route{}, ref
	}
	return Route{Method: http.MethodGet, Path: path, RawQuery: query}, nil
}

// cleanPath returns the request's path and its segments when it is clean: only the bytes
// the APIs' routes use (letters, digits, "-._~=" and "/"; so no percent-encoding at all,
// hence no encoded "/", "\" or NUL, and no byte the server would decode differently), at
// most maxPathLen bytes, no empty segment ("//" or a trailing "/"), no "." or ".." segment.
func cleanPath(r *http.Request) ([]string, string, *Refusal) {
	u := r.URL
	if u == nil || u.Opaque != "" || u.Scheme != "" || u.Host != "" || u.User != nil {
		return nil, "", NewRefusal(http.StatusBadRequest, ReasonFraming, "the request target must be a path (origin-form, \"/...\")")
	}
	p := u.EscapedPath()
	unclean := func(why string) ([]string, string, *Refusal) {
		return nil, "", NewRefusal(http.StatusBadRequest, ReasonPathNotAllowed, "the path must be clean: "+why)
	}
	if p != u.Path || u.RawPath != "" {
		return unclean("no percent-encoded characters")
	}
	if len(p) > maxPathLen {
		return unclean("at most 512 bytes")
	}
	if !strings.HasPrefix(p, "/") {
		return unclean("it must start with \"/\"")
	}
	for i := 0; i < len(p); i++ {
		if !pathByte(p[i]) {
			return unclean("only letters, digits, \"-._~=\" and \"/\"")
		}
	}
	if p == "/" {
		return nil, "", NewRefusal(http.StatusForbidden, ReasonPathNotAllowed, pathNotAllowed)
	}
	segs := strings.Split(p[1:], "/")
	for _, s := range segs {
		switch s {
		case "":
			return unclean("no empty segment (\"//\" or a trailing \"/\")")
		case ".", "..":
			return unclean("no \".\" or \"..\" segment")
		}
	}
	return segs, p, nil
}

func pathByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '=' || c == '/'
}

// versionSegment reports whether s is "v<N>" with N >= 3 (no leading zero): the
// `scope path: 'v:api_version'` of both APIs' v3-and-later routes, whose domain
// constraint (siade/app/lib/api_domain_constraint.rb, v3_and_more) wants digits.
func versionSegment(s string) bool {
	if len(s) < 2 || len(s) > 4 || s[0] != 'v' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return len(s) > 2 || s[1] >= '3'
}

var pathNotAllowed = "this path is not an API route the gateway serves; see docs/gateway.md (Rules) for the allowed routes"

// checkEntreprisePath allows API Entreprise's routes (siade/config/routes/api_entreprise.rb):
// /v<N>/... (N >= 3, the data routes), /privileges and the legacy /v2/privileges (the
// token check, api_entreprise/privileges_controller.rb), /proxy/files/<id> and
// /proxy/inpi/download/<id> (documents linked from answers), /pings and /ping/<provider>
// (health). Not /v2/... (answered 410 Gone) nor /mcp.
func checkEntreprisePath(seg []string) *Refusal {
	ok := versionSegment(seg[0]) && len(seg) >= 2 ||
		len(seg) == 1 && (seg[0] == "privileges" || seg[0] == "pings") ||
		len(seg) == 2 && seg[0] == "v2" && seg[1] == "privileges" ||
		len(seg) >= 2 && seg[0] == "ping" ||
		len(seg) == 3 && seg[0] == "proxy" && seg[1] == "files" ||
		len(seg) == 4 && seg[0] == "proxy" && seg[1] == "inpi" && seg[2] == "download"
	if !ok {
		return NewRefusal(http.StatusForbidden, ReasonPathNotAllowed, pathNotAllowed)
	}
	return nil
}

// checkParticulierPath allows API Particulier's routes
// (siade/config/routes/api_particulier.rb): /v<N>/... (N >= 3) except the FranceConnect
// routes, /api/v2/<resource> (v2 data routes), /api/introspect (the token check,
// api_particulier/v2/introspect_controller.rb), /api/ping, /api/pings and
// /api/<provider>/ping (health).
//
// The FranceConnect routes (…/france_connect) are refused: on them the Authorization
// header carries the end user's FranceConnect access token, not the API token
// (app/controllers/concerns/api_particulier/france_connectable.rb), and the gateway
// always sets that header itself.
func checkParticulierPath(seg []string) *Refusal {
	if versionSegment(seg[0]) && len(seg) >= 2 {
		for _, s := range seg[1:] {
			if name, _, _ := strings.Cut(s, "."); name == "france_connect" { // Rails accepts a ".json" format suffix
				return NewRefusal(http.StatusForbidden, ReasonPathNotAllowed,
					"FranceConnect routes are not served by the gateway: they carry the user's FranceConnect token in Authorization, where the gateway puts the API token")
			}
		}
		return nil
	}
	ok := len(seg) == 2 && seg[0] == "api" && (seg[1] == "introspect" || seg[1] == "ping" || seg[1] == "pings") ||
		len(seg) == 3 && seg[0] == "api" && seg[1] == "v2" ||
		len(seg) == 3 && seg[0] == "api" && seg[2] == "ping"
	if !ok {
		return NewRefusal(http.StatusForbidden, ReasonPathNotAllowed, pathNotAllowed)
	}
	return nil
}

// checkQuery validates the query string and returns it rebuilt with recipient = siret.
//
// Neither backend rejects unknown parameters (no strong parameters in siade's API
// controllers), so the others pass, re-encoded. Which keys count as "recipient": Rails
// builds params from the query with ActionDispatch::ParamBuilder, where "recipient[]",
// "recipient[x]" and, in the Rack 2 compatible mode, "[recipient]" or "recipient]" all land
// in params[:recipient] (the top-level name is what precedes the first "[" after the first
// byte; in the compatible mode, the first run of non-bracket bytes). Any of those spellings
// counts as a recipient; only the plain "recipient=<SIRET>" once is accepted.
//
// The same goes for "token": siade takes the API token from a "token" query parameter too
// (app/lib/user_resolution_middleware.rb, concerns/handle_tokens.rb), a second credential
// channel next to the header the gateway sets; it is refused.
//
// API Particulier: v3 routes require a recipient SIRET
// (api_particulier/v3_and_more/base_controller.rb, verify_recipient_is_a_siret!); v2
// routes accept one or none (v2/base_controller.rb, verify_recipient_is_a_siret_or_nil!,
// and concerns/cacheable.rb falls back to the token's SIRET): the gateway sets it on both,
// which each accepts.
func checkQuery(raw, clientSIRET string) (string, *Refusal) {
	if len(raw) > maxQueryLen {
		return "", NewRefusal(http.StatusBadRequest, ReasonBadQuery, "the query string is too long (at most 8 KiB)")
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return "", NewRefusal(http.StatusBadRequest, ReasonBadQuery,
			"the query string does not parse: use \"&\" between parameters (not \";\") and \"%\" only followed by two hex digits")
	}
	recipients, plain, token := 0, true, false
	for k, vs := range vals {
		if !utf8.ValidString(k) {
			return "", NewRefusal(http.StatusBadRequest, ReasonBadQuery, "the query string must be UTF-8")
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return "", NewRefusal(http.StatusBadRequest, ReasonBadQuery, "the query string must be UTF-8")
			}
		}
		if railsParamIs(k, "token") {
			token = true
		}
		if railsParamIs(k, "recipient") {
			recipients += len(vs)
			plain = plain && k == "recipient"
		}
	}
	switch {
	case token:
		return "", refuseParam(http.StatusBadRequest, ReasonBadQuery, "token",
			"no token in the query string: send the credential in the Authorization header; the gateway sets the API token itself")
	case recipients > 1:
		return "", refuseParam(http.StatusForbidden, ReasonRecipientRepeated, "recipient",
			"recipient is repeated: send it once, equal to the SIRET of the public client (the RECIPIENT of the injected Secret), or leave it out and the gateway sets it")
	case recipients == 1 && !plain:
		return "", refuseParam(http.StatusBadRequest, ReasonBadQuery, "recipient",
			"recipient must be sent as recipient=<SIRET>, without brackets")
	case recipients == 1 && vals.Get("recipient") != clientSIRET:
		return "", refuseParam(http.StatusForbidden, ReasonRecipientMismatch, "recipient",
			"recipient must be the SIRET of the public client this token serves (the RECIPIENT of the injected Secret), never the vendor's; or leave it out and the gateway sets it")
	}
	vals.Set("recipient", clientSIRET)
	return vals.Encode(), nil
}

// railsParamIs reports whether Rails would store the query key under the top-level
// parameter name (ActionDispatch::ParamBuilder#store_nested_param at depth 0, either mode).
func railsParamIs(key, name string) bool {
	// Rails 8 / Rack 3: the part before the first "[" found after the first byte.
	top := key
	if len(key) > 1 {
		if i := strings.IndexByte(key[1:], '['); i >= 0 {
			top = key[:i+1]
		}
	}
	if top == name {
		return true
	}
	// Rack 2 compatible mode: /\A[\[\]]*([^\[\]]+)/, leading brackets skipped.
	i := 0
	for i < len(key) && (key[i] == '[' || key[i] == ']') {
		i++
	}
	j := i
	for j < len(key) && key[j] != '[' && key[j] != ']' {
		j++
	}
	return key[i:j] == name
}

// dnGraphQLPath is Démarches Numériques' API endpoint: `post :graphql` in the api/v2
// namespace (demarches-simplifiees.fr config/routes.rb).
const dnGraphQLPath = "/api/v2/graphql"

// storedQueries are the persisted documents Démarches Numériques runs for a "queryId"
// (app/graphql/api/v2/stored_query.rb): whether each holds mutations. ds-mutation-v2
// holds only mutation operations; ds-query-v2 and the introspection query only queries.
var storedQueries = map[string]bool{
	"ds-query-v2":    false,
	"introspection":  false,
	"ds-mutation-v2": true,
}

// graphQLBody is the body sent upstream, rebuilt from the validated fields only: what the
// server reads is exactly what the gateway checked (no duplicate key, no second spelling).
type graphQLBody struct {
	Query         string          `json:"query,omitempty"`
	QueryID       string          `json:"queryId,omitempty"`
	OperationName *string         `json:"operationName,omitempty"`
	Variables     json.RawMessage `json:"variables,omitempty"`
}

// checkGraphQLRequest: Démarches Numériques, POST /api/v2/graphql with a JSON body, read
// as app/controllers/api/v2/graphql_controller.rb does: "queryId" (a persisted query)
// when present, else "query"; "operationName"; "variables" (an object, or a string
// holding one, ensure_hash).
func checkGraphQLRequest(r *http.Request, allowMutations bool, maxBody int64) (Route, *Refusal) {
	if r.Method != http.MethodPost {
		return Route{}, NewRefusal(http.StatusMethodNotAllowed, ReasonMethodNotAllowed,
			"only POST /api/v2/graphql is allowed for Démarches Numériques through the gateway")
	}
	_, path, ref := cleanPath(r)
	if ref != nil {
		return Route{}, ref
	}
	if path != dnGraphQLPath {
		return Route{}, NewRefusal(http.StatusForbidden, ReasonPathNotAllowed,
			"only POST /api/v2/graphql is allowed for Démarches Numériques through the gateway")
	}
	// Rails merges the query string's parameters over the body's
	// (ActionDispatch::Http::Parameters#parameters): "?query=mutation..." would replace the
	// checked body's query. The endpoint takes none.
	if r.URL.RawQuery != "" {
		return Route{}, NewRefusal(http.StatusBadRequest, ReasonBadQuery,
			"the GraphQL endpoint takes no query string: put query, operationName and variables in the JSON body")
	}
	if !jsonContentType(r.Header.Values("Content-Type")) {
		return Route{}, NewRefusal(http.StatusUnsupportedMediaType, ReasonBadBody,
			"send the GraphQL request as Content-Type: application/json")
	}
	raw, ref := readBody(r, maxBody)
	if ref != nil {
		return Route{}, ref
	}
	body, ref := checkGraphQLBody(raw, allowMutations)
	if ref != nil {
		return Route{}, ref
	}
	return Route{Method: http.MethodPost, Path: dnGraphQLPath, Body: body, ContentType: "application/json"}, nil
}

// jsonContentType accepts exactly one Content-Type, application/json, with at most a
// charset=utf-8 parameter (what Rails parses as JSON params).
func jsonContentType(values []string) bool {
	if len(values) != 1 {
		return false
	}
	mt, params, err := mime.ParseMediaType(values[0])
	if err != nil || mt != "application/json" {
		return false
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return false
		}
	}
	return true
}

// readBody reads the body, never more than maxBody+1 bytes: a larger body is refused
// (413) from its Content-Length before reading, or as soon as the limit is passed.
func readBody(r *http.Request, maxBody int64) ([]byte, *Refusal) {
	if maxBody < 0 {
		maxBody = 0
	}
	tooLarge := NewRefusal(http.StatusRequestEntityTooLarge, ReasonBodyTooLarge,
		"the request body is larger than the gateway allows (--max-body-bytes): send a smaller GraphQL request")
	if r.ContentLength > maxBody {
		return nil, tooLarge
	}
	if r.Body == nil {
		return nil, nil
	}
	limit := maxBody
	if limit < math.MaxInt64 {
		limit++
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit))
	if int64(len(b)) > maxBody {
		return nil, tooLarge
	}
	if err != nil {
		return nil, NewRefusal(http.StatusBadRequest, ReasonBadBody, "the request body could not be read")
	}
	return b, nil
}

// checkGraphQLBody parses a GraphQL-over-HTTP JSON body and returns it rebuilt.
func checkGraphQLBody(raw []byte, allowMutations bool) ([]byte, *Refusal) {
	bad := func(msg string) ([]byte, *Refusal) {
		return nil, NewRefusal(http.StatusBadRequest, ReasonBadBody, msg)
	}
	if !utf8.Valid(raw) {
		return bad("the body must be UTF-8 JSON")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return bad("the body must be a JSON object: {\"query\": \"...\", \"operationName\": ..., \"variables\": {...}}")
	}
	query, hasQuery, ok1 := optionalJSONString(fields["query"])
	queryID, hasQueryID, ok2 := optionalJSONString(fields["queryId"])
	opName, hasOpName, ok3 := optionalJSONString(fields["operationName"])
	if !ok1 || !ok2 || !ok3 {
		return bad("query, queryId and operationName must be strings (or null)")
	}
	vars, ok := graphQLVariables(fields["variables"])
	if !ok {
		return bad("variables must be a JSON object (or a string holding one, or null)")
	}
	out := graphQLBody{Variables: vars}
	if hasOpName {
		out.OperationName = &opName
	}
	if hasQueryID && strings.TrimSpace(queryID) != "" { // params[:queryId].present? wins
		mutates, known := storedQueries[queryID]
		if !known {
			return bad("unknown queryId: Démarches Numériques knows ds-query-v2, ds-mutation-v2 and introspection")
		}
		if mutates && !allowMutations {
			return nil, mutationRefusal()
		}
		out.QueryID = queryID
	} else {
		if !hasQuery || strings.TrimSpace(query) == "" {
			return bad("the body needs a \"query\" string (or a \"queryId\")")
		}
		if !allowMutations {
			ops, err := GraphQLOperations(query)
			if err != nil {
				return bad("the GraphQL document could not be read by the gateway, which refuses what it cannot check")
			}
			var name *string
			if hasOpName {
				name = &opName
			}
			op, err := SelectOperation(ops, name)
			if err != nil {
				return bad("operationName must name exactly one operation of the document (or be left out when it has only one)")
			}
			if op.Type != "query" {
				return nil, mutationRefusal()
			}
		}
		out.Query = query
	}
	b, err := json.Marshal(out)
	if err != nil {
		return bad("the body could not be re-encoded")
	}
	return b, nil
}

func mutationRefusal() *Refusal {
	return NewRefusal(http.StatusForbidden, ReasonMutationNotAllowed,
		"GraphQL mutations and subscriptions are not allowed for this Habilitation (spec.gateway.allowMutations is false)")
}

// optionalJSONString decodes a JSON string; absent or null is (“”, false, true).
func optionalJSONString(raw json.RawMessage) (s string, present, ok bool) {
	if raw == nil || bytes.Equal(raw, []byte("null")) {
		return "", false, true
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, false
	}
	return s, true, true
}

// graphQLVariables returns the variables as a JSON object (nil when there are none), as
// ensure_hash reads them: an object, a string holding a JSON object (blank: none), or null.
func graphQLVariables(raw json.RawMessage) (json.RawMessage, bool) {
	if raw == nil || bytes.Equal(raw, []byte("null")) {
		return nil, true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if strings.TrimSpace(s) == "" {
			return nil, true
		}
		raw = json.RawMessage(s)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, false
	}
	return raw, true
}

// forwardedHeaders is the ALLOW-list of client headers sent upstream. Each one only
// shapes the answer, none carries identity or routing:
//   - Accept, Accept-Language: content negotiation (Rails answers 400 to an Accept it
//     cannot serve, api_controller.rb, so the caller should see its own choice honoured);
//   - Accept-Encoding: a compressed answer streams through the gateway as is;
//   - Cache-Control: siade bypasses its answer cache on "no-cache" (concerns/cacheable.rb);
//   - If-None-Match, If-Modified-Since: conditional GETs (siade is an api_only Rails app,
//     whose middleware answers 304 with Rack::ETag and Rack::ConditionalGet);
//   - User-Agent: lets the API's support tell applications apart.
//
// Everything else is dropped: Authorization, X-Api-Key, Cookie and every credential
// header; Proxy-*, Forwarded, X-Forwarded-*, X-Real-Ip; hop-by-hop headers (Connection,
// Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade); Content-Type and Content-Length
// (the Route decides the body); X-Http-Method-Override, Origin, Referer and the rest.
var forwardedHeaders = []string{
	"Accept", "Accept-Encoding", "Accept-Language", "Cache-Control",
	"If-Modified-Since", "If-None-Match", "User-Agent",
}

// ForwardHeaders returns the client's headers that may go upstream: the forwardedHeaders
// allow-list, minus any the client listed in Connection (hop-by-hop by its own word).
func ForwardHeaders(in http.Header) http.Header {
	out := make(http.Header, len(forwardedHeaders))
	for _, name := range forwardedHeaders {
		if headerHasToken(in, "Connection", name) {
			continue
		}
		if vs := in.Values(name); len(vs) > 0 {
			out[name] = append([]string(nil), vs...)
		}
	}
	return out
}

// SetToken sets the API token on an outgoing request's headers for api, REPLACING any
// Authorization and X-Api-Key: API Entreprise and Démarches Numériques, Authorization:
// Bearer. API Particulier without a path: X-Api-Key (SetTokenForPath explains; prefer it
// or Route.UpstreamHeader, which know the route).
func SetToken(h http.Header, api jetonv1alpha1.API, token string) {
	SetTokenForPath(h, api, "", token)
}

// SetTokenForPath is SetToken for a request to path. API Particulier takes the token in
// the header its route version reads:
//   - v3 and later (/v<N>/...): Authorization: Bearer, the only header the v3 controllers
//     read (concerns/handle_tokens.rb, bearer_token_from_headers);
//   - v2 (/api/...): X-Api-Key, what v2 has always read (v2/base_controller.rb,
//     token_from_headers). Never Bearer there: the v2 controllers that include
//     FranceConnectable (cnav, cnous, mesri) take a Bearer for a FranceConnect access token
//     and switch to the FranceConnect flow (concerns/api_particulier/france_connectable.rb).
//
// (Since April 2026 siade also resolves either header on every route,
// app/lib/user_resolution_middleware.rb; the choice above works with and without it.)
func SetTokenForPath(h http.Header, api jetonv1alpha1.API, path, token string) {
	h.Del("Authorization")
	h.Del("X-Api-Key")
	if api == jetonv1alpha1.APIParticulier {
		seg, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		if !versionSegment(seg) {
			h.Set("X-Api-Key", token)
			return
		}
	}
	h.Set("Authorization", "Bearer "+token)
}

// UpstreamHeader is the whole header of the upstream request for this route: the allowed
// client headers (ForwardHeaders), the route's Content-Type, and the token for api and
// the route's path (SetTokenForPath), set last so nothing from the client can replace it.
func (rt Route) UpstreamHeader(in http.Header, api jetonv1alpha1.API, token string) http.Header {
	h := ForwardHeaders(in)
	if rt.ContentType != "" {
		h.Set("Content-Type", rt.ContentType)
	}
	SetTokenForPath(h, api, rt.Path, token)
	return h
}
