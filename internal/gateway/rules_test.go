package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

const (
	clientSIRET = "13002526500013" // DINUM: the public client of the Habilitation
	otherSIRET  = "35600000000048" // La Poste's head office: another (valid) SIRET
)

const (
	ae = jetonv1alpha1.APIEntreprise
	ap = jetonv1alpha1.APIParticulier
	dn = jetonv1alpha1.DemarchesNumeriques
)

// request builds a server-side request as net/http's server would hand it to the handler.
func request(method, target, body string, header ...string) *http.Request {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

// wantRefusal fails unless ref is a refusal with the reason and status, a bounded message
// and the matching code.
func wantRefusal(t *testing.T, ref *Refusal, reason string, status int) {
	t.Helper()
	if ref == nil {
		t.Fatalf("no refusal, want %s (%d)", reason, status)
	}
	if ref.Reason != reason || ref.Status != status {
		t.Fatalf("refusal %s (%d), want %s (%d): %s", ref.Reason, ref.Status, reason, status, ref.Message)
	}
	if ref.Code != "JETON_"+strings.ToUpper(reason) || ref.Message == "" || len(ref.Message) > maxMessageLen {
		t.Fatalf("refusal code %q, message %q", ref.Code, ref.Message)
	}
}

func TestCheckFraming(t *testing.T) {
	absolute := request("GET", "http://entreprise.api.gouv.fr/v3/insee/sirene/etablissements/13002526500013", "")
	authority := request("GET", "/", "")
	authority.RequestURI = "entreprise.api.gouv.fr:443"
	asterisk := request("OPTIONS", "/", "")
	asterisk.RequestURI = "*"
	h2 := request("POST", "/api/v2/graphql", "{}")
	h2.Proto, h2.ProtoMajor, h2.ProtoMinor = "HTTP/2.0", 2, 0
	tests := []struct {
		name   string
		r      *http.Request
		status int // 0: passes
	}{
		{"plain GET", request("GET", "/v3/insee/sirene/etablissements/13002526500013?context=x", ""), 0},
		{"plain POST", request("POST", "/api/v2/graphql", "{}"), 0},
		{"HTTP/2 over TLS", h2, 0},
		{"Connection: keep-alive", request("GET", "/privileges", "", "Connection", "keep-alive"), 0},
		{"CONNECT", request("CONNECT", "/", ""), http.StatusMethodNotAllowed},
		{"connect, lower case", request("connect", "/", ""), http.StatusMethodNotAllowed},
		{"PRI (HTTP/2 preface)", request("PRI", "/", ""), http.StatusMethodNotAllowed},
		{"TRACE", request("TRACE", "/privileges", ""), http.StatusMethodNotAllowed},
		{"absolute-form", absolute, http.StatusBadRequest},
		{"authority-form", authority, http.StatusBadRequest},
		{"asterisk-form", asterisk, http.StatusBadRequest},
		{"Upgrade: websocket", request("GET", "/privileges", "", "Connection", "Upgrade", "Upgrade", "websocket"), http.StatusBadRequest},
		{"Upgrade alone", request("GET", "/privileges", "", "Upgrade", "h2c"), http.StatusBadRequest},
		{"upgrade listed in Connection", request("GET", "/privileges", "", "Connection", "keep-alive, UPGRADE"), http.StatusBadRequest},
		{"h2c: HTTP2-Settings", request("GET", "/privileges", "", "HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA"), http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := CheckFraming(tt.r)
			if tt.status == 0 {
				if ref != nil {
					t.Fatalf("refused: %v", ref)
				}
				return
			}
			wantRefusal(t, ref, ReasonFraming, tt.status)
		})
	}
}

