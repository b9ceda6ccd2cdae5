package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// Refusal is a request the gateway answers itself, never sent upstream.
type Refusal struct {
	Status int    // HTTP status
	Reason string // bounded enum, a metric label: one of the Reason* constants
	// Code is the jeton error code in the body, e.g. "JETON_RECIPIENT_MISMATCH": "JETON_"
	// and the upper-cased Reason, so client libraries and support tell it from the API's
	// own codes at a glance.
	Code string
	// Message is for the caller: it says what to do, is written by jeton (never echoes a
	// request's value) and is at most maxMessageLen bytes.
	Message string
	// Parameter names the query parameter at fault (JSON:API "source"), empty when none.
	Parameter string
}

// Reasons, the values of the refusal metric's "reason" label. The set is closed: no value
// ever comes from a request.
const (
	ReasonMissingCredential      = "missing_credential"
	ReasonInvalidCredential      = "invalid_credential"
	ReasonConflictingCredentials = "conflicting_credentials"
	ReasonNotReady               = "not_ready"
	ReasonFraming                = "framing"
	ReasonMethodNotAllowed       = "method_not_allowed"
	ReasonPathNotAllowed         = "path_not_allowed"
	ReasonBadQuery               = "bad_query"
	ReasonRecipientMismatch      = "recipient_mismatch"
	ReasonRecipientRepeated      = "recipient_repeated"
	ReasonBodyTooLarge           = "body_too_large"
	ReasonBadBody                = "bad_body"
	ReasonMutationNotAllowed     = "mutation_not_allowed"
	ReasonThrottled              = "throttled"
	ReasonUpstreamHeld           = "upstream_held"
	ReasonUpstreamUnreachable    = "upstream_unreachable"
)

// Reasons lists every Reason* value (for tests and for pre-creating metric series).
var Reasons = []string{
	ReasonMissingCredential, ReasonInvalidCredential, ReasonConflictingCredentials,
	ReasonNotReady, ReasonFraming, ReasonMethodNotAllowed, ReasonPathNotAllowed,
	ReasonBadQuery, ReasonRecipientMismatch, ReasonRecipientRepeated, ReasonBodyTooLarge,
	ReasonBadBody, ReasonMutationNotAllowed, ReasonThrottled, ReasonUpstreamHeld,
	ReasonUpstreamUnreachable,
}

// maxMessageLen bounds a refusal's message, whatever a caller of NewRefusal passes.
const maxMessageLen = 400

// refusalTitle is the JSON:API "title" of every refusal: the caller sees at once that the
// gateway, not the API, answered.
const refusalTitle = "Refused by the jeton gateway"

// NewRefusal builds a refusal. message is cut to maxMessageLen bytes (on a rune boundary)
// and control characters are replaced by spaces, so even a message built from a condition
// message stays one bounded line. The lead's handler uses it for the reasons it owns
// (not_ready, throttled, upstream_held, upstream_unreachable, invalid_credential).
func NewRefusal(status int, reason, message string) *Refusal {
	return &Refusal{
		Status:  status,
		Reason:  reason,
		Code:    "JETON_" + strings.ToUpper(reason),
		Message: boundMessage(message),
	}
}

// refuseParam is NewRefusal for a refusal about one query parameter (JSON:API source).
func refuseParam(status int, reason, parameter, message string) *Refusal {
	r := NewRefusal(status, reason, message)
	r.Parameter = parameter
	return r
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("gateway refusal %s (%d): %s", r.Reason, r.Status, r.Message)
}

// boundMessage makes message one line of at most maxMessageLen bytes of valid UTF-8.
func boundMessage(message string) string {
	var b strings.Builder
	for _, c := range message {
		if c == utf8.RuneError || c < 0x20 || c == 0x7f {
			c = ' '
		}
		if b.Len()+utf8.RuneLen(c) > maxMessageLen {
			break
		}
		b.WriteRune(c)
	}
	return b.String()
}

// jsonAPIError is one error in apistration's JSON:API format, the format of API Entreprise
// and API Particulier v3 errors: datagouv/apistration siade/app/serializers/errors_serializer.rb
// (json_api: code, title, detail, source, meta, with nil members compacted away) and
// siade/app/errors/application_error.rb (meta is {}); e.g. code 00210 has
// source {"parameter":"recipient"} in siade/config/errors.yml.
type jsonAPIError struct {
	Code   string            `json:"code"`
	Title  string            `json:"title"`
	Detail string            `json:"detail"`
	Source *jsonAPISource    `json:"source,omitempty"`
	Meta   map[string]string `json:"meta"`
}

type jsonAPISource struct {
	Parameter string `json:"parameter"`
}

// graphQLError is one error in Démarches Numériques' format: demarches-simplifiees.fr
// app/controllers/api/v2/base_controller.rb graphql_error: {"errors":[{"message",
// "extensions":{"code"}}],"data":null}.
type graphQLError struct {
	Message    string            `json:"message"`
	Extensions map[string]string `json:"extensions"`
}

// refusalBody is ref in api's own error format.
func refusalBody(api jetonv1alpha1.API, ref *Refusal) []byte {
	var v any
	if api == jetonv1alpha1.DemarchesNumeriques {
		v = struct {
			Errors []graphQLError `json:"errors"`
			Data   any            `json:"data"`
		}{Errors: []graphQLError{{Message: ref.Message, Extensions: map[string]string{"code": ref.Code}}}}
	} else {
		e := jsonAPIError{Code: ref.Code, Title: refusalTitle, Detail: ref.Message, Meta: map[string]string{}}
		if ref.Parameter != "" {
			e.Source = &jsonAPISource{Parameter: ref.Parameter}
		}
		v = struct {
			Errors []jsonAPIError `json:"errors"`
		}{Errors: []jsonAPIError{e}}
	}
	b, err := json.Marshal(v)
	if err != nil { // strings and maps of strings always marshal
		panic(err)
	}
	return b
}

// WriteRefusal writes ref in the API's own error format (so client libraries show it):
// JSON:API errors for API Entreprise and API Particulier, GraphQL errors for Démarches
// Numériques. It sets Content-Type, Cache-Control: no-store (a refusal is about this
// request, no cache may replay it), Retry-After in whole seconds rounded up when
// retryAfter > 0, and Allow on 405.
func WriteRefusal(w http.ResponseWriter, api jetonv1alpha1.API, ref *Refusal, retryAfter time.Duration) {
	if ref == nil {
		ref = NewRefusal(http.StatusInternalServerError, ReasonBadBody, "internal error: empty refusal")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((retryAfter+time.Second-1)/time.Second), 10))
	}
	if ref.Status == http.StatusMethodNotAllowed {
		h.Set("Allow", allowedMethod(api))
	}
	w.WriteHeader(ref.Status)
	_, _ = w.Write(refusalBody(api, ref))
}
