package gateway

import (
	"bufio"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// FuzzCheckRequest: CheckRequest never panics on a request net/http's server could hand
// it; a refusal has a known reason, its code and a bounded message; an accepted API
// Entreprise or API Particulier route has exactly one recipient, spelled "recipient",
// equal to the client's SIRET (however Rails would name the query's keys), a clean path
// and no body; an accepted Démarches Numériques route has no query and, when mutations
// are not allowed, a body whose selected operation is a query.
func FuzzCheckRequest(f *testing.F) {
	for _, seed := range []struct {
		api                      uint8
		method, target, ct, body string
		allow                    bool
	}{
		{0, "GET", "/v3/insee/sirene/etablissements/13002526500013?context=x&object=y", "", "", false},
		{0, "GET", "/v3/x?recipient=13002526500013&recipient=13002526500013", "", "", false},
		{0, "GET", "/v3/x?recipient%5B%5D=1&%5Brecipient%5D=2&recipient%5D=3", "", "", false},
		{1, "GET", "/api/v2/etudiants?ine=1234&recipient=35600000000048", "", "", false},
		{1, "GET", "/v3/dss/quotient_familial/identite?nomNaissance=Martin&prenoms[]=A&token=x", "", "", false},
		{0, "GET", "/v3/a/../b?x=%zz;y", "", "", false},
		{2, "POST", "/api/v2/graphql", "application/json", `{"query":"query q { a } mutation m { b }","operationName":"q"}`, false},
		{2, "POST", "/api/v2/graphql", "application/json", `{"queryId":"ds-mutation-v2"}`, true},
		{2, "POST", "/api/v2/graphql", "application/json", `{"query":"{ a(s: \"\"\"x\"\"\") }","variables":"{}"}`, false},
	} {
		f.Add(seed.api, seed.method, seed.target, seed.ct, seed.body, seed.allow)
	}
	apis := []jetonv1alpha1.API{ae, ap, dn}
	f.Fuzz(func(t *testing.T, apiIndex uint8, method, target, contentType, body string, allowMutations bool) {
		api := apis[int(apiIndex)%len(apis)]
		// Build the request the way net/http's server does, from the request line.
		raw := method + " " + target + " HTTP/1.1\r\nHost: gateway\r\n"
		if contentType != "" {
			raw += "Content-Type: " + contentType + "\r\n"
		}
		raw += "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return
		}
		route, ref := CheckRequest(r, api, clientSIRET, allowMutations, 1<<12)
		if ref != nil {
			if !slices.Contains(Reasons, ref.Reason) || ref.Code != "JETON_"+strings.ToUpper(ref.Reason) ||
				ref.Message == "" || len(ref.Message) > maxMessageLen || ref.Status < 400 || ref.Status > 599 {
				t.Fatalf("refusal %+v", ref)
			}
			return
		}
		if api == dn {
			if route.RawQuery != "" || route.Path != dnGraphQLPath || route.Method != "POST" {
				t.Fatalf("route %+v", route)
			}
			if !allowMutations {
				if _, ref := CheckRequest(rebuilt(route), dn, "", false, 1<<20); ref != nil {
					t.Fatalf("the rebuilt body is refused: %v (%s)", ref, route.Body)
				}
			}
			return
		}
		if route.Method != "GET" || route.Body != nil || !strings.HasPrefix(route.Path, "/") || strings.Contains(route.Path, "//") {
			t.Fatalf("route %+v", route)
		}
		vals, err := url.ParseQuery(route.RawQuery)
		if err != nil {
			t.Fatalf("rebuilt query %q does not parse: %v", route.RawQuery, err)
		}
		recipients := 0
		for k, vs := range vals {
			if railsParamIs(k, "recipient") {
				recipients += len(vs)
				if k != "recipient" || vs[0] != clientSIRET {
					t.Fatalf("recipient %q=%q in %q", k, vs, route.RawQuery)
				}
			}
			if railsParamIs(k, "token") {
				t.Fatalf("token parameter in %q", route.RawQuery)
			}
		}
		if recipients != 1 {
			t.Fatalf("%d recipients in %q", recipients, route.RawQuery)
		}
	})
}

// rebuilt is a request carrying route's body, as sent upstream.
func rebuilt(route Route) *http.Request {
	r := request(route.Method, route.Path, string(route.Body), "Content-Type", route.ContentType)
	if len(route.Body) == 0 {
		r.ContentLength = 0
	}
	return r
}
