package emulator

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// The data routes, for the gateway's tests: a few real routes of each API, with the
// parameters their backends require, checked in the backends' order, the same auth,
// limits and behaviours as the token checks (serve), and bodies of the right shape.
// Answers never echo what the caller sent beyond what the real API echoes (the SIRET or
// SIREN of the path); the bodies are the backends' mock payloads, trimmed.
//
// Not emulated: per-route scopes (siade ScopesAuthorizationService; the emulator's scopes
// are free-form, use the InsufficientPrivileges behaviour), the `token` query parameter
// siade also accepts, and siade's 00211 "recipient identical to the SIRET called": it is
// in siade/config/errors.yml but no code raises it, so the real API accepts it.

func (s *Server) dataRoutes() {
	// siade/config/routes/api_entreprise.rb, namespace :insee.
	s.mux.HandleFunc("GET /v3/insee/sirene/etablissements/{siret}", s.entrepriseEtablissement)
	s.mux.HandleFunc("GET /v3/insee/sirene/unites_legales/{siren}", s.entrepriseUniteLegale)
	// siade/config/routes/api_particulier.rb.
	s.mux.HandleFunc("GET /v3/france_travail/statut/identifiant", s.particulierStatutV3)
	s.mux.HandleFunc("GET /api/v2/situations-pole-emploi", s.particulierStatutV2)
}

// contentTypeJSONAPI is what siade's v3 controllers set before rendering
// (V3AndMore::BaseController#set_content_type_header!, a before_action that runs after
// the token, mandatory-parameter and recipient checks).
const contentTypeJSONAPI = "application/vnd.api+json"

// siadeParam returns a query parameter as Rails' params do (Rack keeps the last of
// repeated values) and whether it is `blank?`: absent, empty or white space only.
func siadeParam(q url.Values, name string) (value string, blank bool) {
	vs := q[name]
	if len(vs) == 0 {
		return "", true
	}
	v := vs[len(vs)-1]
	return v, strings.TrimSpace(v) == ""
}

// siadeSIRET is siade's SiretFormatValidator (siade/app/validators/siret_format_validator.rb):
// 14 ASCII digits with a Luhn checksum, or any SIRET of La Poste (starting 356000000:
// siade checks no sum for them, unlike internal/siret).
func siadeSIRET(v string) bool {
	return digits(v, 14) && (strings.HasPrefix(v, "356000000") || luhn(v))
}

// siadeSIREN is SirenFormatValidator: 9 ASCII digits with a Luhn checksum.
func siadeSIREN(v string) bool { return digits(v, 9) && luhn(v) }

