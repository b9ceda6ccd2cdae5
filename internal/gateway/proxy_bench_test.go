package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/publicapi"
	"github.com/jeton-dev/jeton/internal/token"
)

// The data plane's cost, measured with `go test -bench . -benchmem ./internal/gateway/`:
// the gateway's sub-benchmark against the direct one is what the gateway adds per request
// (credential check, rules, budgets, proxying, the access log). Both call the same
// in-process upstream, which answers like an API Entreprise data route. hack/bench's
// gateway scenario measures latency, throughput per core and memory on processes;
// docs/benchmarks.md ("Gateway") has the figures.

const (
	benchNamespace = "jeton-system"
	// benchHabilitations is how many Habilitations the requests rotate over, so that each
	// token stays under its own published limit (the gateway sends at most 85% of 250/min
	// per API Entreprise token, after a burst of 25): 2000 tokens carry about 7,000
	// requests/s sustained and 50,000 at once, more than this machine proxies. It also
	// exercises the store and the per-token state as many clients do, not one hot entry.
	benchHabilitations = 2000
	benchStreamBytes   = 50 << 20
)

// benchAnswer is about the size of an INSEE établissement answer of API Entreprise.
var benchAnswer = []byte(`{"data":{"siret":"` + strings.Repeat("0", 14) + `","siege_social":true,"etat_administratif":"A","date_creation":1234567890,` +
	`"unite_legale":{"siren":"000000000","type":"personne_morale","personne_morale_attributs":{"raison_sociale":"` + strings.Repeat("X", 200) + `"}},` +
	`"adresse":{"numero_voie":"1","type_voie":"RUE","libelle_voie":"` + strings.Repeat("Y", 300) + `","code_postal":"75001","libelle_commune":"PARIS"}},` +
	`"links":{},"meta":{"date_derniere_mise_a_jour":1234567890}}`)

// largeSIRET is the établissement whose answer is benchStreamBytes long: an ordinary data
// route, so the gateway's rules treat it as any other.
var largeSIRET = benchSIRET(999_999)

// benchUpstream answers every request that carries a token with benchAnswer, or with
// benchStreamBytes bytes for largeSIRET's établissement (streamed, never held).
func benchUpstream() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/"+largeSIRET) {
			w.Header().Set("Content-Length", strconv.Itoa(benchStreamBytes))
			chunk := make([]byte, 32<<10)
			for sent := 0; sent < benchStreamBytes; sent += len(chunk) {
				if _, err := w.Write(chunk[:min(len(chunk), benchStreamBytes-sent)]); err != nil {
					return
				}
			}
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(benchAnswer)))
		_, _ = w.Write(benchAnswer)
	}))
}

// benchClient is one Habilitation of the fixture: what its workload would send.
type benchClient struct {
	credential, token, siret string
}

// benchSIRET is a valid SIRET (Luhn) for i: "9", i on 12 digits, a check digit.
func benchSIRET(i int) string {
	body := fmt.Sprintf("9%012d", i)
	for d := byte('0'); d <= '9'; d++ {
		s := body + string(d)
		sum := 0
		for j := range len(s) {
			v := int(s[len(s)-1-j] - '0')
			if j%2 == 1 {
				if v *= 2; v > 9 {
					v -= 9
				}
			}
			sum += v
		}
		if sum%10 == 0 {
			return s
		}
	}
	panic("unreachable")
}

