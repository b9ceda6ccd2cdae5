// Package fidelity holds the answers the public APIs' published backends give to jeton's
// token checks, byte for byte, each with its source. They are the reference for two
// things at once: the emulator must answer exactly these bytes (internal/emulator tests),
// and jeton's classification must read each of them right (internal/probe tests).
// docs/api-fidelity.md has a row per answer.
//
// Sources: datagouv/apistration ("siade", API Entreprise and API Particulier) and
// demarches-simplifiees/demarches-simplifiees.fr (Démarches Numériques), read in their
// current code, not in older documentation.
package fidelity

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// Now is the time every answer is given at (RateLimit-Reset and Retry-After count from
// it): 5 s into a minute.
var Now = time.Date(2026, 3, 2, 10, 0, 5, 0, time.UTC)

// RetryAfter is the wait of the throttled answers, in seconds.
const RetryAfter = 32

// TokenID stands for the token's id in bodies that echo it (API Particulier's `_id`).
const TokenID = "{{jti}}"

// RemoteAddr is the address the answers that name the caller's address saw.
const RemoteAddr = "192.0.2.1"

// The header names compared: every one of them is either as in Header or absent.
var Compared = []string{"Content-Type", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}

// Answer is one answer of a backend to one token check.
type Answer struct {
	// Name identifies the answer in tests and in docs/api-fidelity.md.
	Name string
	API  jetonv1alpha1.API
	// Case says what the token or the caller is.
	Case   string
	Status int
	// Header holds the Compared headers the answer carries.
	Header http.Header
	Body   string
	// Source is the repository path the bytes come from.
	Source string
	// Legacy: the shape of the older documentation (the emulator's WithLegacyShapes).
	Legacy bool
	// Reason and Code are how jeton classifies the answer.
	Reason, Code string
}

const (
	railsJSON = "application/json; charset=utf-8"
	rackJSON  = "application/json"
)

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func epoch(d time.Duration) string { return strconv.FormatInt(Now.Add(d).Unix(), 10) }

// siadeThrottled are the headers of siade's Rack::Attack throttled responder.
func siadeThrottled(limit int) http.Header {
	return header("Content-Type", rackJSON, "Retry-After", strconv.Itoa(RetryAfter),
		"RateLimit-Limit", strconv.Itoa(limit), "RateLimit-Remaining", "0", "RateLimit-Reset", epoch(RetryAfter*time.Second))
}

const (
	srcPrivileges    = "datagouv/apistration siade/app/controllers/api_entreprise/privileges_controller.rb"
	srcIntrospect    = "datagouv/apistration siade/app/controllers/api_particulier/v2/introspect_controller.rb"
	srcAPIController = "datagouv/apistration siade/app/controllers/api_controller.rb, siade/app/serializers/errors_serializer.rb, siade/config/errors.yml"
	srcParticulierV2 = "datagouv/apistration siade/app/controllers/api_particulier/v2/base_controller.rb"
	srcRackAttack    = "datagouv/apistration siade/config/initializers/rack_attack.rb, siade/app/errors/"
	srcDNBase        = "demarches-simplifiees/demarches-simplifiees.fr app/controllers/api/v2/base_controller.rb"
	srcDNSchema      = "demarches-simplifiees/demarches-simplifiees.fr app/graphql/api/v2/schema.rb (graphql-ruby execution error)"
	srcDNRackAttack  = "demarches-simplifiees/demarches-simplifiees.fr config/initializers/rack_attack.rb"
)

const (
	ae = jetonv1alpha1.APIEntreprise
	ap = jetonv1alpha1.APIParticulier
	dn = jetonv1alpha1.DemarchesNumeriques
)