func digits(v string, n int) bool {
	if len(v) != n {
		return false
	}
	for i := range len(v) {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

func luhn(v string) bool {
	sum := 0
	for i := range len(v) {
		d := int(v[len(v)-1-i] - '0')
		if i%2 == 1 {
			if d *= 2; d >= 10 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// recordedRecipient is what the request log keeps of the recipient: the value when it
// came once and is 14 ASCII digits (a SIRET's shape), and how many values came.
func recordedRecipient(r *http.Request) (string, int) {
	vs := r.URL.Query()["recipient"]
	if len(vs) == 1 && digits(vs[0], 14) {
		return vs[0], 1
	}
	return "", len(vs)
}

// Errors of siade/config/errors.yml met by the data routes.
func siadeMissingParam(name, code string) siadeError {
	return siadeError{code, "Entité non traitable", "Le paramètre " + name + " est obligatoire", object{{"parameter", name}}}
}

func siadeInvalidRecipient() siadeError {
	return siadeError{"00210", "Entité non traitable", "Le paramètre recipient n'est pas un siret valide", object{{"parameter", "recipient"}}}
}

// entrepriseChecks runs API Entreprise's parameter checks, in the order of siade's
// before_actions: HasMandatoryParams#context_is_filled! (422, every missing one, in the
// order context, recipient, object: siade/app/controllers/concerns/api_entreprise/
// has_mandatory_params.rb, MissingMandatoryParamError 00201/00203/00202), then
// RecipientManagement#verify_recipient_is_a_siret! (422 00210 InvalidRecipientError).
// Both render before the v3 content type is set: Rails' JSON content type.
func entrepriseChecks(w http.ResponseWriter, r *http.Request) bool {
	q := r.URL.Query()
	var missing []object
	for _, p := range []struct{ name, code string }{{"context", "00201"}, {"recipient", "00203"}, {"object", "00202"}} {
		if _, blank := siadeParam(q, p.name); blank {
			missing = append(missing, siadeMissingParam(p.name, p.code).jsonAPI())
		}
	}
	if len(missing) > 0 {
		writeRaw(w, http.StatusUnprocessableEntity, contentTypeRails, object{{"errors", missing}})
		return false
	}
	if recipient, _ := siadeParam(q, "recipient"); !siadeSIRET(recipient) {
		writeSiadeJSONAPI(w, http.StatusUnprocessableEntity, contentTypeRails, siadeInvalidRecipient())
		return false
	}
	return true
}

// entrepriseEtablissement is GET /v3/insee/sirene/etablissements/{siret}
// (siade/app/controllers/api_entreprise/v3_and_more/insee/etablissements_controller.rb).
func (s *Server) entrepriseEtablissement(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, jetonv1alpha1.APIEntreprise, bearer(r), endpoint{data: true}, func(w http.ResponseWriter, v view) {
		if !entrepriseChecks(w, r) {
			return
		}
		siret := r.PathValue("siret")
		if !siadeSIRET(siret) { // INSEE::Etablissement's ValidateParams: 00302, render_errors
			writeSiadeJSONAPI(w, http.StatusUnprocessableEntity, contentTypeJSONAPI, siadeError{"00302", "Entité non traitable",
				"Le numéro de siret n'est pas correctement formatté", object{{"parameter", "siret"}}})
			return
		}
		if v.behaviour == LargeAnswer {
			writeLarge(w, contentTypeJSONAPI, v.largeBytes)
			return
		}
		// The shape of EtablissementSerializer::V3 (data, links, meta), values from
		// mocks/payloads/api_entreprise_v3_insee_etablissements/200.yaml; the SIRET and its
		// SIREN are the path's, as the real API answers about the SIRET asked for.
		siren := siret[:9]
		writeRaw(w, http.StatusOK, contentTypeJSONAPI, object{
			{"data", object{
				{"siret", siret}, {"siege_social", true}, {"etat_administratif", "A"}, {"date_fermeture", nil},
				{"enseigne", nil}, {"activite_principale", naf8411Z}, {"tranche_effectif_salarie", effectif51},
				{"diffusable_commercialement", true}, {"status_diffusion", "diffusible"}, {"date_creation", 1634103818},
				{"unite_legale", uniteLegale(siren, siret)},
				{"adresse", object{{"numero_voie", "22"}, {"type_voie", "RUE"}, {"libelle_voie", "DE LA PAIX"},
					{"code_commune", "75112"}, {"code_postal", "75016"}, {"libelle_commune", "PARIS 12"}, {"status_diffusion", "diffusible"}}},
			}},
			{"links", object{{"unite_legale", "https://entreprise.api.gouv.fr/v3/insee/sirene/unites_legales/" + siren}}},
			{"meta", object{{"date_derniere_mise_a_jour", 1618396818}, {"redirect_from_siret", nil}}},
		})
	})
}

// entrepriseUniteLegale is GET /v3/insee/sirene/unites_legales/{siren}
// (siade/app/controllers/api_entreprise/v3_and_more/insee/unites_legales_controller.rb).
func (s *Server) entrepriseUniteLegale(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, jetonv1alpha1.APIEntreprise, bearer(r), endpoint{data: true}, func(w http.ResponseWriter, v view) {
		if !entrepriseChecks(w, r) {
			return
		}
		siren := r.PathValue("siren")
		if !siadeSIREN(siren) { // INSEE::UniteLegale's ValidateParams: 00301
			writeSiadeJSONAPI(w, http.StatusUnprocessableEntity, contentTypeJSONAPI, siadeError{"00301", "Entité non traitable",
				"Le numéro de siren n'est pas correctement formatté", object{{"parameter", "siren"}}})
			return
		}
		if v.behaviour == LargeAnswer {
			writeLarge(w, contentTypeJSONAPI, v.largeBytes)
			return
		}
		// UniteLegaleSerializer::V3: links to the head office, meta.
		siege := siren + "00013"
		writeRaw(w, http.StatusOK, contentTypeJSONAPI, object{
			{"data", uniteLegale(siren, siege)},
			{"links", object{
				{"siege_social", "https://entreprise.api.gouv.fr/v3/insee/sirene/etablissements/" + siege},
				{"siege_social_adresse", "https://entreprise.api.gouv.fr/v3/insee/sirene/etablissements/" + siege + "/adresse"},
			}},
			{"meta", object{{"date_derniere_mise_a_jour", 1618396818}, {"redirect_from_siren", nil}}},
		})
	})
}

var (
	naf8411Z   = object{{"code", "8411Z"}, {"libelle", "Administration publique générale"}, {"nomenclature", "NAFRev2"}}
	effectif51 = object{{"code", "51"}, {"intitule", "2 000 à 4 999 salariés"}, {"date_reference", "2016"}, {"de", 2000}, {"a", 4999}}
)

// uniteLegale is a public body's unité légale, from the same mock payload.
func uniteLegale(siren, siege string) object {
	return object{
		{"siren", siren}, {"rna", nil}, {"siret_siege_social", siege}, {"categorie_entreprise", "GE"},
		{"type", "personne_morale"},
		{"personne_morale_attributs", object{{"raison_sociale", "DIRECTION INTERMINISTERIELLE DU NUMERIQUE"}, {"sigle", "DINUM"}}},
		{"personne_physique_attributs", object{}},
		{"diffusable_commercialement", true}, {"status_diffusion", "diffusible"},
		{"forme_juridique", object{{"code", "7120"}, {"libelle", "Service central d'un ministère"}}},
		{"activite_principale", naf8411Z}, {"tranche_effectif_salarie", effectif51},
		{"etat_administratif", "A"}, {"economie_sociale_et_solidaire", false}, {"date_cessation", nil}, {"date_creation", 1634103818},
	}
}

// particulierCredential is how siade finds the token: Authorization: Bearer first, then
// X-Api-Key (siade/app/lib/user_resolution_middleware.rb), on v2 and v3 alike.
func particulierCredential(r *http.Request) string {
	if c := bearer(r); c != "" {
		return c
	}
	return strings.TrimSpace(r.Header.Get("X-Api-Key"))
}

// particulierStatutV3 is GET /v3/france_travail/statut/identifiant
// (siade/app/controllers/api_particulier/v3_and_more/france_travail/statut_with_identifiant_controller.rb).
func (s *Server) particulierStatutV3(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, jetonv1alpha1.APIParticulier, particulierCredential(r), endpoint{data: true}, func(w http.ResponseWriter, v view) {
		q := r.URL.Query()
		// V3AndMore::BaseController#verify_recipient_is_a_siret!: recipient is mandatory
		// (a blank one is no SIRET), 422 00210, before the v3 content type is set.
		if recipient, _ := siadeParam(q, "recipient"); !siadeSIRET(recipient) {
			writeSiadeJSONAPI(w, http.StatusUnprocessableEntity, contentTypeRails, siadeInvalidRecipient())
			return
		}
		// FranceTravail::ValidateIdentifiantPresence: 00380 (no source in errors.yml), 422.
		if _, blank := siadeParam(q, "identifiant"); blank {
			writeSiadeJSONAPI(w, http.StatusUnprocessableEntity, contentTypeJSONAPI, siadeError{"00380", "Entité non traitable", "L'identifiant est manquant", nil})
			return
		}
		if v.behaviour == LargeAnswer {
			writeLarge(w, contentTypeJSONAPI, v.largeBytes)
			return
		}
		// StatutSerializer::V3 for a token with the pole_emploi_identite and
		// pole_emploi_inscription scopes, values from
		// mocks/payloads/api_particulier_v3_france_travail_statut_with_identifiant; the
		// identifiant is not echoed (it needs pole_emploi_identifiant).
		writeRaw(w, http.StatusOK, contentTypeJSONAPI, object{
			{"data", object{
				{"identite", object{{"civilite", "M."}, {"nom_naissance", "DUPONT"}, {"nom_usage", nil}, {"prenom", "JEAN"}, {"sexe", "Masculin"}, {"date_naissance", "1990-01-01"}}},
				{"inscription", object{{"date_inscription", "2020-01-01"}, {"date_cessation_inscription", nil}, {"code_certification_cnav", "VC"},
					{"categorie", object{{"code", 1}, {"libelle", "PERSONNE SANS EMPLOI DISPONIBLE DUREE INDETERMINEE PLEIN TPS"}}}}},
			}},
			{"links", object{}},
			{"meta", object{}},
		})
	})
}

// particulierStatutV2 is GET /api/v2/situations-pole-emploi
// (siade/app/controllers/api_particulier/v2/pole_emploi/statut_controller.rb).
func (s *Server) particulierStatutV2(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, jetonv1alpha1.APIParticulier, particulierCredential(r), endpoint{data: true}, func(w http.ResponseWriter, v view) {
		q := r.URL.Query()
		// V2::BaseController#verify_recipient_is_a_siret_or_nil!: optional, but a SIRET
		// when present; 400 in v2's own format.
		if recipient, blank := siadeParam(q, "recipient"); !blank && !siadeSIRET(recipient) {
			writeParticulierBadRequest(w, contentTypeRails, siadeInvalidRecipient().detail)
			return
		}
		// ValidateIdentifiantPresence, rendered by V2::BaseController#render_errors.
		if _, blank := siadeParam(q, "identifiant"); blank {
			writeParticulierBadRequest(w, contentTypeRack, "L'identifiant est manquant")
			return
		}
		if v.behaviour == LargeAnswer {
			writeLarge(w, contentTypeRails, v.largeBytes)
			return
		}
		// mocks/payloads/api_particulier_v2_pole_emploi_statut/200.yaml, trimmed, without
		// the identifiant echoed.
		writeRaw(w, http.StatusOK, contentTypeRails, object{
			{"civilite", "M."}, {"nom", "DUPONT"}, {"nomUsage", nil}, {"prenom", "JEAN"}, {"sexe", "Masculin"},
			{"codeCertificationCNAV", "VC"}, {"libelleCategorieInscription", "PERSONNE SANS EMPLOI DISPONIBLE DUREE INDETERMINEE PLEIN TPS"},
			{"dateNaissance", "1990-01-01"}, {"dateInscription", "2020-01-01"}, {"dateCessationInscription", nil}, {"codeCategorieInscription", 1},
		})
	})
}

// writeParticulierBadRequest is V2::BaseController#format_wrong_parameter_error, 400.
func writeParticulierBadRequest(w http.ResponseWriter, contentType, detail string) {
	writeRaw(w, http.StatusBadRequest, contentType, object{{"error", "bad_request"}, {"reason", detail}, {"message", detail}})
}

// Bounds of SetLargeAnswer: room for the JSON around the padding, and no more than a
// benchmark needs.
const (
	minLargeAnswer = int64(len(largePrefix) + len(largeSuffix))
	maxLargeAnswer = int64(16) << 30
)

const (
	largePrefix = `{"data":{"padding":"`
	largeSuffix = `"},"links":{},"meta":{}}`
)

// filler is written over and over: a large answer is streamed, never held.
var filler = bytes.Repeat([]byte("x"), 32<<10)

// writeLarge answers 200 with a JSON body of exactly n bytes, with Content-Length.
func writeLarge(w http.ResponseWriter, contentType string, n int64) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, largePrefix); err != nil {
		return // the client is gone
	}
	for pad := n - minLargeAnswer; pad > 0; {
		k := min(pad, int64(len(filler)))
		if _, err := w.Write(filler[:k]); err != nil {
			return
		}
		pad -= k
	}
	_, _ = io.WriteString(w, largeSuffix)
}

