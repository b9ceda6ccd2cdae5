// Package probe checks technical tokens against each API's own token check, classifies the
// answers, and schedules the checks so that no API is ever hammered: one request in flight
// per token, Retry-After and RateLimit-* honoured, a host-wide backoff on 429 and a
// per-host rate limit below the vendor's per-IP quota.
//
// An answer is hostile input (DESIGN.md §6): it may echo the token, be huge or be crafted
// by whoever controls a base URL. Nothing of it reaches a Result except the status code,
// numbers parsed from headers, error codes of the documented shape (CodePattern) and
// scope-shaped privilege names (internal/sanitize). Messages are our own words around
// those: never the body, a header value, or a GraphQL error message.
package probe

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/sanitize"
)

// MaxBody is how much of a response body is read; the token checks answer a few hundred bytes.
const MaxBody = 64 << 10

// Result is the classification of one answer.
type Result struct {
	// Reason is one of the probe reasons of api/v1alpha1 (ReasonProbeSucceeded, ReasonUnauthorized...).
	Reason string
	// HTTPStatus of the answer, 0 when none came.
	HTTPStatus int
	// Code is the API's error code (00101, forbidden...), when it gave one.
	Code string
	// Message says what happened and what to do, in English. It never contains the token.
	Message string
	// Privileges the API reported (API Entreprise privileges, API Particulier scopes): only
	// scope-shaped names, sorted, without duplicates, at most sanitize.MaxScopes.
	Privileges []string
	// IgnoredPrivileges counts the names of the answer left out of Privileges (wrong shape,
	// or beyond the bound); the message says how many.
	IgnoredPrivileges int
}

// Succeeded reports whether the token check passed.
func (r Result) Succeeded() bool { return r.Reason == jetonv1alpha1.ReasonProbeSucceeded }

// apiError is one error object: API Entreprise's and API Particulier's JSON:API format
// `{"errors":[{"code":...}]}` and GraphQL's `{"errors":[{"message":...,"extensions":{"code":...}}]}`.
type apiError struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	Extensions struct {
		Code string `json:"code"`
	} `json:"extensions"`
}

// body is what the classification reads of an answer. The APIs use three error formats
// (DESIGN.md §1, datagouv/apistration siade/app/serializers/errors_serializer.rb and
// siade/app/controllers/api_particulier/v2/base_controller.rb):
//   - JSON:API: `{"errors":[{"code":"00101","title":…,"detail":…,"source":…,"meta":{}}]}`;
//   - siade's "flat" format: `{"errors":["Votre token est expiré…"]}` (strings, no code);
//   - API Particulier v2's own: `{"error":"access_denied","reason":…,"message":…}`.
//
// Fields whose type varies between formats are decoded one by one, so that one format
// never makes the others unreadable.
type body struct {
	// Objects are the error objects of "errors", Flat its strings.
	Objects []apiError
	Flat    []string
	// FlatError is the "error" word of API Particulier v2's format, when code-shaped, and
	// FlatMessage its "message" (only matched against documented texts, never copied).
	FlatError, FlatMessage string
	// Privileges is API Entreprise's list, top-level (legacy) or under "data" (siade's
	// current controller); nil when the answer has none.
	Privileges []string
	Scopes     []string
	Data       json.RawMessage
}

