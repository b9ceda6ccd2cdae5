package probe

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// fuzzToken stands for the token that was sent with the probe. Classify never sees it, but
// an API, a proxy or an attacker-controlled base URL can echo it back in a body or header:
// whatever they echo must not reach a message or a code, which land in status and events.
const fuzzToken = "eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJmdXp6In0.c2VjcmV0LXNpZ25hdHVyZS1mdXp6LXRva2Vu"

// fuzzSecret is the part of fuzzToken that is actually secret: a JWT's header is public
// ("eyJhbGciOi..." is in every JWT), its signature is not.
const fuzzSecret = "c2VjcmV0LXNpZ25hdHVyZS1mdXp6LXRva2Vu"

var fuzzAPIs = []jetonv1alpha1.API{jetonv1alpha1.APIEntreprise, jetonv1alpha1.APIParticulier, jetonv1alpha1.DemarchesNumeriques}

// classifyReasons are the reasons an answer can be classified as; Unreachable, Timeout and
// InternalError are for requests that got no answer, never for Classify.
var classifyReasons = []string{
	jetonv1alpha1.ReasonProbeSucceeded,
	jetonv1alpha1.ReasonUnauthorized,
	jetonv1alpha1.ReasonExpired,
	jetonv1alpha1.ReasonRevoked,
	jetonv1alpha1.ReasonInsufficientPrivileges,
	jetonv1alpha1.ReasonRateLimited,
	jetonv1alpha1.ReasonServerError,
	jetonv1alpha1.ReasonUnexpectedResponse,
}

// FuzzClassify feeds Classify real answers of the three APIs (and mutations of them) and
// checks what TechnicalToken status, events and alerts rely on.
func FuzzClassify(f *testing.F) {
	const (
		ae = 0
		ap = 1
		dn = 2
	)
	html502 := "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
	seeds := []struct {
		api        uint8
		status     int
		retryAfter string
		body       string
	}{
		// API Entreprise GET /privileges.
		{ae, 200, "", `{"privileges":["unites_legales_etablissements_insee","attestations_fiscales","attestations_sociales"]}`},
		{ae, 200, "", `{"privileges":[]}`},
		{ae, 401, "", `{"errors":[{"code":"00101","title":"Interdit","detail":"Votre token n'est pas valide ou n'est pas renseigné","source":{},"meta":{}}]}`},
		{ae, 401, "", `{"errors":[{"code":"00103","title":"Interdit","detail":"Votre token est expiré","source":{},"meta":{}}]}`},
		{ae, 401, "", `{"errors":[{"code":"00105","title":"Interdit","detail":"Votre token a été banni","source":{},"meta":{}}]}`},
		{ae, 403, "", `{"errors":[{"code":"00100","title":"Privilèges insuffisants","detail":"Votre token est valide mais vos privilèges sont insuffisants","source":{},"meta":{}}]}`},
		{ae, 409, "", `{"errors":[{"code":"00015","title":"Conflit","detail":"Une requête identique est en cours","source":{},"meta":{}}]}`},
		{ae, 429, "32", ``}, // staging: empty body, only Retry-After
		{ae, 429, "60", `{"errors":[{"code":"00429","title":"Trop de requêtes","detail":"Vous avez effectué trop de requêtes","source":{},"meta":{}}]}`},
		{ae, 429, "", `{"errors":[{"code":"00429"}]}`},
		{ae, 502, "", html502},
		{ae, 500, "", `Internal Server Error`},
		{ae, 503, "120", `{"status":"bad_gateway","last_update":"2026-03-01T12:00:00Z","last_ok_status":"2026-03-01T11:00:00Z"}`},
		// API Particulier GET /api/introspect.
		{ap, 200, "", `{"_id":"0d8b3a52-6b1c-4f5b-9b59-2c3e4c1d9e10","name":null,"scopes":["cnaf_quotient_familial","dgfip_avis_imposition"]}`},
		{ap, 401, "", `{"errors":[{"code":"00101","title":"Interdit","detail":"Votre jeton d'API n'a pas été trouvé"}]}`},
		{ap, 429, "1", ``},
		// Démarches Numériques GraphQL.
		{dn, 200, "", `{"data":{"demarche":{"id":"UHJvY2VkdXJlLTQyMQ==","number":421}}}`},
		{dn, 200, "", `{"data":null,"errors":[{"message":"An object of type Demarche was hidden due to permissions","locations":[{"line":1,"column":3}],"path":["demarche"],"extensions":{"code":"unauthorized"}}]}`},
		{dn, 200, "", `{"data":null,"errors":[{"message":"Demarche not found","path":["demarche"],"extensions":{"code":"not_found"}}]}`},
		{dn, 200, "", `{"data":{"demarche":null}}`},
		{dn, 401, "", `{"errors":[{"message":"Token expired","extensions":{"code":"unauthorized"}}]}`},
		{dn, 403, "", `{"errors":[{"message":"Without a token, only persisted queries are allowed","extensions":{"code":"forbidden"}}]}`},
		{dn, 429, "60", `{"errors":[{"message":"Too many requests","extensions":{"code":"too_many_requests"}}]}`},
		{dn, 502, "", html502},
		// Answers that echo the token, as a misconfigured proxy or a hostile base URL may.
		{ae, 401, "", `{"errors":[{"code":"00101","title":"Interdit","detail":"Bearer ` + fuzzToken + ` rejected"}]}`},
		{ae, 401, "", `{"errors":[{"code":"` + fuzzToken + `"}]}`},
		{dn, 403, "", `{"errors":[{"message":"` + fuzzToken + `","extensions":{"code":"` + fuzzSecret + `"}}]}`},
		{dn, 200, "", `{"data":null,"errors":[{"message":"x","extensions":{"code":"` + fuzzToken + `"}}]}`},
		{ae, 429, fuzzToken, ``},
		{ae, 400, "", `<pre>Authorization: Bearer ` + fuzzToken + `</pre>`},
		// Oddities.
		{ae, 200, "", `null`},
		{ap, 200, "", `{"scopes":null}`},
		{ae, 0, "", ``},
		{ae, 999, "", `{}`},
		{ae, 301, "", ``},
		{ae, 401, "", `{"errors":[{"code":"00101\n\u001b[31mfake log line"}]}`},
	}
	for _, s := range seeds {
		f.Add(s.api, s.status, s.retryAfter, []byte(s.body))
	}

	f.Fuzz(func(t *testing.T, apiIndex uint8, status int, retryAfter string, raw []byte) {
		api := fuzzAPIs[int(apiIndex)%len(fuzzAPIs)]
		header := http.Header{}
		if retryAfter != "" {
			header.Set("Retry-After", retryAfter)
		}
		r := Classify(api, status, header, raw)

		if !slices.Contains(classifyReasons, r.Reason) {
			t.Fatalf("reason %q is not one of the documented probe reasons %v", r.Reason, classifyReasons)
		}
		if r.HTTPStatus != status {
			t.Errorf("httpStatus = %d, want %d", r.HTTPStatus, status)
		}
		if r.Message == "" {
			t.Error("empty message: users need to know what to do")
		}
		// Message and code go into status, events and logs.
		for field, v := range map[string]string{"message": r.Message, "code": r.Code} {
			if strings.Contains(v, fuzzSecret) {
				t.Errorf("%s contains the token: %q", field, v)
			}
			if !utf8.ValidString(v) {
				t.Errorf("%s is not valid UTF-8: %q", field, v)
			}
			if i := strings.IndexFunc(v, unicode.IsControl); i >= 0 {
				t.Errorf("%s holds a control character at %d: %q", field, i, v)
			}
		}

		switch {
		case status == http.StatusTooManyRequests:
			if r.Reason != jetonv1alpha1.ReasonRateLimited {
				t.Errorf("429 classified %s, want RateLimited (a probe that ignores 429s gets the IP banned)", r.Reason)
			}
		case status >= 500:
			if r.Reason != jetonv1alpha1.ReasonServerError {
				t.Errorf("%d classified %s, want ServerError", status, r.Reason)
			}
		case status == http.StatusUnauthorized:
			if !slices.Contains([]string{jetonv1alpha1.ReasonUnauthorized, jetonv1alpha1.ReasonExpired, jetonv1alpha1.ReasonRevoked}, r.Reason) {
				t.Errorf("401 classified %s, want an authentication failure", r.Reason)
			}
		case status == http.StatusForbidden:
			if !slices.Contains([]string{jetonv1alpha1.ReasonUnauthorized, jetonv1alpha1.ReasonInsufficientPrivileges}, r.Reason) {
				t.Errorf("403 classified %s, want an authentication failure", r.Reason)
			}
		}

		if r.Succeeded() {
			if status != http.StatusOK {
				t.Fatalf("status %d classified as success", status)
			}
			if !json.Valid(raw) {
				t.Fatalf("a body that is not JSON classified as success: %q", raw)
			}
			checkSuccessBody(t, api, raw, r)
		} else if r.Privileges != nil {
			t.Errorf("privileges %q reported for a failed check", r.Privileges)
		}
		// A 200 with the body each API documents for a valid token is a success, nothing else.
		if status == http.StatusOK && validSuccessBody(api, raw) && !r.Succeeded() {
			t.Errorf("a valid 200 answer classified %s: %s", r.Reason, r.Message)
		}
	})
}