// graphql is Démarches Numériques' POST /api/v2/graphql: the démarche query jeton's
// prober sends and the queries and mutations of client workloads. The emulator accepts
// mutations, as Démarches Numériques does for a token with write access
// (app/graphql/mutations/base_mutation.rb#ready?), so a gateway's refusal shows.
func (s *Server) graphql(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	op, qerr := parseGraphQLRequest(body)
	if err != nil {
		qerr = fmt.Errorf("reading body: %v", err)
	}
	mutation := qerr == nil && op.kind == "mutation"
	var number int64
	if qerr == nil && !mutation {
		number, qerr = parseDemarcheQuery(body)
	}
	s.serve(w, r, jetonv1alpha1.DemarchesNumeriques, bearer(r), endpoint{mutation: mutation}, func(w http.ResponseWriter, v view) {
		switch {
		case qerr != nil:
			writeJSON(w, http.StatusBadRequest, dnErrors(qerr.Error(), "bad_request"))
		case mutation:
			// A mutation's payload type (e.g. app/graphql/mutations/dossier_envoyer_message.rb):
			// the emulator runs nothing, and answers each selected field of the payload null
			// (errors: null is success), in the order selected.
			payload := object{}
			for _, f := range op.fields[0].sub {
				payload = append(payload, field{f.key, nil})
			}
			writeRaw(w, http.StatusOK, contentTypeRails, object{{"data", object{{op.fields[0].key, payload}}}})
		case len(v.scopes) > 0 && !slices.Contains(v.scopes, strconv.FormatInt(number, 10)):
			s.writeDN(w, InsufficientPrivileges)
		case v.behaviour == LargeAnswer:
			writeLarge(w, contentTypeRails, v.largeBytes)
		default:
			id := base64.StdEncoding.EncodeToString([]byte("Procedure-" + strconv.FormatInt(number, 10)))
			if s.legacy {
				writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"demarche": map[string]any{"id": id, "number": number}}})
				return
			}
			// graphql-ruby answers the fields in the order the query selects them.
			writeRaw(w, http.StatusOK, contentTypeRails, object{{"data", object{{"demarche", demarcheFields(op, id, number)}}}})
		}
	})
}

// demarcheFields answers the selected scalar fields of `demarche` the emulator knows (id,
// number, title, state), in the order selected; others are left out. A selection of none
// of them gets id and number, jeton's own check.
func demarcheFields(op gqlOperation, id string, number int64) object {
	out := object{}
	for _, f := range op.fields {
		if f.name != "demarche" {
			continue
		}
		for _, sf := range f.sub {
			switch sf.name {
			case "id":
				out = append(out, field{sf.key, id})
			case "number":
				out = append(out, field{sf.key, number})
			case "title":
				out = append(out, field{sf.key, "Démarche " + strconv.FormatInt(number, 10) + " (jeton emulator)"})
			case "state":
				out = append(out, field{sf.key, "publiee"})
			}
		}
	}
	if len(out) == 0 {
		out = object{{"id", id}, {"number", number}}
	}
	return out
}