// decodeBody decodes raw; ok is false when it is not a JSON object.
func decodeBody(raw []byte) (b body, ok bool) {
	var top struct {
		Errors     json.RawMessage `json:"errors"`
		Error      json.RawMessage `json:"error"`
		Message    json.RawMessage `json:"message"`
		Privileges json.RawMessage `json:"privileges"`
		Scopes     json.RawMessage `json:"scopes"`
		Data       json.RawMessage `json:"data"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &top) != nil {
		return b, false
	}
	// An "errors" list is either objects or strings; anything else is no error list.
	if json.Unmarshal(top.Errors, &b.Objects) != nil {
		b.Objects = nil
		if json.Unmarshal(top.Errors, &b.Flat) != nil {
			b.Flat = nil
		}
	}
	var word string
	if json.Unmarshal(top.Error, &word) == nil && plainCode(word) {
		b.FlatError = word
		if json.Unmarshal(top.Message, &word) == nil {
			b.FlatMessage = word
		}
	}
	b.Data = top.Data
	b.Privileges = stringList(top.Privileges)
	b.Scopes = stringList(top.Scopes)
	if b.Privileges == nil {
		var data struct {
			Privileges json.RawMessage `json:"privileges"`
		}
		if json.Unmarshal(top.Data, &data) == nil {
			b.Privileges = stringList(data.Privileges)
		}
	}
	return b, true
}

// stringList decodes a JSON list of strings; nil when raw is absent or anything else
// (null included: a list that is not there is not an empty list).
func stringList(raw json.RawMessage) []string {
	var l []string
	if len(raw) == 0 || json.Unmarshal(raw, &l) != nil || l == nil {
		return nil
	}
	return l
}

// firstCode returns the first error code of the body, whichever format it uses. Only
// codes that look like the APIs' own (00101, forbidden, too_many_requests, access_denied)
// are kept: the code goes into status, events and logs, and a proxy or a wrong base URL
// may put anything there, the echoed token included (found by FuzzClassify).
func (b body) firstCode() string {
	for _, e := range b.Objects {
		for _, c := range []string{e.Code, e.Extensions.Code} {
			if c != "" {
				if !plainCode(c) {
					return ""
				}
				return c
			}
		}
	}
	return b.FlatError
}

// maxCodeLen is longer than any documented code and shorter than any token.
const maxCodeLen = 24

// CodePattern is the shape of the error codes kept: digits (API Entreprise and API
// Particulier: 00101, 00429), or words of one case joined by underscores (GraphQL
// extensions: forbidden, not_found, too_many_requests; UNAUTHENTICATED as other GraphQL
// servers spell them). Mixed case, or letters mixed with digits, is what random secrets
// look like and no documented code does.
const CodePattern = `^(?:[0-9]+|[a-z]+(?:_[a-z]+)*|[A-Z]+(?:_[A-Z]+)*)$`

var codeRE = regexp.MustCompile(CodePattern)

// plainCode reports whether c is a short code of the documented shape.
func plainCode(c string) bool {
	return len(c) <= maxCodeLen && codeRE.MatchString(c)
}

// firstMessage returns the first error message: a GraphQL message or a flat error string.
// Only used to recognise a documented answer, never copied into our messages.
func (b body) firstMessage() string {
	for _, e := range b.Objects {
		if e.Message != "" {
			return e.Message
		}
	}
	if len(b.Flat) > 0 {
		return b.Flat[0]
	}
	return b.FlatMessage
}

// forbiddenNetworkRE matches Démarches Numériques' refusal of the caller's address
// (demarches-simplifiees.fr app/controllers/api/v2/base_controller.rb,
// ensure_authorized_network): "Request issued from a forbidden network. Add
// <address>/<prefix> to your allowed adresses in your /profil".
var forbiddenNetworkRE = regexp.MustCompile(`^Request issued from a forbidden network\. Add (\S{1,64}) to your allowed`)

// forbiddenNetwork reports whether msg is that refusal, and the address it names when it
// is a valid IP prefix (the only part of the message that reaches ours: parsed, so
// nothing else can ride along).
func forbiddenNetwork(msg string) (bool, string) {
	if !strings.HasPrefix(msg, "Request issued from a forbidden network") {
		return false, ""
	}
	if m := forbiddenNetworkRE.FindStringSubmatch(msg); m != nil {
		if p, err := netip.ParsePrefix(m[1]); err == nil {
			return true, p.String()
		}
	}
	return true, ""
}

// Classify classifies one answer of an API's token check, received now. It tolerates empty
// and non-JSON bodies (API Entreprise answers 429 with an empty body).
func Classify(api jetonv1alpha1.API, status int, header http.Header, raw []byte) Result {
	return ClassifyAt(api, status, header, raw, time.Now())
}

// ClassifyAt is Classify for an answer received at now, the time an HTTP-date Retry-After
// is counted from.
func ClassifyAt(api jetonv1alpha1.API, status int, header http.Header, raw []byte, now time.Time) Result {
	b, parsed := decodeBody(raw)
	code := b.firstCode()
	r := Result{HTTPStatus: status, Code: code}
	set := func(reason, format string, args ...any) Result {
		r.Reason, r.Message = reason, fmt.Sprintf(format, args...)
		return r
	}
	withCode := codeSuffix(code)

	switch {
	case status == http.StatusOK:
		return classifyOK(api, r, b, parsed)

	case status == http.StatusTooManyRequests:
		return set(jetonv1alpha1.ReasonRateLimited,
			"the API answered 429 Too Many Requests%s%s; jeton backs off every probe of this host until the API allows requests again. If this persists, something else is using the vendor's quota", withCode, waitNote(header, now))

	case status == http.StatusUnauthorized:
		msg := strings.ToLower(b.firstMessage())
		switch {
		case api == jetonv1alpha1.DemarchesNumeriques && strings.Contains(msg, "expired"):
			return set(jetonv1alpha1.ReasonExpired, "the API says the token has expired (401%s): generate a new token in the Démarches Numériques administrator profile and update the Secret", withCode)
		case code == "00103":
			return set(jetonv1alpha1.ReasonExpired, "the API says the token has expired (401, code 00103): renew it on the API portal and update the Secret")
		case code == "" && len(b.Flat) > 0 && strings.Contains(msg, "expiré"):
			// siade's flat format (API Particulier v2): the expiry error has no code.
			return set(jetonv1alpha1.ReasonExpired, "the API says the token has expired (401): renew it on the API portal and update the Secret")
		case code == "00105":
			return set(jetonv1alpha1.ReasonRevoked, "the API says the token was revoked (401, code 00105): ask for a new token on the API portal and update the Secret")
		case code == "access_denied" && strings.Contains(msg, "privilèges sont insuffisants"):
			// API Particulier v2 answers insufficient privileges with 401 access_denied.
			return set(jetonv1alpha1.ReasonInsufficientPrivileges, "the token is valid but lacks the privileges for the check (401, code access_denied): ask the API to grant them")
		default:
			return set(jetonv1alpha1.ReasonUnauthorized, "the API rejected the token (401%s): check that the Secret holds the complete technical token for this API and environment", withCode)
		}

	case status == http.StatusForbidden:
		isNetwork, address := forbiddenNetwork(b.firstMessage())
		switch {
		case code == "00107":
			return set(jetonv1alpha1.ReasonNetworkNotAllowed, "the API refuses this token from the address jeton calls from (403, code 00107): the token has an IP allow-list that does not include the cluster's egress address. The token itself is fine, do not regenerate it: add the cluster's egress address to the token's allowed IPs on the API portal")
		case api == jetonv1alpha1.DemarchesNumeriques && code == "forbidden" && isNetwork:
			if address != "" {
				return set(jetonv1alpha1.ReasonNetworkNotAllowed, "the API refuses this token from %s, the address jeton calls from (403, code forbidden): the token's allowed networks do not include it. The token itself is fine, do not regenerate it: add %s (the cluster's egress address) to the token's allowed networks in the Démarches Numériques administrator profile (/profil)", address, address)
			}
			return set(jetonv1alpha1.ReasonNetworkNotAllowed, "the API refuses this token from the address jeton calls from (403, code forbidden): the token's allowed networks do not include the cluster's egress address. The token itself is fine, do not regenerate it: add that address to the token's allowed networks in the Démarches Numériques administrator profile (/profil)")
		case code == "00100":
			return set(jetonv1alpha1.ReasonInsufficientPrivileges, "the token is valid but lacks the privileges for the check (403, code 00100): ask the API to grant them")
		case api == jetonv1alpha1.DemarchesNumeriques:
			return set(jetonv1alpha1.ReasonUnauthorized, "the API rejected the token as invalid or revoked (403%s): generate a new token in the Démarches Numériques administrator profile and update the Secret", withCode)
		default:
			return set(jetonv1alpha1.ReasonUnauthorized, "the API refused the token (403%s): check that the Secret holds the technical token for this API and environment", withCode)
		}

	case status >= 500:
		return set(jetonv1alpha1.ReasonServerError, "the API answered %d %s%s: the API itself is failing, the token may be fine; jeton keeps probing", status, http.StatusText(status), withCode)

	case status == http.StatusConflict:
		return set(jetonv1alpha1.ReasonUnexpectedResponse, "the API answered 409 Conflict%s: the same request is already in progress, as if something else probes with this token", withCode)

	case status >= 300 && status < 400:
		return set(jetonv1alpha1.ReasonUnexpectedResponse, "the API answered a redirect (%d), which the token check never does: check the base URL", status)

	case status == http.StatusNotFound:
		return set(jetonv1alpha1.ReasonUnexpectedResponse, "the token check endpoint was not found (404): check the base URL and the API")

	default:
		return set(jetonv1alpha1.ReasonUnexpectedResponse, "the API answered %d %s%s, which its token check never does: check the base URL and the API", status, http.StatusText(status), withCode)
	}
}

func classifyOK(api jetonv1alpha1.API, r Result, b body, parsed bool) Result {
	unexpected := func(format string, args ...any) Result {
		r.Reason, r.Message = jetonv1alpha1.ReasonUnexpectedResponse, fmt.Sprintf(format, args...)
		return r
	}
	if !parsed {
		return unexpected("the API answered 200 without the expected JSON body: check that the base URL points at the API, not at a web page or proxy")
	}
	ignored := ""
	switch api {
	case jetonv1alpha1.APIEntreprise:
		if b.Privileges == nil {
			return unexpected("the API answered 200 without a privileges list (neither data.privileges nor privileges): check that the base URL points at API Entreprise")
		}
		r.Privileges, r.IgnoredPrivileges = sanitize.ScopeNames(b.Privileges)
		ignored = "privilege"
	case jetonv1alpha1.APIParticulier:
		if b.Scopes == nil {
			return unexpected("the API answered 200 without a scopes list: check that the base URL points at API Particulier")
		}
		r.Privileges, r.IgnoredPrivileges = sanitize.ScopeNames(b.Scopes)
		ignored = "scope"
	case jetonv1alpha1.DemarchesNumeriques:
		// GraphQL answers 200 for field-level errors: data is null and errors say why.
		// Decoded, not matched as text: `"demarche": null` and `{"data":{}}` are no démarche
		// either (found by FuzzClassify).
		// A démarche is an object whose id, when present, is a string (GraphQL IDs are);
		// anything else is not the documented answer (found by FuzzClassify).
		var data struct {
			Demarche *struct {
				ID string `json:"id"`
			} `json:"demarche"`
		}
		if json.Unmarshal(b.Data, &data) != nil || data.Demarche == nil || len(b.Objects) > 0 || len(b.Flat) > 0 {
			switch r.Code {
			case "unauthorized":
				r.Reason = jetonv1alpha1.ReasonInsufficientPrivileges
				r.Message = "the token is valid but cannot read the démarche of spec.demarcheNumber (code unauthorized): give the token access to that démarche, or probe a démarche it can read"
				return r
			case "not_found":
				return unexpected("the démarche number of spec.demarcheNumber is unknown to the API (code not_found): set a démarche the token can read")
			default:
				return unexpected("the GraphQL answer has no démarche%s: check spec.demarcheNumber and the base URL", codeSuffix(r.Code))
			}
		}
	default:
		return unexpected("unknown API %q", api)
	}
	r.Reason = jetonv1alpha1.ReasonProbeSucceeded
	r.Message = "the API accepted the token"
	if r.IgnoredPrivileges > 0 {
		// A count only: the names themselves may be anything, the token included.
		r.Message += fmt.Sprintf("; %d unexpected %s names ignored (not shaped like scope names, or more than %d)",
			r.IgnoredPrivileges, ignored, sanitize.MaxScopes)
	}
	return r
}

func codeSuffix(code string) string {
	if code == "" {
		return ""
	}
	return " (code " + code + ")"
}

// waitNote says how long a 429 asked to wait, in seconds parsed from Retry-After (seconds
// or HTTP date) and RateLimit-Remaining/RateLimit-Reset, as RetryAt reads them. Header
// values never reach the message: one that does not parse only gives "asked to wait".
func waitNote(header http.Header, now time.Time) string {
	asked := strings.TrimSpace(header.Get("Retry-After")) != "" ||
		strings.TrimSpace(header.Get("RateLimit-Remaining")) == "0"
	if !asked {
		return ""
	}
	if at := RetryAt(header, now); !at.IsZero() {
		return fmt.Sprintf("; the API asked to wait %ds", int64(math.Ceil(at.Sub(now).Seconds())))
	}
	return "; the API asked to wait"
}
