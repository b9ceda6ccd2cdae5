package emulator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// The answers of the published backends, byte for byte: datagouv/apistration ("siade",
// API Entreprise and API Particulier) and demarches-simplifiees/demarches-simplifiees.fr
// (Démarches Numériques). Each names its source. Rails renders `render json:` with
// ActiveSupport's encoder: keys in the order written, no spaces, no trailing newline, and
// <, >, & escaped as \u003c, \u003e, \u0026, as encoding/json does; the order is kept
// here with object.

// object is a JSON object whose keys keep the order they were written in.
type object []field

type field struct {
	key   string
	value any
}

// MarshalJSON writes the fields in order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Content types: Rails' `render json:` adds the charset; siade's Rack::Attack responders
// (siade/config/initializers/rack_attack.rb) set `application/json` alone.
const (
	contentTypeRails = "application/json; charset=utf-8"
	contentTypeRack  = "application/json"
)

// writeRaw writes body (marshalled without a trailing newline, as Rails does).
func writeRaw(w http.ResponseWriter, status int, contentType string, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		panic("emulator: " + err.Error()) // our own literals: a bug, not input
	}
	if contentType != "" {
		w.Header().Set("Content-Type", contentType)
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// siadeError is one entry of siade/config/errors.yml, as ErrorsSerializer renders it in
// the JSON:API format (siade/app/serializers/errors_serializer.rb, `json_api`: code, title,
// detail, source, meta, nil values compacted away).
type siadeError struct {
	code, title, detail string
	source              object // nil: no source
}

func (e siadeError) jsonAPI() object {
	o := object{{"code", e.code}, {"title", e.title}, {"detail", e.detail}}
	if e.source != nil {
		o = append(o, field{"source", e.source})
	}
	return append(o, field{"meta", object{}})
}

var sourceToken = object{{"parameter", "token"}}

// The errors of siade/config/errors.yml (and their classes in siade/app/errors/) that the
// token checks can meet. api is "entreprise" or "particulier".
func siadeInvalidToken() siadeError {
	return siadeError{"00101", "Interdit", "Votre token n'est pas valide ou n'est pas renseigné", sourceToken}
}

func siadeExpiredToken(api jetonv1alpha1.API) siadeError {
	detail := "Votre token est expiré. Vous devez refaire une demande à API Entreprise, un guide est disponible sur https://entreprise.api.gouv.fr/faq#comment-renouveler-mon-jeton-arrivant-a-expiration"
	if api == jetonv1alpha1.APIParticulier {
		detail = "Votre token est expiré. Vous devez refaire une demande à API Particulier, un guide est disponible sur https://particulier.api.gouv.fr/faq#comment-renouveler-mon-jeton-arrivant-a-expiration"
	}
	return siadeError{"00103", "Jeton expiré", detail, sourceToken}
}

// siadeBlacklisted is BlacklistedTokenError: its dashboard URL is built from the first
// label of the host the request reached (entreprise, particulier).
func siadeBlacklisted(api jetonv1alpha1.API) siadeError {
	return siadeError{"00105", "Jeton sur liste noire",
		"Votre jeton est sur liste noire, celui-ci a certainement été divulgué sur un canal non-sécurisé. Vous pouvez trouver un jeton valide sur votre espace personnel: https://" + siadeHostLabel(api) + ".api.gouv.fr/compte",
		sourceToken}
}

func siadeInsufficientPrivileges(api jetonv1alpha1.API) siadeError {
	detail := "Votre token est valide mais vos privilèges sont insuffisants. Listez vos privilèges sur /v2/privileges"
	if api == jetonv1alpha1.APIParticulier {
		detail = "Votre token est valide mais vos privilèges sont insuffisants. Listez vos privilèges sur /api/introspect"
	}
	return siadeError{"00100", "Privilèges insuffisants", detail, sourceToken}
}

// siadeForbiddenIP is ForbiddenIpError (00107), answered by the "IP whitelist" blocklist.
func siadeForbiddenIP() siadeError {
	return siadeError{"00107", "Adresse IP non autorisée", "Votre adresse IP n'est pas autorisée à utiliser ce jeton.", object{{"header", "X-Forwarded-For"}}}
}

// siadeTooManyRequests is TooManyRequestsError: title and detail are the class's own, and
// 00429 has no entry in errors.yml, hence no source.
func siadeTooManyRequests() siadeError {
	return siadeError{"00429", "Trop de requêtes", "Vous avez effectué trop de requêtes", nil}
}

// siadeConflict is ConflictError (00015, "Conflit" in errors.yml).
func siadeConflict() siadeError {
	return siadeError{"00015", "Conflit", "Une requête identique est déjà en cours de traitement.", nil}
}

func siadeHostLabel(api jetonv1alpha1.API) string {
	if api == jetonv1alpha1.APIParticulier {
		return "particulier"
	}
	return "entreprise"
}

// writeSiadeJSONAPI writes errors in the JSON:API format `{"errors":[…]}`.
func writeSiadeJSONAPI(w http.ResponseWriter, status int, contentType string, e siadeError) {
	writeRaw(w, status, contentType, object{{"errors", []object{e.jsonAPI()}}})
}

// writeSiadeFlat writes siade's "flat" format, `{"errors":["<detail>"]}`
// (ErrorsSerializer#flat).
func writeSiadeFlat(w http.ResponseWriter, status int, e siadeError) {
	writeRaw(w, status, contentTypeRails, object{{"errors", []string{e.detail}}})
}

// writeParticulierAccessDenied writes API Particulier v2's own refusal
// (siade/app/controllers/api_particulier/v2/base_controller.rb, format_unauthorized_error).
func writeParticulierAccessDenied(w http.ResponseWriter, e siadeError) {
	writeRaw(w, http.StatusUnauthorized, contentTypeRails,
		object{{"error", "access_denied"}, {"reason", e.detail}, {"message", e.detail}})
}

// writeSiadeThrottled is siade's Rack::Attack throttled responder: RateLimit-* headers,
// Retry-After (seconds to the reset), and TooManyRequestsError in the JSON:API format (the
// flat one under /api/v2/, API Particulier's v2 data routes).
func writeSiadeThrottled(w http.ResponseWriter, limit int, reset, now time.Time, flat bool) {
	h := w.Header()
	setRateLimit(h, limit, 0, reset)
	h.Set("Retry-After", strconv.FormatInt(max(0, reset.Unix()-now.Unix()), 10))
	writeSiadeRack(w, http.StatusTooManyRequests, siadeTooManyRequests(), flat)
}

// writeSiadeRack writes an error of siade's Rack::Attack responders
// (siade/config/initializers/rack_attack.rb): `application/json` alone, JSON:API format,
// or flat `{"errors":["<detail>"]}` under /api/v2/.
func writeSiadeRack(w http.ResponseWriter, status int, e siadeError, flat bool) {
	if flat {
		writeRaw(w, status, contentTypeRack, object{{"errors", []string{e.detail}}})
		return
	}
	writeSiadeJSONAPI(w, status, contentTypeRack, e)
}

// dnGraphQLError is API::V2::BaseController#graphql_error
// (demarches-simplifiees.fr app/controllers/api/v2/base_controller.rb): errors, then
// `"data": null`.
func dnGraphQLError(message, code string) object {
	return object{{"errors", []object{{{"message", message}, {"extensions", object{{"code", code}}}}}}, {"data", nil}}
}

// writeDNControllerError writes an error of the API controller itself.
func writeDNControllerError(w http.ResponseWriter, status int, message, code string) {
	writeRaw(w, status, contentTypeRails, dnGraphQLError(message, code))
}

// dnFieldError is a GraphQL execution error on the `demarche` field, as graphql-ruby
// renders it (message, locations, path, extensions) when API::V2::Schema raises it
// (app/graphql/api/v2/schema.rb: unauthorized_object, rescue_from RecordNotFound). The
// field is non-null (app/graphql/types/query_type.rb), so data is null. The location is
// that of `demarche` in jeton's query `{ demarche(number: N) { id number } }`.
func dnFieldError(message, code string) object {
	return object{{"errors", []object{{
		{"message", message},
		{"locations", []object{{{"line", 1}, {"column", 3}}}},
		{"path", []string{"demarche"}},
		{"extensions", object{{"code", code}}},
	}}}, {"data", nil}}
}

// writeDNThrottled is Démarches Numériques' Rack::Attack throttled responder
// (config/initializers/rack_attack.rb): plain text, RateLimit-Remaining 0 and
// RateLimit-Reset (epoch), no Retry-After, no Content-Type.
func writeDNThrottled(w http.ResponseWriter, reset time.Time) {
	h := w.Header()
	h.Set("RateLimit-Remaining", "0")
	h.Set("RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	// net/http would sniff a Content-Type; Rack sends none.
	h["Content-Type"] = nil
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write([]byte(dnCowboy))
}

// dnCowboy is the body of Démarches Numériques' 429.
const dnCowboy = "Calme toi, cowboy ! T'enchaines un peu trop les requêtes. Respire un peu réessaie dans un petit moment.\n" +
	"Calm down, cowboy! You're making too many requests. Take a breather and try again soon.\n"

// dnForbiddenNetwork is the message of ensure_authorized_network: Ruby's
// IPAddr#to_string (IPv6 in full, zero-padded form) and #prefix of the caller's address.
func dnForbiddenNetwork(remote netip.Addr) string {
	prefix := 32
	if remote.Is6() {
		prefix = 128
	}
	return "Request issued from a forbidden network. Add " + rubyIPString(remote) + "/" + strconv.Itoa(prefix) + " to your allowed adresses in your /profil"
}

// rubyIPString is IPAddr#to_string: dotted IPv4, or IPv6 as eight 4-digit groups.
func rubyIPString(a netip.Addr) string {
	if a.Is4() {
		return a.String()
	}
	return a.StringExpanded()
}
