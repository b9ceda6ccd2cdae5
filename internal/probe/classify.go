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

// apiError covers both error formats: API Entreprise/Particulier `{"errors":[{"code":...}]}`
// and GraphQL `{"errors":[{"message":...,"extensions":{"code":...}}]}`.
type apiError struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	Extensions struct {
		Code string `json:"code"`
	} `json:"extensions"`
}

type body struct {
	Errors     []apiError      `json:"errors"`
	Privileges []string        `json:"privileges"`
	Scopes     []string        `json:"scopes"`
	Data       json.RawMessage `json:"data"`
}

// firstCode returns the first error code of the body, whichever format it uses. Only
// codes that look like the APIs' own (00101, forbidden, too_many_requests) are kept: the
// code goes into status, events and logs, and a proxy or a wrong base URL may put
// anything there, the echoed token included (found by FuzzClassify).
func (b body) firstCode() string {
	for _, e := range b.Errors {
		for _, c := range []string{e.Code, e.Extensions.Code} {
			if c != "" {
				if !plainCode(c) {
					return ""
				}
				return c
			}
		}
	}
	return ""
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

// firstMessage returns the first GraphQL error message. Only used to recognise the
// Démarches Numériques "Token expired" answer, never copied into our messages.
func (b body) firstMessage() string {
	for _, e := range b.Errors {
		if e.Message != "" {
			return e.Message
		}
	}
	return ""
}

// Classify classifies one answer of an API's token check, received now. It tolerates empty
// and non-JSON bodies (API Entreprise answers 429 with an empty body).
func Classify(api jetonv1alpha1.API, status int, header http.Header, raw []byte) Result {
	return ClassifyAt(api, status, header, raw, time.Now())
}

// ClassifyAt is Classify for an answer received at now, the time an HTTP-date Retry-After
// is counted from.
func ClassifyAt(api jetonv1alpha1.API, status int, header http.Header, raw []byte, now time.Time) Result {
	var b body
	parsed := len(raw) > 0 && json.Unmarshal(raw, &b) == nil
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
		switch {
		case api == jetonv1alpha1.DemarchesNumeriques && strings.Contains(strings.ToLower(b.firstMessage()), "expired"):
			return set(jetonv1alpha1.ReasonExpired, "the API says the token has expired (401%s): generate a new token in the Démarches Numériques administrator profile and update the Secret", withCode)
		case code == "00103":
			return set(jetonv1alpha1.ReasonExpired, "the API says the token has expired (401, code 00103): renew it on the API portal and update the Secret")
		case code == "00105":
			return set(jetonv1alpha1.ReasonRevoked, "the API says the token was revoked (401, code 00105): ask for a new token on the API portal and update the Secret")
		default:
			return set(jetonv1alpha1.ReasonUnauthorized, "the API rejected the token (401%s): check that the Secret holds the complete technical token for this API and environment", withCode)
		}

	case status == http.StatusForbidden:
		switch {
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
			return unexpected("the API answered 200 without a privileges list: check that the base URL points at API Entreprise")
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
		if json.Unmarshal(b.Data, &data) != nil || data.Demarche == nil || len(b.Errors) > 0 {
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