// Answers are the answers, one per case.
var Answers = []Answer{
	{Name: "ae-privileges", API: ae, Case: "valid token", Status: 200, Header: header("Content-Type", railsJSON),
		Body:   `{"data":{"privileges":["attestations_fiscales","unites_legales_etablissements_insee"]}}`,
		Source: srcPrivileges, Reason: jetonv1alpha1.ReasonProbeSucceeded},
	{Name: "ae-privileges-legacy", API: ae, Case: "valid token, legacy shape", Status: 200,
		Header: header("Content-Type", railsJSON, "RateLimit-Limit", "250", "RateLimit-Remaining", "249", "RateLimit-Reset", epoch(55*time.Second)),
		Body:   `{"privileges":["attestations_fiscales","unites_legales_etablissements_insee"]}` + "\n",
		Source: "API Entreprise's older documentation of /v2/privileges", Legacy: true, Reason: jetonv1alpha1.ReasonProbeSucceeded},
	{Name: "ae-invalid", API: ae, Case: "unknown or malformed token", Status: 401, Header: header("Content-Type", railsJSON),
		Body:   `{"errors":[{"code":"00101","title":"Interdit","detail":"Votre token n'est pas valide ou n'est pas renseigné","source":{"parameter":"token"},"meta":{}}]}`,
		Source: srcAPIController, Reason: jetonv1alpha1.ReasonUnauthorized, Code: "00101"},
	{Name: "ae-expired", API: ae, Case: "expired (the API's own record)", Status: 401, Header: header("Content-Type", railsJSON),
		Body:   `{"errors":[{"code":"00103","title":"Jeton expiré","detail":"Votre token est expiré. Vous devez refaire une demande à API Entreprise, un guide est disponible sur https://entreprise.api.gouv.fr/faq#comment-renouveler-mon-jeton-arrivant-a-expiration","source":{"parameter":"token"},"meta":{}}]}`,
		Source: srcAPIController, Reason: jetonv1alpha1.ReasonExpired, Code: "00103"},
	{Name: "ae-blacklisted", API: ae, Case: "revoked (blacklisted)", Status: 401, Header: header("Content-Type", rackJSON),
		Body:   `{"errors":[{"code":"00105","title":"Jeton sur liste noire","detail":"Votre jeton est sur liste noire, celui-ci a certainement été divulgué sur un canal non-sécurisé. Vous pouvez trouver un jeton valide sur votre espace personnel: https://entreprise.api.gouv.fr/compte","source":{"parameter":"token"},"meta":{}}]}`,
		Source: srcRackAttack + "blacklisted_token_error.rb", Reason: jetonv1alpha1.ReasonRevoked, Code: "00105"},
	{Name: "ae-insufficient-privileges", API: ae, Case: "valid token, privileges refused", Status: 403, Header: header("Content-Type", railsJSON),
		Body:   `{"errors":[{"code":"00100","title":"Privilèges insuffisants","detail":"Votre token est valide mais vos privilèges sont insuffisants. Listez vos privilèges sur /v2/privileges","source":{"parameter":"token"},"meta":{}}]}`,
		Source: srcAPIController, Reason: jetonv1alpha1.ReasonInsufficientPrivileges, Code: "00100"},
	{Name: "ae-ip-not-allowed", API: ae, Case: "caller's address outside the token's allow-list", Status: 403, Header: header("Content-Type", rackJSON),
		Body:   `{"errors":[{"code":"00107","title":"Adresse IP non autorisée","detail":"Votre adresse IP n'est pas autorisée à utiliser ce jeton.","source":{"header":"X-Forwarded-For"},"meta":{}}]}`,
		Source: srcRackAttack + "forbidden_ip_error.rb, siade/app/lib/ip_whitelist.rb", Reason: jetonv1alpha1.ReasonNetworkNotAllowed, Code: "00107"},
	{Name: "ae-throttled", API: ae, Case: "rate limited", Status: 429, Header: siadeThrottled(250),
		Body:   `{"errors":[{"code":"00429","title":"Trop de requêtes","detail":"Vous avez effectué trop de requêtes","meta":{}}]}`,
		Source: srcRackAttack + "too_many_requests_error.rb", Reason: jetonv1alpha1.ReasonRateLimited, Code: "00429"},
	{Name: "ae-throttled-empty", API: ae, Case: "rate limited, as seen on staging", Status: 429, Header: header("Retry-After", strconv.Itoa(RetryAfter)),
		Body: "", Source: "API Entreprise staging, observed (DESIGN.md §1)", Reason: jetonv1alpha1.ReasonRateLimited},

	{Name: "ap-introspect", API: ap, Case: "valid token", Status: 200, Header: header("Content-Type", railsJSON),
		Body:   `{"_id":"` + TokenID + `","name":"","scopes":["cnaf_quotient_familial"]}`,
		Source: srcIntrospect, Reason: jetonv1alpha1.ReasonProbeSucceeded},
	{Name: "ap-invalid", API: ap, Case: "unknown or malformed token", Status: 401, Header: header("Content-Type", railsJSON),
		Body:   `{"error":"access_denied","reason":"Votre token n'est pas valide ou n'est pas renseigné","message":"Votre token n'est pas valide ou n'est pas renseigné"}`,
		Source: srcParticulierV2 + " (format_unauthorized_error)", Reason: jetonv1alpha1.ReasonUnauthorized, Code: "access_denied"},
	{Name: "ap-expired", API: ap, Case: "expired (the API's own record)", Status: 401, Header: header("Content-Type", railsJSON),
		Body:   `{"errors":["Votre token est expiré. Vous devez refaire une demande à API Particulier, un guide est disponible sur https://particulier.api.gouv.fr/faq#comment-renouveler-mon-jeton-arrivant-a-expiration"]}`,
		Source: srcParticulierV2 + " (error_format flat), siade/app/serializers/errors_serializer.rb (flat)", Reason: jetonv1alpha1.ReasonExpired},
	{Name: "ap-blacklisted", API: ap, Case: "revoked (blacklisted)", Status: 401, Header: header("Content-Type", rackJSON),
		Body:   `{"errors":[{"code":"00105","title":"Jeton sur liste noire","detail":"Votre jeton est sur liste noire, celui-ci a certainement été divulgué sur un canal non-sécurisé. Vous pouvez trouver un jeton valide sur votre espace personnel: https://particulier.api.gouv.fr/compte","source":{"parameter":"token"},"meta":{}}]}`,
		Source: srcRackAttack + "blacklisted_token_error.rb (JSON:API: /api/introspect is not under /api/v2/)", Reason: jetonv1alpha1.ReasonRevoked, Code: "00105"},
	{Name: "ap-insufficient-privileges", API: ap, Case: "valid token, privileges refused", Status: 401, Header: header("Content-Type", railsJSON),
		Body:   `{"error":"access_denied","reason":"Votre token est valide mais vos privilèges sont insuffisants. Listez vos privilèges sur /api/introspect","message":"Votre token est valide mais vos privilèges sont insuffisants. Listez vos privilèges sur /api/introspect"}`,
		Source: srcParticulierV2 + " (user_not_authorized)", Reason: jetonv1alpha1.ReasonInsufficientPrivileges, Code: "access_denied"},
	{Name: "ap-ip-not-allowed", API: ap, Case: "caller's address outside the token's allow-list", Status: 403, Header: header("Content-Type", rackJSON),
		Body:   `{"errors":[{"code":"00107","title":"Adresse IP non autorisée","detail":"Votre adresse IP n'est pas autorisée à utiliser ce jeton.","source":{"header":"X-Forwarded-For"},"meta":{}}]}`,
		Source: srcRackAttack + "forbidden_ip_error.rb", Reason: jetonv1alpha1.ReasonNetworkNotAllowed, Code: "00107"},

	{Name: "dn-demarche", API: dn, Case: "valid token, démarche in scope", Status: 200, Header: header("Content-Type", railsJSON),
		Body:   `{"data":{"demarche":{"id":"UHJvY2VkdXJlLTQy","number":42}}}`,
		Source: "demarches-simplifiees/demarches-simplifiees.fr app/controllers/api/v2/graphql_controller.rb", Reason: jetonv1alpha1.ReasonProbeSucceeded},
	{Name: "dn-invalid", API: dn, Case: "unknown, malformed or revoked (deleted) token", Status: 403, Header: header("Content-Type", railsJSON),
		Body:   `{"errors":[{"message":"Without a token, only persisted queries are allowed","extensions":{"code":"forbidden"}}],"data":null}`,
		Source: srcDNBase + " (allow_only_persisted_queries)", Reason: jetonv1alpha1.ReasonUnauthorized, Code: "forbidden"},
	{Name: "dn-expired", API: dn, Case: "expired (the day after its expiry date)", Status: 401, Header: header("Content-Type", railsJSON),
		Body:   `{"errors":[{"message":"Token expired","extensions":{"code":"unauthorized"}}],"data":null}`,
		Source: srcDNBase + " (ensure_token_is_not_expired), app/models/api_token.rb", Reason: jetonv1alpha1.ReasonExpired, Code: "unauthorized"},
	{Name: "dn-forbidden-network", API: dn, Case: "caller's address outside the token's allowed networks", Status: 403, Header: header("Content-Type", railsJSON),
		Body:   `{"errors":[{"message":"Request issued from a forbidden network. Add ` + RemoteAddr + `/32 to your allowed adresses in your /profil","extensions":{"code":"forbidden"}}],"data":null}`,
		Source: srcDNBase + " (ensure_authorized_network)", Reason: jetonv1alpha1.ReasonNetworkNotAllowed, Code: "forbidden"},
	{Name: "dn-out-of-scope", API: dn, Case: "valid token, démarche out of its scope", Status: 200, Header: header("Content-Type", railsJSON),
		Body:   `{"errors":[{"message":"An object of type Demarche was hidden due to permissions","locations":[{"line":1,"column":3}],"path":["demarche"],"extensions":{"code":"unauthorized"}}],"data":null}`,
		Source: srcDNSchema + " unauthorized_object", Reason: jetonv1alpha1.ReasonInsufficientPrivileges, Code: "unauthorized"},
	{Name: "dn-not-found", API: dn, Case: "valid token, unknown démarche", Status: 200, Header: header("Content-Type", railsJSON),
		Body:   `{"errors":[{"message":"Demarche not found","locations":[{"line":1,"column":3}],"path":["demarche"],"extensions":{"code":"not_found"}}],"data":null}`,
		Source: srcDNSchema + " rescue_from RecordNotFound", Reason: jetonv1alpha1.ReasonUnexpectedResponse, Code: "not_found"},
	{Name: "dn-throttled", API: dn, Case: "rate limited (400/min per Authorization header)", Status: 429,
		Header: header("RateLimit-Remaining", "0", "RateLimit-Reset", epoch(RetryAfter*time.Second)),
		Body: "Calme toi, cowboy ! T'enchaines un peu trop les requêtes. Respire un peu réessaie dans un petit moment.\n" +
			"Calm down, cowboy! You're making too many requests. Take a breather and try again soon.\n",
		Source: srcDNRackAttack + " (throttled_responder: no Retry-After)", Reason: jetonv1alpha1.ReasonRateLimited},
	{Name: "dn-throttled-legacy", API: dn, Case: "rate limited, legacy shape", Status: 429,
		Header: header("Content-Type", railsJSON, "Retry-After", strconv.Itoa(RetryAfter), "RateLimit-Limit", "400", "RateLimit-Remaining", "0", "RateLimit-Reset", epoch(RetryAfter*time.Second)),
		Body:   `{"errors":[{"extensions":{"code":"too_many_requests"},"message":"Too many requests","path":["demarche"]}]}` + "\n",
		Source: "DESIGN.md §1 before the backends were read", Legacy: true, Reason: jetonv1alpha1.ReasonRateLimited, Code: "too_many_requests"},
}

// WithTokenID returns body with the token id in place of TokenID.
func WithTokenID(body, id string) string { return strings.ReplaceAll(body, TokenID, id) }