func TestExtractCredential(t *testing.T) {
	const cred = "jgw1.6f1c2d3e-0000-4000-8000-00000000000a.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name   string
		header []string
		want   string
		reason string
	}{
		{"Bearer", []string{"Authorization", "Bearer " + cred}, cred, ""},
		{"bearer, any case", []string{"Authorization", "bEaReR " + cred}, cred, ""},
		{"X-Api-Key (API Particulier v2 style)", []string{"X-Api-Key", cred}, cred, ""},
		{"both, same value", []string{"Authorization", "Bearer " + cred, "X-Api-Key", cred}, cred, ""},
		{"none", nil, "", ReasonMissingCredential},
		{"a cookie is no credential", []string{"Cookie", "token=" + cred}, "", ReasonMissingCredential},
		{"both, different values", []string{"Authorization", "Bearer " + cred, "X-Api-Key", cred + "x"}, "", ReasonConflictingCredentials},
		{"Authorization repeated", []string{"Authorization", "Bearer " + cred, "Authorization", "Bearer " + cred}, "", ReasonConflictingCredentials},
		{"X-Api-Key repeated", []string{"X-Api-Key", cred, "X-Api-Key", cred}, "", ReasonConflictingCredentials},
		{"Basic", []string{"Authorization", "Basic dXNlcjpwYXNz"}, "", ReasonInvalidCredential},
		{"Bearer without a value", []string{"Authorization", "Bearer"}, "", ReasonInvalidCredential},
		{"Bearer with spaces inside", []string{"Authorization", "Bearer a b"}, "", ReasonInvalidCredential},
		{"empty X-Api-Key", []string{"X-Api-Key", ""}, "", ReasonInvalidCredential},
		{"over 8 KiB", []string{"Authorization", "Bearer " + strings.Repeat("a", 8<<10+1)}, "", ReasonInvalidCredential},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ref := ExtractCredential(request("GET", "/privileges", "", tt.header...))
			if tt.reason == "" {
				if ref != nil || got != tt.want {
					t.Fatalf("ExtractCredential = %q, %v; want %q", got, ref, tt.want)
				}
				return
			}
			wantRefusal(t, ref, tt.reason, http.StatusUnauthorized)
			if got != "" {
				t.Fatalf("returned a credential with a refusal")
			}
			if strings.Contains(ref.Message, cred[:20]) {
				t.Fatalf("the refusal echoes the credential: %s", ref.Message)
			}
		})
	}
}

// TestCheckRequestRecipient: the recipient rule and the rebuilt query, for both REST APIs.
func TestCheckRequestRecipient(t *testing.T) {
	const path = "/v3/insee/sirene/etablissements/13002526500013"
	tests := []struct {
		name      string
		query     string
		wantQuery string // when accepted
		reason    string
		status    int
	}{
		{"absent: set to the client's SIRET", "context=x&object=y", "context=x&object=y&recipient=" + clientSIRET, "", 0},
		{"no query at all", "", "recipient=" + clientSIRET, "", 0},
		{"present once and equal: kept", "recipient=" + clientSIRET + "&context=x", "context=x&recipient=" + clientSIRET, "", 0},
		{"percent-encoded name, equal: kept", "%72ecipient=" + clientSIRET, "recipient=" + clientSIRET, "", 0},
		{"another parameter with a look-alike name is just a parameter", "Recipient=" + otherSIRET, "Recipient=" + otherSIRET + "&recipient=" + clientSIRET, "", 0},
		{"values re-encoded", "nomNaissance=Dupont+Mart%C3%AEn&prenoms[]=Jean&prenoms[]=Pierre", "nomNaissance=Dupont+Mart%C3%AEn&prenoms%5B%5D=Jean&prenoms%5B%5D=Pierre&recipient=" + clientSIRET, "", 0},
		{"different: refused", "recipient=" + otherSIRET, "", ReasonRecipientMismatch, http.StatusForbidden},
		{"empty: refused (not the client's SIRET)", "recipient=", "", ReasonRecipientMismatch, http.StatusForbidden},
		{"equal with a space: refused", "recipient=+" + clientSIRET, "", ReasonRecipientMismatch, http.StatusForbidden},
		{"percent-encoded name, different: refused", "%72ecipient=" + otherSIRET, "", ReasonRecipientMismatch, http.StatusForbidden},
		{"repeated, both equal", "recipient=" + clientSIRET + "&recipient=" + clientSIRET, "", ReasonRecipientRepeated, http.StatusForbidden},
		{"repeated, the second different", "recipient=" + clientSIRET + "&recipient=" + otherSIRET, "", ReasonRecipientRepeated, http.StatusForbidden},
		{"repeated as recipient[]", "recipient=" + clientSIRET + "&recipient[]=" + otherSIRET, "", ReasonRecipientRepeated, http.StatusForbidden},
		{"recipient[] alone (Rails: an array)", "recipient[]=" + clientSIRET, "", ReasonBadQuery, http.StatusBadRequest},
		{"recipient[x] (Rails: a hash)", "recipient[x]=" + otherSIRET, "", ReasonBadQuery, http.StatusBadRequest},
		{"[recipient] (Rack 2: leading brackets skipped)", "%5Brecipient%5D=" + otherSIRET, "", ReasonBadQuery, http.StatusBadRequest},
		{"recipient] (Rack 2: trailing brackets skipped)", "recipient%5D=" + otherSIRET, "", ReasonBadQuery, http.StatusBadRequest},
		{"semicolon separator", "context=x;recipient=" + otherSIRET, "", ReasonBadQuery, http.StatusBadRequest},
		{"broken percent-encoding", "context=%zz", "", ReasonBadQuery, http.StatusBadRequest},
		{"invalid UTF-8", "nom=%ff", "", ReasonBadQuery, http.StatusBadRequest},
		{"too long", "context=" + strings.Repeat("a", 8<<10), "", ReasonBadQuery, http.StatusBadRequest},
		{"a token in the query (siade reads it as the API token)", "token=eyJhbGciOiJIUzI1NiJ9.e30.x", "", ReasonBadQuery, http.StatusBadRequest},
		{"token[] in the query", "token[]=x", "", ReasonBadQuery, http.StatusBadRequest},
	}
	for _, api := range []jetonv1alpha1.API{ae, ap} {
		for _, tt := range tests {
			t.Run(string(api)+"/"+tt.name, func(t *testing.T) {
				r := request("GET", path, "")
				r.URL.RawQuery = tt.query // as sent, byte for byte
				route, ref := CheckRequest(r, api, clientSIRET, false, 1<<20)
				if tt.reason == "" {
					if ref != nil {
						t.Fatalf("refused: %v", ref)
					}
					if route.RawQuery != tt.wantQuery || route.Path != path || route.Method != "GET" || route.Body != nil || route.ContentType != "" {
						t.Fatalf("route = %+v, want query %q", route, tt.wantQuery)
					}
					return
				}
				wantRefusal(t, ref, tt.reason, tt.status)
				if strings.Contains(ref.Message, otherSIRET) || strings.Contains(ref.Message, clientSIRET) {
					t.Fatalf("the refusal echoes a query value: %s", ref.Message)
				}
			})
		}
	}
}

