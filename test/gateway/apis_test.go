package gateway

import (
	"net/http"
	"strings"
	"testing"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// TestGatewayAcrossTheAPIs calls API Particulier (X-Api-Key, as its v2 clients do) and
// Démarches Numériques (GraphQL: queries pass, mutations only where the Habilitation allows
// them) through the gateway, and checks what the API saw.
func TestGatewayAcrossTheAPIs(t *testing.T) {
	w := newWorld(t, "gw-apis", worldOptions{})
	ap := w.addClient("gw-apis-ap", jetonv1alpha1.APIParticulier)
	dn := w.addClient("gw-apis-dn", jetonv1alpha1.DemarchesNumeriques)
	writer := w.addClient("gw-apis-dn-writer", jetonv1alpha1.DemarchesNumeriques, func(h *jetonv1alpha1.Habilitation) {
		h.Spec.Gateway = &jetonv1alpha1.GatewayPolicy{AllowMutations: true}
	})

	t.Run("API Particulier with X-Api-Key: the recipient is set, the token sent as the API wants", func(t *testing.T) {
		resp, body := w.call(0, "GET", "/v3/france_travail/statut/identifiant?identifiant=A1B2C3", "", nil, "X-Api-Key", ap.credential)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %.300s", resp.StatusCode, body)
		}
		got := w.requestsSince(ap.tokenID, 0)
		if len(got) != 1 || got[0].Recipient != ap.siret || !got[0].Authorization || got[0].APIKey {
			t.Errorf("the API saw %+v, want one call with recipient %s and the token as Bearer (v3)", got, ap.siret)
		}
	})

	query := `{"query":"query { demarche(number: 1) { id } }"}`
	mutation := `{"query":"mutation { dossierPasserEnInstruction(input: {dossierId: \"RG9zc2llci0x\", instructeurId: \"SW5zdHJ1Y3RldXItMQ==\"}) { errors { message } } }"}`
	t.Run("Démarches Numériques: a query passes, a mutation is refused in GraphQL's error format", func(t *testing.T) {
		resp, body := w.call(0, "POST", "/api/v2/graphql", dn.credential, strings.NewReader(query), "Content-Type", "application/json")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("query: status %d: %.300s", resp.StatusCode, body)
		}
		resp, body = w.call(0, "POST", "/api/v2/graphql", dn.credential, strings.NewReader(mutation), "Content-Type", "application/json")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `"extensions"`) || !strings.Contains(string(body), "JETON_MUTATION_NOT_ALLOWED") {
			t.Fatalf("mutation: status %d, body %.300s; want 403 with a GraphQL error and a jeton code", resp.StatusCode, body)
		}
		got := w.requestsSince(dn.tokenID, 0)
		if len(got) != 1 || got[0].Mutation {
			t.Errorf("the API saw %+v, want the query only", got)
		}
	})

	t.Run("Démarches Numériques: a Habilitation that allows mutations sends them", func(t *testing.T) {
		resp, body := w.call(0, "POST", "/api/v2/graphql", writer.credential, strings.NewReader(mutation), "Content-Type", "application/json")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %.300s", resp.StatusCode, body)
		}
		if got := w.requestsSince(writer.tokenID, 0); len(got) != 1 || !got[0].Mutation {
			t.Errorf("the API saw %+v, want the mutation", got)
		}
	})
}