// newBenchHandler builds the gateway's real Store (from a fake API client holding n Ready,
// Gateway-delivered Habilitations, their token Secrets and PublicClients, as the manager
// leaves them) and Handler in front of upstream. The per-address budget is raised far above
// any load here (all requests go to one loopback host; in production the per-address
// budget, 850/min, bounds the traffic long before the gateway's CPU does): the budgets are
// tested in limits_test.go, this measures the data plane. Per-token limits stay the
// published ones: the requests are spread over enough tokens (benchHabilitations).
func newBenchHandler(tb testing.TB, upstream string, n int) (*Handler, []benchClient) {
	tb.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		tb.Fatal(err)
	}
	if err := jetonv1alpha1.AddToScheme(scheme); err != nil {
		tb.Fatal(err)
	}
	u, err := url.Parse(upstream)
	if err != nil {
		tb.Fatal(err)
	}
	policy, err := publicapi.NewHostPolicy([]string{u.Host})
	if err != nil {
		tb.Fatal(err)
	}
	key := []byte("bench-credential-key-0123456789abcdef")
	objs := []client.Object{&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: CredentialKeySecretName, Namespace: benchNamespace},
		Data:       map[string][]byte{CredentialKeyDataKey: key},
	}}
	emu := emulator.New()
	clients := make([]benchClient, n)
	for i := range n {
		name := fmt.Sprintf("client-%05d", i)
		tok, _, err := emu.Mint(jetonv1alpha1.APIEntreprise, emulator.MintOptions{Scopes: []string{"unites_legales_etablissements_insee"}, Subject: "bench"})
		if err != nil {
			tb.Fatal(err)
		}
		uid := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		h := &jetonv1alpha1.Habilitation{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-ae", Namespace: benchNamespace, UID: types.UID(uid), Generation: 1},
			Spec: jetonv1alpha1.HabilitationSpec{
				ClientRef: jetonv1alpha1.ClientReference{Name: name}, API: jetonv1alpha1.APIEntreprise, BaseURL: upstream,
				TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: name + "-ae-token", Key: "token"}, Delivery: jetonv1alpha1.DeliveryGateway,
			},
		}
		h.Status.Delivery = jetonv1alpha1.DeliveryGateway
		h.Status.TokenFingerprint = token.Fingerprint(tok)
		h.Status.Conditions = []metav1.Condition{{Type: jetonv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: jetonv1alpha1.ReasonReady, ObservedGeneration: 1, LastTransitionTime: metav1.Now()}}
		objs = append(objs, h,
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-ae-token", Namespace: benchNamespace}, Data: map[string][]byte{"token": []byte(tok)}},
			&jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: jetonv1alpha1.PublicClientSpec{DisplayName: name, SIRET: benchSIRET(i)}})
		clients[i] = benchClient{credential: MintCredential(key, uid, ""), token: tok, siret: benchSIRET(i)}
	}
	store := NewStore(fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build(), policy, benchNamespace)
	if err := store.Resync(context.Background()); err != nil {
		tb.Fatal(err)
	}
	limits := NewLimits(LimitsOptions{AddressBudgetPerMinute: 1 << 30, Replicas: 1})
	// The access log as the gateway writes it (JSON, one line per request), into nothing.
	log := zap.New(zap.WriteTo(io.Discard))
	h := NewHandler(HandlerOptions{Store: store, Limits: limits, Metrics: NewMetrics(prometheus.NewRegistry()), Log: log,
		MaxBodyBytes: 64 << 10, UpstreamTimeout: 30 * time.Second})
	return h, clients
}

// benchPath is an API Entreprise data route (INSEE établissement) for c.
func benchPath(c benchClient) string {
	return "/v3/insee/sirene/etablissements/" + c.siret + "?context=bench&object=bench&recipient=" + c.siret
}

// BenchmarkGatewayProxy: ns/op and allocs/op of one request through the gateway's handler
// (gateway), against the same request sent straight to the upstream by an HTTP client
// (direct). Both include the upstream's own cost, which is in-process.
func BenchmarkGatewayProxy(b *testing.B) {
	up := benchUpstream()
	defer up.Close()
	h, clients := newBenchHandler(b, up.URL, benchHabilitations)

	b.Run("direct", func(b *testing.B) {
		tr := NewTransport(30 * time.Second)
		defer tr.CloseIdleConnections()
		hc := &http.Client{Transport: tr}
		var next atomic.Uint64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c := clients[next.Add(1)%uint64(len(clients))]
				req, _ := http.NewRequest(http.MethodGet, up.URL+benchPath(c), nil)
				req.Header.Set("Authorization", "Bearer "+c.token)
				resp, err := hc.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("direct: status %d", resp.StatusCode)
					return
				}
			}
		})
	})

	b.Run("gateway", func(b *testing.B) {
		var next atomic.Uint64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c := clients[next.Add(1)%uint64(len(clients))]
				req := httptest.NewRequest(http.MethodGet, benchPath(c), nil)
				req.Header.Set("Authorization", "Bearer "+c.credential)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || rec.Body.Len() != len(benchAnswer) {
					b.Errorf("gateway: status %d, %d bytes (a refusal: %.200s)", rec.Code, rec.Body.Len(), rec.Body.String())
					return
				}
			}
		})
	})
}

// countingWriter is a ResponseWriter that counts and drops what it is sent, so a stream's
// allocations are the gateway's own, not a recorder's growing buffer.
type countingWriter struct {
	header http.Header
	code   int
	n      int64
}

func (w *countingWriter) Header() http.Header         { return w.header }
func (w *countingWriter) WriteHeader(code int)        { w.code = code }
func (w *countingWriter) Write(b []byte) (int, error) { w.n += int64(len(b)); return len(b), nil }
func (w *countingWriter) Flush()                      {}

// BenchmarkGatewayStream50MB streams a 50 MB answer through the handler: B/op shows the
// gateway holds none of it (copy buffers are pooled), whatever the answer's size.
func BenchmarkGatewayStream50MB(b *testing.B) {
	up := benchUpstream()
	defer up.Close()
	// A few tokens, so that no per-token limit interrupts the loop (about 14 answers a
	// second here).
	h, clients := newBenchHandler(b, up.URL, 100)
	b.SetBytes(benchStreamBytes)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c := clients[i%len(clients)]
		i++
		req := httptest.NewRequest(http.MethodGet, "/v3/insee/sirene/etablissements/"+largeSIRET+"?context=bench&object=bench", nil)
		req.Header.Set("Authorization", "Bearer "+c.credential)
		w := &countingWriter{header: http.Header{}}
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK || w.n != benchStreamBytes {
			b.Fatalf("status %d, %d bytes", w.code, w.n)
		}
	}
}