func TestCheckRequestPaths(t *testing.T) {
	tests := []struct {
		api    jetonv1alpha1.API
		target string
		status int // 0: accepted; else path_not_allowed with this status
	}{
		// API Entreprise: siade/config/routes/api_entreprise.rb
		{ae, "/v3/insee/sirene/etablissements/13002526500013", 0},
		{ae, "/v4/djepva/api-association/associations/W751234567", 0},
		{ae, "/v3/dgfip/unites_legales/130025265/liasses_fiscales/2024", 0},
		{ae, "/v3/insee/sirene/unites_legales/130025265.json", 0},
		{ae, "/privileges", 0},
		{ae, "/v2/privileges", 0},
		{ae, "/pings", 0},
		{ae, "/ping/insee/sirene", 0},
		{ae, "/proxy/files/6b1f0f7e-4b7a-4d8e-9b1e-3f2a1c0d9e8f", 0},
		{ae, "/proxy/inpi/download/YWJj--ZGVm--Z2hp==", 0},
		{ae, "/v2/etablissements/13002526500013", http.StatusForbidden}, // 410 Gone upstream
		{ae, "/v1/privileges", http.StatusForbidden},
		{ae, "/v03/insee/sirene/etablissements/13002526500013", http.StatusForbidden},
		{ae, "/v3", http.StatusForbidden},
		{ae, "/mcp", http.StatusForbidden},
		{ae, "/", http.StatusForbidden},
		{ae, "/api/introspect", http.StatusForbidden},
		{ae, "/admin", http.StatusForbidden},
		// API Particulier: siade/config/routes/api_particulier.rb
		{ap, "/v3/dss/quotient_familial/identite", 0},
		{ap, "/v3/men/scolarites/identite", 0},
		{ap, "/api/v2/composition-familiale-v2", 0},
		{ap, "/api/introspect", 0},
		{ap, "/api/ping", 0},
		{ap, "/api/pings", 0},
		{ap, "/api/cnaf/ping", 0},
		{ap, "/v3/dss/quotient_familial/france_connect", http.StatusForbidden},
		{ap, "/v3/dss/quotient_familial/france_connect.json", http.StatusForbidden},
		{ap, "/api/france_connect_jwks", http.StatusForbidden},
		{ap, "/api/open-api.yml", http.StatusForbidden},
		{ap, "/privileges", http.StatusForbidden},
		{ap, "/api/v2", http.StatusForbidden},
		// Clean paths only (both APIs share the checks).
		{ae, "/v3/insee/../../privileges", http.StatusBadRequest},
		{ae, "/v3/./insee/sirene/etablissements/13002526500013", http.StatusBadRequest},
		{ae, "//privileges", http.StatusBadRequest},
		{ae, "/v3//insee/sirene/etablissements/13002526500013", http.StatusBadRequest},
		{ae, "/privileges/", http.StatusBadRequest},
		{ae, "/v3/insee%2Fsirene/etablissements/13002526500013", http.StatusBadRequest},
		{ae, "/v3/insee%5Csirene", http.StatusBadRequest},
		{ae, "/v3/insee/sirene%00/x", http.StatusBadRequest},
		{ae, "/%70rivileges", http.StatusBadRequest},
		{ae, "/v3/insee\\sirene", http.StatusBadRequest},
		{ae, "/v3/insee;jsessionid=1/x", http.StatusBadRequest},
		{ap, "/api/v2/%2e%2e/introspect", http.StatusBadRequest},
		{ap, "/v3/" + strings.Repeat("a", 600), http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(string(tt.api)+tt.target, func(t *testing.T) {
			u, err := url.ParseRequestURI(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			r := &http.Request{Method: "GET", URL: u, RequestURI: tt.target, Header: http.Header{}, Body: http.NoBody}
			route, ref := CheckRequest(r, tt.api, clientSIRET, false, 1<<20)
			if tt.status == 0 {
				if ref != nil {
					t.Fatalf("refused: %v", ref)
				}
				if route.Path != tt.target {
					t.Fatalf("path %q, want %q", route.Path, tt.target)
				}
				return
			}
			wantRefusal(t, ref, ReasonPathNotAllowed, tt.status)
		})
	}
}

func TestCheckRequestMethodsAndBodies(t *testing.T) {
	const path = "/v3/insee/sirene/etablissements/13002526500013"
	for _, api := range []jetonv1alpha1.API{ae, ap} {
		for _, m := range []string{"HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
			t.Run(string(api)+"/"+m, func(t *testing.T) {
				_, ref := CheckRequest(request(m, path, ""), api, clientSIRET, true, 1<<20)
				wantRefusal(t, ref, ReasonMethodNotAllowed, http.StatusMethodNotAllowed)
			})
		}
		t.Run(string(api)+"/GET with a body", func(t *testing.T) {
			r := request("GET", path, "recipient="+otherSIRET, "Content-Type", "application/x-www-form-urlencoded")
			_, ref := CheckRequest(r, api, clientSIRET, false, 1<<20)
			wantRefusal(t, ref, ReasonBadBody, http.StatusBadRequest)
		})
		t.Run(string(api)+"/GET with a chunked body", func(t *testing.T) {
			r := request("GET", path, "x")
			r.ContentLength = -1
			_, ref := CheckRequest(r, api, clientSIRET, false, 1<<20)
			wantRefusal(t, ref, ReasonBadBody, http.StatusBadRequest)
		})
		t.Run(string(api)+"/no valid client SIRET: fail closed", func(t *testing.T) {
			for _, s := range []string{"", "13002526500014", "1300252650001"} {
				_, ref := CheckRequest(request("GET", path, ""), api, s, false, 1<<20)
				wantRefusal(t, ref, ReasonNotReady, http.StatusServiceUnavailable)
			}
		})
	}
	for _, m := range []string{"GET", "HEAD", "PUT", "DELETE"} {
		t.Run("DemarchesNumeriques/"+m, func(t *testing.T) {
			_, ref := CheckRequest(request(m, dnGraphQLPath, ""), dn, "", true, 1<<20)
			wantRefusal(t, ref, ReasonMethodNotAllowed, http.StatusMethodNotAllowed)
		})
	}
	t.Run("unknown API", func(t *testing.T) {
		_, ref := CheckRequest(request("GET", "/privileges", ""), "Other", clientSIRET, false, 1<<20)
		wantRefusal(t, ref, ReasonNotReady, http.StatusServiceUnavailable)
	})
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func graphQLRequest(body string, header ...string) *http.Request {
	return request("POST", dnGraphQLPath, body, append([]string{"Content-Type", "application/json"}, header...)...)
}

func TestCheckRequestGraphQL(t *testing.T) {
	const maxBody = 1 << 10
	withCharset := func(charset string) *http.Request {
		r := graphQLRequest(`{"query":"{ a }"}`)
		r.Header.Set("Content-Type", "application/json; charset="+charset)
		return r
	}
	tests := []struct {
		name           string
		r              *http.Request
		allowMutations bool
		wantBody       string // when accepted
		reason         string
		status         int
	}{
		{"a query", graphQLRequest(`{"query":"{ demarche(number: 1) { id } }"}`), false,
			`{"query":"{ demarche(number: 1) { id } }"}`, "", 0},
		{"a named query with variables and operationName", graphQLRequest(`{"query":"query q($n: Int!) { demarche(number: $n) { id } }","operationName":"q","variables":{"n":1}}`), false,
			`{"query":"query q($n: Int!) { demarche(number: $n) { id } }","operationName":"q","variables":{"n":1}}`, "", 0},
		{"variables as a JSON string (ensure_hash)", graphQLRequest(`{"query":"{ a }","variables":"{\"n\": 1}"}`), false,
			`{"query":"{ a }","variables":{"n": 1}}`, "", 0},
		{"blank variables string", graphQLRequest(`{"query":"{ a }","variables":" ","operationName":null}`), false,
			`{"query":"{ a }"}`, "", 0},
		{"charset=UTF-8", withCharset("UTF-8"), false, `{"query":"{ a }"}`, "", 0},
		{"charset=latin1", withCharset("latin1"), false, "", ReasonBadBody, http.StatusUnsupportedMediaType},
		{"unknown keys dropped, the last duplicate kept (as Ruby's JSON reads it)", graphQLRequest(`{"query":"mutation { x }","extensions":{"a":1},"query":"{ a }"}`), false,
			`{"query":"{ a }"}`, "", 0},
		{"a mutation", graphQLRequest(`{"query":"mutation { dossierAccepter(input: {}) { errors { message } } }"}`), false, "", ReasonMutationNotAllowed, http.StatusForbidden},
		{"a mutation, allowed", graphQLRequest(`{"query":"mutation m { dossierAccepter(input: {}) { errors { message } } }"}`), true,
			`{"query":"mutation m { dossierAccepter(input: {}) { errors { message } } }"}`, "", 0},
		{"a subscription", graphQLRequest(`{"query":"subscription { a }"}`), false, "", ReasonMutationNotAllowed, http.StatusForbidden},
		{"query and mutation, the mutation selected", graphQLRequest(`{"query":"query q { a } mutation m { b }","operationName":"m"}`), false, "", ReasonMutationNotAllowed, http.StatusForbidden},
		{"query and mutation, the query selected", graphQLRequest(`{"query":"query q { a } mutation m { b }","operationName":"q"}`), false,
			`{"query":"query q { a } mutation m { b }","operationName":"q"}`, "", 0},
		{"query and mutation, none selected", graphQLRequest(`{"query":"query q { a } mutation m { b }"}`), false, "", ReasonBadBody, http.StatusBadRequest},
		{"operationName names nothing", graphQLRequest(`{"query":"mutation m { b }","operationName":"q"}`), false, "", ReasonBadBody, http.StatusBadRequest},
		{"the word mutation in a string and a comment", graphQLRequest(`{"query":"# mutation { b }\n{ a(s: \"mutation { b }\") }"}`), false,
			`{"query":"# mutation { b }\n{ a(s: \"mutation { b }\") }"}`, "", 0},
		{"a document the lexer cannot read", graphQLRequest(`{"query":"{ a(s: \"unterminated) }"}`), false, "", ReasonBadBody, http.StatusBadRequest},
		{"a schema definition", graphQLRequest(`{"query":"type Query { a: Int }"}`), false, "", ReasonBadBody, http.StatusBadRequest},
		{"persisted query ds-query-v2", graphQLRequest(`{"queryId":"ds-query-v2","operationName":"getDemarche","variables":{"demarcheNumber":1}}`), false,
			`{"queryId":"ds-query-v2","operationName":"getDemarche","variables":{"demarcheNumber":1}}`, "", 0},
		{"persisted mutations ds-mutation-v2", graphQLRequest(`{"queryId":"ds-mutation-v2","operationName":"dossierAccepter"}`), false, "", ReasonMutationNotAllowed, http.StatusForbidden},
		{"persisted mutations ds-mutation-v2, allowed", graphQLRequest(`{"queryId":"ds-mutation-v2","operationName":"dossierAccepter"}`), true,
			`{"queryId":"ds-mutation-v2","operationName":"dossierAccepter"}`, "", 0},
		{"queryId wins over query: only queryId goes upstream", graphQLRequest(`{"queryId":"ds-query-v2","query":"mutation { b }"}`), false,
			`{"queryId":"ds-query-v2"}`, "", 0},
		{"a blank queryId leaves the query", graphQLRequest(`{"queryId":" ","query":"mutation { b }"}`), false, "", ReasonMutationNotAllowed, http.StatusForbidden},
		{"unknown queryId", graphQLRequest(`{"queryId":"other"}`), false, "", ReasonBadBody, http.StatusBadRequest},
		{"no query", graphQLRequest(`{"variables":{}}`), false, "", ReasonBadBody, http.StatusBadRequest},
		{"query not a string", graphQLRequest(`{"query":["mutation { b }"]}`), true, "", ReasonBadBody, http.StatusBadRequest},
		{"operationName not a string", graphQLRequest(`{"query":"{ a }","operationName":1}`), false, "", ReasonBadBody, http.StatusBadRequest},
		{"variables an array", graphQLRequest(`{"query":"{ a }","variables":[1]}`), false, "", ReasonBadBody, http.StatusBadRequest},
		{"not an object", graphQLRequest(`[{"query":"{ a }"}]`), false, "", ReasonBadBody, http.StatusBadRequest},
		{"null", graphQLRequest(`null`), false, "", ReasonBadBody, http.StatusBadRequest},
		{"trailing garbage", graphQLRequest(`{"query":"{ a }"} x`), false, "", ReasonBadBody, http.StatusBadRequest},
		{"invalid UTF-8", graphQLRequest("{\"query\":\"{ a(s: \\\"\xff\\\") }\"}"), false, "", ReasonBadBody, http.StatusBadRequest},
		{"empty body", graphQLRequest(""), false, "", ReasonBadBody, http.StatusBadRequest},
		{"no Content-Type", request("POST", dnGraphQLPath, `{"query":"{ a }"}`), false, "", ReasonBadBody, http.StatusUnsupportedMediaType},
		{"form-encoded", request("POST", dnGraphQLPath, `query=%7B+a+%7D`, "Content-Type", "application/x-www-form-urlencoded"), false, "", ReasonBadBody, http.StatusUnsupportedMediaType},
		{"two Content-Types", graphQLRequest(`{"query":"{ a }"}`, "Content-Type", "application/json"), false, "", ReasonBadBody, http.StatusUnsupportedMediaType},
		{"a query string (Rails merges it over the body)", request("POST", dnGraphQLPath+"?query=mutation+%7B+b+%7D", `{"query":"{ a }"}`, "Content-Type", "application/json"), false, "", ReasonBadQuery, http.StatusBadRequest},
		{"another path", request("POST", "/api/v2/graphql.json", `{"query":"{ a }"}`, "Content-Type", "application/json"), false, "", ReasonPathNotAllowed, http.StatusForbidden},
		{"the web interface's path", request("POST", "/graphql", `{"query":"{ a }"}`, "Content-Type", "application/json"), false, "", ReasonPathNotAllowed, http.StatusForbidden},
		{"too large (Content-Length)", graphQLRequest(`{"query":"{ a }","variables":{"x":"` + strings.Repeat("a", maxBody) + `"}}`), false, "", ReasonBodyTooLarge, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			route, ref := CheckRequest(tt.r, dn, "", tt.allowMutations, maxBody)
			if tt.reason == "" {
				if ref != nil {
					t.Fatalf("refused: %v", ref)
				}
				if route.Method != "POST" || route.Path != dnGraphQLPath || route.RawQuery != "" || route.ContentType != "application/json" {
					t.Fatalf("route = %+v", route)
				}
				if !jsonEqual(t, string(route.Body), tt.wantBody) {
					t.Fatalf("body %s, want %s", route.Body, tt.wantBody)
				}
				return
			}
			wantRefusal(t, ref, tt.reason, tt.status)
		})
	}
	t.Run("too large without Content-Length: reading stops at the limit", func(t *testing.T) {
		src := &countingReader{r: strings.NewReader(`{"query":"{ a }","x":"` + strings.Repeat("a", 1<<20) + `"}`)}
		r := graphQLRequest("")
		r.Body, r.ContentLength = io.NopCloser(src), -1
		_, ref := CheckRequest(r, dn, "", false, maxBody)
		wantRefusal(t, ref, ReasonBodyTooLarge, http.StatusRequestEntityTooLarge)
		if src.n > maxBody+1 {
			t.Fatalf("read %d bytes, the limit is %d", src.n, maxBody)
		}
	})
	t.Run("exactly the limit is accepted", func(t *testing.T) {
		body := `{"query":"{ a }","x":"` + strings.Repeat("a", maxBody-len(`{"query":"{ a }","x":""}`)) + `"}`
		if len(body) != maxBody {
			t.Fatalf("test body is %d bytes", len(body))
		}
		if _, ref := CheckRequest(graphQLRequest(body), dn, "", false, maxBody); ref != nil {
			t.Fatalf("refused: %v", ref)
		}
	})
	t.Run("too large by Content-Length: nothing read", func(t *testing.T) {
		src := &countingReader{r: strings.NewReader(`{"query":"{ a }"}`)}
		r := graphQLRequest("")
		r.Body, r.ContentLength = io.NopCloser(src), maxBody+1
		_, ref := CheckRequest(r, dn, "", false, maxBody)
		wantRefusal(t, ref, ReasonBodyTooLarge, http.StatusRequestEntityTooLarge)
		if src.n != 0 {
			t.Fatalf("read %d bytes", src.n)
		}
	})
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

func TestForwardHeaders(t *testing.T) {
	in := http.Header{}
	for k, v := range map[string]string{
		"Accept": "application/json", "Accept-Encoding": "gzip", "Accept-Language": "fr",
		"Cache-Control": "no-cache", "If-None-Match": `"abc"`, "If-Modified-Since": "Mon, 07 Dec 2026 06:00:00 GMT",
		"User-Agent": "app/1.0",
		// Never forwarded:
		"Authorization": "Bearer jgw1.x", "X-Api-Key": "jgw1.x", "Cookie": "a=b", "Proxy-Authorization": "Basic x",
		"Proxy-Connection": "keep-alive", "Forwarded": "for=1.2.3.4", "X-Forwarded-For": "1.2.3.4",
		"X-Forwarded-Host": "evil", "X-Forwarded-Proto": "http", "X-Real-Ip": "1.2.3.4", "Connection": "keep-alive",
		"Keep-Alive": "timeout=5", "Te": "trailers", "Trailer": "X", "Transfer-Encoding": "chunked", "Upgrade": "h2c",
		"Host": "evil", "Content-Length": "5", "Content-Type": "application/x-www-form-urlencoded",
		"X-Http-Method-Override": "DELETE", "Origin": "https://evil", "Referer": "https://app/secret?x", "X-Custom": "1",
	} {
		in.Set(k, v)
	}
	in.Add("Accept-Language", "en")
	out := ForwardHeaders(in)
	want := map[string][]string{
		"Accept": {"application/json"}, "Accept-Encoding": {"gzip"}, "Accept-Language": {"fr", "en"},
		"Cache-Control": {"no-cache"}, "If-None-Match": {`"abc"`}, "If-Modified-Since": {"Mon, 07 Dec 2026 06:00:00 GMT"},
		"User-Agent": {"app/1.0"},
	}
	if len(out) != len(want) {
		t.Fatalf("forwarded %v, want exactly %v", out, want)
	}
	for k, v := range want {
		if strings.Join(out[k], "|") != strings.Join(v, "|") {
			t.Errorf("%s = %q, want %q", k, out[k], v)
		}
	}
	out["Accept-Language"][0] = "changed"
	if in.Get("Accept-Language") != "fr" {
		t.Fatal("ForwardHeaders shares its value slices with the input")
	}

	t.Run("a header the client lists in Connection is hop-by-hop", func(t *testing.T) {
		in := http.Header{"Accept": {"application/json"}, "User-Agent": {"app"}, "Connection": {"close, user-agent"}}
		out := ForwardHeaders(in)
		if out.Get("User-Agent") != "" || out.Get("Accept") == "" {
			t.Fatalf("forwarded %v", out)
		}
	})
}

func TestSetToken(t *testing.T) {
	tests := []struct {
		api            jetonv1alpha1.API
		path           string
		bearer, apiKey bool
		name           string
	}{
		{ae, "/v3/insee/sirene/etablissements/13002526500013", true, false, "API Entreprise: Bearer"},
		{ae, "", true, false, "API Entreprise without a path: Bearer"},
		{dn, dnGraphQLPath, true, false, "Démarches Numériques: Bearer"},
		{ap, "/v3/dss/quotient_familial/identite", true, false, "API Particulier v3: Bearer"},
		{ap, "/api/v2/composition-familiale-v2", false, true, "API Particulier v2: X-Api-Key, never Bearer (FranceConnect flow)"},
		{ap, "/api/introspect", false, true, "API Particulier introspect: X-Api-Key"},
		{ap, "", false, true, "API Particulier without a path: X-Api-Key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{
				"Authorization": {"Bearer jgw1.client", "Bearer another"},
				"X-Api-Key":     {"jgw1.client"},
			}
			if tt.path == "" {
				SetToken(h, tt.api, "the-token")
			} else {
				SetTokenForPath(h, tt.api, tt.path, "the-token")
			}
			wantAuth, wantKey := []string(nil), []string(nil)
			if tt.bearer {
				wantAuth = []string{"Bearer the-token"}
			}
			if tt.apiKey {
				wantKey = []string{"the-token"}
			}
			if strings.Join(h.Values("Authorization"), "|") != strings.Join(wantAuth, "|") ||
				strings.Join(h.Values("X-Api-Key"), "|") != strings.Join(wantKey, "|") {
				t.Fatalf("headers %v, want Authorization %q and X-Api-Key %q", h, wantAuth, wantKey)
			}
		})
	}
}

// TestUpstreamHeader: the header smuggling cases of the issue, on the header the proxy
// sends: the client's credentials never go upstream, the token is always the gateway's,
// and "Connection: Authorization" cannot remove it.
func TestUpstreamHeader(t *testing.T) {
	in := http.Header{
		"Authorization": {"Bearer jgw1.client"}, "X-Api-Key": {"jgw1.client"}, "Accept": {"application/json"},
		"Connection": {"Authorization, X-Api-Key, Content-Type"}, "Content-Type": {"text/plain"},
	}
	rest := Route{Method: "GET", Path: "/v3/insee/sirene/etablissements/13002526500013", RawQuery: "recipient=" + clientSIRET}
	h := rest.UpstreamHeader(in, ae, "the-token")
	if h.Get("Authorization") != "Bearer the-token" || len(h.Values("Authorization")) != 1 || h.Get("X-Api-Key") != "" ||
		h.Get("Content-Type") != "" || h.Get("Accept") != "application/json" || h.Get("Connection") != "" {
		t.Fatalf("API Entreprise header %v", h)
	}
	h = Route{Method: "GET", Path: "/api/v2/etudiants"}.UpstreamHeader(in, ap, "the-token")
	if h.Get("X-Api-Key") != "the-token" || h.Get("Authorization") != "" {
		t.Fatalf("API Particulier v2 header %v", h)
	}
	gql := Route{Method: "POST", Path: dnGraphQLPath, Body: []byte(`{"query":"{ a }"}`), ContentType: "application/json"}
	h = gql.UpstreamHeader(in, dn, "the-token")
	if h.Get("Authorization") != "Bearer the-token" || h.Get("Content-Type") != "application/json" || h.Get("X-Api-Key") != "" {
		t.Fatalf("Démarches Numériques header %v", h)
	}
}

// TestRefusalsNeverEcho: a refusal's message is jeton's text, never the request's values
// (API Particulier queries carry names and birth dates).
func TestRefusalsNeverEcho(t *testing.T) {
	const secret = "SECRETVALUE42"
	reqs := []*http.Request{
		request("GET", "/v3/x?recipient="+secret, ""),
		request("GET", "/v3/x?recipient="+secret+"&recipient=1", ""),
		request("GET", "/v3/x?token="+secret, ""),
		request("GET", "/v3/x?"+secret+"=%zz", ""),
		request("GET", "/"+secret, ""),
		request("GET", "/v3/"+secret+"/%2e%2e", ""),
		request("POST", "/v3/"+secret, ""),
		graphQLRequest(`{"query":"mutation ` + secret + ` { a }"}`),
		graphQLRequest(`{"query":"{ ` + secret + `(\"x) }"}`),
		graphQLRequest(`{"queryId":"` + secret + `"}`),
	}
	for i, r := range reqs {
		api := ap
		if strings.HasPrefix(r.URL.Path, "/api/v2/graphql") {
			api = dn
		}
		_, ref := CheckRequest(r, api, clientSIRET, false, 1<<20)
		if ref == nil {
			t.Fatalf("request %d accepted", i)
		}
		rec := httptest.NewRecorder()
		WriteRefusal(rec, api, ref, 0)
		if strings.Contains(ref.Message, secret) || strings.Contains(ref.Error(), secret) || strings.Contains(rec.Body.String(), secret) {
			t.Fatalf("request %d: the refusal echoes the request: %s", i, rec.Body.String())
		}
	}
}