// checkSuccessBody checks that a success is backed by what the API documents for a valid
// token, and that the reported privileges are the API's own.
func checkSuccessBody(t *testing.T, api jetonv1alpha1.API, raw []byte, r Result) {
	t.Helper()
	var b struct {
		Privileges []string        `json:"privileges"`
		Scopes     []string        `json:"scopes"`
		Errors     json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("success on a body that is not a JSON object: %v", err)
	}
	switch api {
	case jetonv1alpha1.APIEntreprise:
		if b.Privileges == nil || !slices.Equal(r.Privileges, b.Privileges) {
			t.Errorf("success with privileges %q, body says %q", r.Privileges, b.Privileges)
		}
	case jetonv1alpha1.APIParticulier:
		if b.Scopes == nil || !slices.Equal(r.Privileges, b.Scopes) {
			t.Errorf("success with privileges %q, body says scopes %q", r.Privileges, b.Scopes)
		}
	case jetonv1alpha1.DemarchesNumeriques:
		if !validSuccessBody(api, raw) {
			t.Errorf("success without a démarche in data or with errors: %q", raw)
		}
	}
}

// validSuccessBody reports whether raw is, by the API's documentation, the answer to a
// valid token: a privileges list, a scopes list, or a démarche and no errors.
func validSuccessBody(api jetonv1alpha1.API, raw []byte) bool {
	switch api {
	case jetonv1alpha1.APIEntreprise:
		var b struct {
			Privileges []string `json:"privileges"`
		}
		return json.Unmarshal(raw, &b) == nil && b.Privileges != nil
	case jetonv1alpha1.APIParticulier:
		var b struct {
			Scopes []string `json:"scopes"`
		}
		return json.Unmarshal(raw, &b) == nil && b.Scopes != nil
	default:
		var b struct {
			Data *struct {
				Demarche *struct {
					ID string `json:"id"`
				} `json:"demarche"`
			} `json:"data"`
			Errors []json.RawMessage `json:"errors"`
		}
		return json.Unmarshal(raw, &b) == nil && b.Data != nil && b.Data.Demarche != nil && len(b.Errors) == 0
	}
}
