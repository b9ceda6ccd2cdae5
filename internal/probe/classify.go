// Package probe checks technical tokens against each API's own token check, classifies the
// answers, and schedules the checks so that no API is ever hammered: one request in flight
// per token, Retry-After and RateLimit-* honoured, a host-wide backoff on 429 and a
// per-host rate limit below the vendor's per-IP quota.
//
// Nothing here ever puts a token in a message: messages are built from the status code,
// the API's error code and our own words, never from the response body or headers.
package probe

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
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
	// Privileges the API reported (API Entreprise privileges, API Particulier scopes).
	Privileges []string
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

// plainCode reports whether c is short and made of ASCII letters, digits and underscores.
func plainCode(c string) bool {
	if len(c) > maxCodeLen {
		return false
	}
	for _, r := range c {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
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

// Classify classifies one answer of an API's token check. It tolerates empty and non-JSON
// bodies (API Entreprise answers 429 with an empty body).
func Classify(api jetonv1alpha1.API, status int, header http.Header, raw []byte) Result {
	var b body
	parsed := len(raw) > 0 && json.Unmarshal(raw, &b) == nil
	code := b.firstCode()
	r := Result{HTTPStatus: status, Code: code}
	set := func(reason, format string, args ...any) Result {
		r.Reason, r.Message = reason, fmt.Sprintf(format, args...)
		return r
	}
	withCode := ""
	if code != "" {
		withCode = " (code " + code + ")"
	}

	switch {
	case status == http.StatusOK:
		return classifyOK(api, r, b, parsed)

	case status == http.StatusTooManyRequests:
		wait := ""
		if ra := header.Get("Retry-After"); ra != "" {
			wait = "; the API asked to wait (Retry-After: " + sanitizeHeader(ra) + ")"
		}
		return set(jetonv1alpha1.ReasonRateLimited,
			"the API answered 429 Too Many Requests%s%s; jeton backs off every probe of this host until the API allows requests again. If this persists, something else is using the vendor's quota", withCode, wait)

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
	switch api {
	case jetonv1alpha1.APIEntreprise:
		if b.Privileges == nil {
			return unexpected("the API answered 200 without a privileges list: check that the base URL points at API Entreprise")
		}
		r.Privileges = b.Privileges
	case jetonv1alpha1.APIParticulier:
		if b.Scopes == nil {
			return unexpected("the API answered 200 without a scopes list: check that the base URL points at API Particulier")
		}
		r.Privileges = b.Scopes
	case jetonv1alpha1.DemarchesNumeriques:
		// GraphQL answers 200 for field-level errors: data is null and errors say why.
		// Decoded, not matched as text: `"demarche": null` and `{"data":{}}` are no démarche
		// either (found by FuzzClassify).
		var data struct {
			Demarche json.RawMessage `json:"demarche"`
		}
		_ = json.Unmarshal(b.Data, &data)
		if !strings.HasPrefix(string(data.Demarche), "{") || len(b.Errors) > 0 {
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
	return r
}

func codeSuffix(code string) string {
	if code == "" {
		return ""
	}
	return " (code " + code + ")"
}

// sanitizeHeader keeps a header value short and printable before it goes into a message.
func sanitizeHeader(v string) string {
	v = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, v)
	if len(v) > 40 {
		v = v[:40]
	}
	return v
}
