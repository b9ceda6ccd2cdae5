package gateway

import (
	"io"
	"strings"
	"testing"
)

// The rules' share of the latency the gateway adds (docs/benchmarks.md: p50 ≤ 0.3 ms).
func BenchmarkCheckRequest(b *testing.B) {
	b.Run("APIParticulier identity query", func(b *testing.B) {
		r := request("GET", "/v3/dss/quotient_familial/identite?nomNaissance=Martin&prenoms[]=Jean&prenoms[]=Pierre&anneeDateNaissance=1980&moisDateNaissance=1&jourDateNaissance=2&codeCogInseeCommuneNaissance=75056&sexeEtatCivil=M", "",
			"Authorization", "Bearer jgw1.x", "Accept", "application/json", "User-Agent", "app/1.0")
		b.ReportAllocs()
		for b.Loop() {
			if _, ref := CheckRequest(r, ap, clientSIRET, false, 64<<10); ref != nil {
				b.Fatal(ref)
			}
			_ = Route{Path: r.URL.Path}.UpstreamHeader(r.Header, ap, "token")
		}
	})
	b.Run("DemarchesNumeriques query", func(b *testing.B) {
		body := `{"query":"query getDossier($n: Int!) { dossier(number: $n) { id state champs { id label stringValue } annotations { id label stringValue } } }","operationName":"getDossier","variables":{"n":1}}`
		r := graphQLRequest(body)
		b.ReportAllocs()
		for b.Loop() {
			r.Body = io.NopCloser(strings.NewReader(body))
			if _, ref := CheckRequest(r, dn, "", false, 64<<10); ref != nil {
				b.Fatal(ref)
			}
		}
	})
}
