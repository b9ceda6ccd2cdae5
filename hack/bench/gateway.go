//go:build unix

package main

// The gateway scenario (-scenarios gateway): the four targets for jeton-gateway.
//
//   - latency added against a direct call at 100 req/s, warm connections;
//   - proxied requests per second per core (the gateway in a child process, GOMAXPROCS=1,
//     and its CPU time per request from /proc);
//   - memory per Habilitation at 10,000 Habilitations (the real jeton-gateway binary on the
//     benchmark's control plane);
//   - RSS growth while a 50 MB answer streams through (the child and the real binary).
//
// Latency and throughput run the gateway's real handler (internal/gateway: Store, Limits,
// Handler, the access log) in a child process, this same program re-executed with
// gatewayChildEnv set, in front of an in-process upstream answering like an API Entreprise
// data route. All traffic goes to one loopback host, so the child's per-address budget is
// raised (the budgets are tested in internal/gateway's tests; this measures the data
// plane); per-token limits stay the published ones and the requests are spread over
// enough Habilitations to stay under them. No flag of the real binary lifts a limit.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/gateway"
	"github.com/jeton-dev/jeton/internal/publicapi"
	"github.com/jeton-dev/jeton/internal/testenv"
	"github.com/jeton-dev/jeton/internal/tokensource"
)

const (
	// gatewayChildEnv names the fixture file of a gateway child process (gatewayChild).
	gatewayChildEnv = "JETON_BENCH_GATEWAY_CHILD"
	// plainProxyEnv makes the child a plain httputil.ReverseProxy to the upstream instead
	// of the gateway: the cost of one more process hop alone, the latency's control.
	plainProxyEnv = "JETON_BENCH_PLAIN_PROXY"
	// gwChildHabilitations is how many Habilitations the child serves and the load rotates
	// over: at most 85% of 250/min per API Entreprise token after a burst of 25, 5000
	// tokens carry about 17,000 requests/s, above what this machine proxies.
	gwChildHabilitations = 5000
	gwLatencyRate        = 100 // requests per second, each way
	gwWarmup             = 3 * time.Second
	gwThroughputWorkers  = 32
	gwStreamBytes        = 50 << 20
	// gwSlowReadRate is the slow reader's pace: a client that reads slower than the API
	// sends, so the gateway must hold back the API (TCP) rather than buffer.
	gwSlowReadRate = 10 << 20 // bytes per second
	// gwMemorySettle is how long a gateway runs after ready before its RSS is sampled
	// (the initial list's garbage collected).
	gwMemorySettle = 10 * time.Second
)

// gwLargeSIRET is the établissement whose answer is gwStreamBytes long: an ordinary data
// route, so the gateway's rules treat it as any other.
var gwLargeSIRET = siretFor(999_999_999)

// gwAnswer is about the size of an INSEE établissement answer of API Entreprise.
var gwAnswer = []byte(`{"data":{"siret":"` + strings.Repeat("0", 14) + `","siege_social":true,"etat_administratif":"A","date_creation":1234567890,` +
	`"unite_legale":{"siren":"000000000","type":"personne_morale","personne_morale_attributs":{"raison_sociale":"` + strings.Repeat("X", 200) + `"}},` +
	`"adresse":{"numero_voie":"1","type_voie":"RUE","libelle_voie":"` + strings.Repeat("Y", 300) + `","code_postal":"75001","libelle_commune":"PARIS"}},` +
	`"links":{},"meta":{"date_derniere_mise_a_jour":1234567890}}`)

// gwUpstream is the in-process API: it answers a request with a Bearer token with
// gwAnswer, or gwStreamBytes streamed for gwLargeSIRET, and 401 without a token. It counts
// what it sees, so the benchmark can check the gateway sent what the rules say.
type gwUpstream struct {
	srv *http.Server
	url string
	// requests, and those whose recipient was not the one expected (set in the path's
	// client by the benchmark: every request names its client's SIRET as recipient).
	requests, noRecipient atomic.Int64
	// conns counts connections opened to it: warm connections keep it low.
	conns atomic.Int64
}

func startGWUpstream() (*gwUpstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &gwUpstream{url: "http://" + ln.Addr().String()}
	chunk := make([]byte, 32<<10)
	for i := range chunk {
		chunk[i] = 'a' + byte(i%26)
	}
	u.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			u.conns.Add(1)
		}
	}, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if len(r.URL.Query()["recipient"]) != 1 {
			u.noRecipient.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/"+gwLargeSIRET) {
			w.Header().Set("Content-Length", strconv.Itoa(gwStreamBytes))
			for sent := 0; sent < gwStreamBytes; sent += len(chunk) {
				if _, err := w.Write(chunk[:min(len(chunk), gwStreamBytes-sent)]); err != nil {
					return
				}
			}
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(gwAnswer)))
		_, _ = w.Write(gwAnswer)
	})}
	go func() { _ = u.srv.Serve(ln) }()
	return u, nil
}

func (u *gwUpstream) host() string { return strings.TrimPrefix(u.url, "http://") }

// gwHab is one Habilitation of a fixture: what the gateway is given and what its client
// workload sends.
type gwHab struct {
	Name, UID, SIRET string
	// Token is the API token (minted by the emulator, never a real one); Credential the
	// gateway credential the manager would inject.
	Token, Credential string
}

// gwFixture is what a gateway child serves.
type gwFixture struct {
	Upstream string
	Key      []byte
	Habs     []gwHab
}

// gwKey is the benchmark's gateway credential key.
var gwKey = []byte("jeton-bench-gateway-credential-key")

// newGWFixture mints n API Entreprise tokens and the credentials of n Habilitations with
// synthetic UIDs (the child's objects live in a fake API client).
func newGWFixture(upstream string, n int) (*gwFixture, error) {
	emu := emulator.New()
	fx := &gwFixture{Upstream: upstream, Key: gwKey}
	for i := range n {
		tok, _, err := emu.Mint(jetonv1alpha1.APIEntreprise, emulator.MintOptions{Scopes: []string{"unites_legales_etablissements_insee"}, Subject: "bench"})
		if err != nil {
			return nil, err
		}
		uid := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		fx.Habs = append(fx.Habs, gwHab{Name: fmt.Sprintf("gw-%05d", i), UID: uid, SIRET: siretFor(i), Token: tok,
			Credential: gateway.MintCredential(gwKey, uid, "")})
	}
	return fx, nil
}

// gwHabilitation is a Habilitation as the manager leaves one in Gateway delivery: spec
// delivery Gateway, and a status Ready for its generation, delivery Gateway, the token's
// fingerprint and the other fields the manager writes (token facts, target Secret), so
// that the gateway's cache holds objects of the real size.
func gwHabilitation(h gwHab, baseURL string) *jetonv1alpha1.Habilitation {
	return &jetonv1alpha1.Habilitation{
		ObjectMeta: metav1.ObjectMeta{Name: h.Name + "-ae", Namespace: credentialsNamespace},
		Spec: jetonv1alpha1.HabilitationSpec{
			ClientRef: jetonv1alpha1.ClientReference{Name: h.Name}, API: jetonv1alpha1.APIEntreprise, BaseURL: baseURL,
			TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: h.Name + "-ae-token", Key: "token"}, Delivery: jetonv1alpha1.DeliveryGateway,
		},
	}
}

// setGWStatus writes what the manager writes in status once it has checked the token.
func setGWStatus(hab *jetonv1alpha1.Habilitation, src *corev1.Secret, client string) error {
	tok, v := tokensource.Reader{Namespace: src.Namespace, Ref: hab.Spec.TokenSecretRef, API: hab.Spec.API, Client: client}.Read(src)
	if v != nil {
		return fmt.Errorf("token of %s: %s", hab.Name, v.Message)
	}
	hab.Status.ObservedGeneration = hab.Generation
	hab.Status.TokenStatus = tokensource.Status(tok, hab.Spec.API, nil)
	hab.Status.Delivery = jetonv1alpha1.DeliveryGateway
	hab.Status.TargetSecret = &jetonv1alpha1.SecretReference{Namespace: "jeton-" + client, Name: "api-entreprise"}
	hab.Status.Conditions = []metav1.Condition{{Type: jetonv1alpha1.ConditionReady, Status: metav1.ConditionTrue, ObservedGeneration: hab.Generation,
		Reason: jetonv1alpha1.ReasonReady, Message: "The token is valid and injected.", LastTransitionTime: metav1.Now()}}
	return nil
}

func gwObjects(h gwHab, baseURL string) (*corev1.Secret, *jetonv1alpha1.PublicClient, *jetonv1alpha1.Habilitation) {
	src := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: h.Name + "-ae-token", Namespace: credentialsNamespace}, Data: map[string][]byte{"token": []byte(h.Token)}}
	pc := &jetonv1alpha1.PublicClient{ObjectMeta: metav1.ObjectMeta{Name: h.Name},
		Spec: jetonv1alpha1.PublicClientSpec{DisplayName: "Bench gateway client " + h.Name, SIRET: h.SIRET}}
	return src, pc, gwHabilitation(h, baseURL)
}

func gwKeySecret() *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: gateway.CredentialKeySecretName, Namespace: credentialsNamespace},
		Data: map[string][]byte{gateway.CredentialKeyDataKey: gwKey}}
}

// gwPath is an API Entreprise data route (INSEE établissement) naming h's SIRET as
// recipient, as a client application sends it.
func gwPath(h gwHab, siret string) string {
	return "/v3/insee/sirene/etablissements/" + siret + "?context=bench&object=bench&recipient=" + h.SIRET
}

// gatewayChild is the child process: the gateway's handler, as cmd/gateway wires it
// (Store from an API client, Limits, Metrics, the JSON access log on stderr), serving on
// a loopback port it prints on stdout, until stdin closes.
func gatewayChild(fixturePath string) error {
	raw, err := os.ReadFile(fixturePath)
	if err != nil {
		return err
	}
	var fx gwFixture
	if err := json.Unmarshal(raw, &fx); err != nil {
		return err
	}
	up, err := url.Parse(fx.Upstream)
	if err != nil {
		return err
	}
	if os.Getenv(plainProxyEnv) != "" {
		tr := gateway.NewTransport(30 * time.Second)
		return serveChild(&httputil.ReverseProxy{Transport: tr, Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(up) }}, 0)
	}
	policy, err := publicapi.NewHostPolicy([]string{up.Host})
	if err != nil {
		return err
	}
	objs := []client.Object{gwKeySecret()}
	for _, h := range fx.Habs {
		src, pc, hab := gwObjects(h, fx.Upstream)
		hab.UID, hab.Generation = types.UID(h.UID), 1
		if err := setGWStatus(hab, src, h.Name); err != nil {
			return err
		}
		objs = append(objs, src, pc, hab)
	}
	store := gateway.NewStore(fake.NewClientBuilder().WithScheme(testenv.NewScheme()).WithObjects(objs...).Build(), policy, credentialsNamespace)
	if err := store.Resync(context.Background()); err != nil {
		return err
	}
	objs = nil
	limits := gateway.NewLimits(gateway.LimitsOptions{AddressBudgetPerMinute: 1 << 30, Replicas: 1})
	handler := gateway.NewHandler(gateway.HandlerOptions{
		Store: store, Limits: limits, Metrics: gateway.NewMetrics(prometheus.NewRegistry()),
		Log:          zap.New(zap.WriteTo(os.Stderr)).WithName("gateway").WithName("access"),
		MaxBodyBytes: 64 << 10, UpstreamTimeout: 30 * time.Second,
	})
	return serveChild(handler, store.Len())
}

// serveChild serves h on a loopback port it prints on stdout, until stdin closes.
func serveChild(h http.Handler, habilitations int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	// As cmd/gateway's data server.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 32 << 10}
	go func() { _ = srv.Serve(ln) }()
	runtime.GC()
	fmt.Printf("listening %s %d\n", ln.Addr(), habilitations)
	// The parent closes stdin (or dies) to stop it.
	_, _ = io.Copy(io.Discard, os.Stdin)
	return srv.Close()
}

// gwChild is a running gateway child.
type gwChild struct {
	cmd  *exec.Cmd
	in   io.Closer
	addr string
	done chan error
}

// startGatewayChild re-executes this program as a gateway child serving fixturePath,
// with GOMAXPROCS=procs (0: the default), its log in logPath.
func startGatewayChild(ctx context.Context, fixturePath string, procs int, logPath string, env ...string) (*gwChild, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), gatewayChildEnv+"="+fixturePath)
	if procs > 0 {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = logFile
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &gwChild{cmd: cmd, in: in, done: make(chan error, 1)}
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() { c.done <- cmd.Wait() }()
	select {
	case line := <-lines:
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "listening" {
			c.stop()
			return nil, fmt.Errorf("the gateway child did not start (said %q); see %s", strings.TrimSpace(line), logPath)
		}
		c.addr = f[1]
		return c, nil
	case <-time.After(2 * time.Minute):
		c.stop()
		return nil, fmt.Errorf("the gateway child did not start within 2 minutes; see %s", logPath)
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
}

func (c *gwChild) pid() int { return c.cmd.Process.Pid }

func (c *gwChild) stop() {
	_ = c.in.Close()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// gwClient is a load generator's HTTP client: warm connections, many per host.
func gwClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 1024, 256
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// gwGet sends one GET with a Bearer credential and reads the whole answer; it returns the
// status and the bytes read.
func gwGet(ctx context.Context, hc *http.Client, u, bearer string) (int, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, withoutURL(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, n, err
}

// withoutURL drops the URL an HTTP client's error names: a query (a recipient here, names
// and birth dates on API Particulier) stays out of what the benchmark prints.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// latencyStream is the latencies of one open-loop stream, and its failures.
type latencyStream struct {
	lat      []time.Duration
	failures int
	// firstFailure says what the first failure was (a status or an error kind, nothing
	// of a request).
	firstFailure string
}

// openLoop sends one request every 1/rate (each in its own goroutine, so a slow answer does
// not delay the next send) for d, and returns their latencies: send to last byte read.
func openLoop(ctx context.Context, rate int, d time.Duration, send func(i int) (int, error)) *latencyStream {
	var mu sync.Mutex
	res := &latencyStream{}
	var wg sync.WaitGroup
	t := time.NewTicker(time.Second / time.Duration(rate))
	defer t.Stop()
	end := time.After(d)
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return res
		case <-end:
			wg.Wait()
			return res
		case <-t.C:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			status, err := send(i)
			took := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || status != http.StatusOK {
				if res.failures == 0 {
					res.firstFailure = fmt.Sprintf("status %d", status)
					if err != nil {
						res.firstFailure = "transport error"
					}
				}
				res.failures++
				return
			}
			res.lat = append(res.lat, took)
		}()
	}
}

// gwLatency is the latency measurement: the same requests to the same upstream, direct
// and through the gateway, at gwLatencyRate each.
type gwLatency struct {
	direct, viaGateway *latencyStream
	window             time.Duration
	// procs is the gateway child's GOMAXPROCS (0: Go's default, the machine's cores).
	procs int
	// plain: the child is a plain reverse proxy (the control), not the gateway.
	plain bool
	// machineBusy is every process's CPU over the window: other work on the machine
	// delays wake-ups, and the gateway's path has twice the wake-ups of the direct one.
	machineBusy time.Duration
	// gatewayCPU is the child's user + system time over the window: with the latencies,
	// it tells the gateway's work from its waits.
	gatewayCPU time.Duration
}

func measureGWLatency(ctx context.Context, up *gwUpstream, fx *gwFixture, child *gwChild, window time.Duration, plain bool) (*gwLatency, error) {
	gwAddr := child.addr
	directClient, gwHTTP := gwClient(), gwClient()
	direct := func(i int) (int, error) {
		h := fx.Habs[i%len(fx.Habs)]
		s, _, err := gwGet(ctx, directClient, up.url+gwPath(h, h.SIRET), h.Token)
		return s, err
	}
	through := func(i int) (int, error) {
		h := fx.Habs[i%len(fx.Habs)]
		bearer := h.Credential
		if plain { // a plain proxy passes the caller's header on: the token itself
			bearer = h.Token
		}
		s, _, err := gwGet(ctx, gwHTTP, "http://"+gwAddr+gwPath(h, h.SIRET), bearer)
		return s, err
	}
	run := func(d time.Duration) (*latencyStream, *latencyStream) {
		var a, b *latencyStream
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); a = openLoop(ctx, gwLatencyRate, d, direct) }()
		go func() {
			defer wg.Done()
			// Half a period later, so the two streams do not send at the same instant.
			time.Sleep(time.Second / gwLatencyRate / 2)
			b = openLoop(ctx, gwLatencyRate, d, through)
		}()
		wg.Wait()
		return a, b
	}
	run(gwWarmup) // warm connections both ways (and the child's caches)
	busyBefore, err := machineBusy()
	if err != nil {
		return nil, err
	}
	before, err := readProcStats(child.pid())
	if err != nil {
		return nil, err
	}
	a, b := run(window)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	busyAfter, err := machineBusy()
	if err != nil {
		return nil, err
	}
	after, err := readProcStats(child.pid())
	if err != nil {
		return nil, err
	}
	return &gwLatency{direct: a, viaGateway: b, window: window, machineBusy: busyAfter - busyBefore, gatewayCPU: after.cpu - before.cpu}, nil
}

// gwThroughput is a closed-loop measurement of the gateway child at GOMAXPROCS=1.
type gwThroughput struct {
	requests, failures int64
	wall               time.Duration
	cpu                time.Duration // the child's user + system time over the window
	machineBusy        time.Duration // every process's CPU over the window
	firstFailure       string
}

func measureGWThroughput(ctx context.Context, fx *gwFixture, child *gwChild, window time.Duration) (*gwThroughput, error) {
	hc := gwClient()
	var ok, failed atomic.Int64
	var firstFailure atomic.Value
	load := func(d time.Duration) {
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range gwThroughputWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					h := fx.Habs[int(next.Add(1))%len(fx.Habs)]
					status, _, err := gwGet(ctx, hc, "http://"+child.addr+gwPath(h, h.SIRET), h.Credential)
					if ctx.Err() != nil {
						return // cut by the window's end: not a failure
					}
					if err != nil || status != http.StatusOK {
						failed.Add(1)
						firstFailure.CompareAndSwap(nil, fmt.Sprintf("status %d (error: %t)", status, err != nil))
						continue
					}
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
	}
	load(gwWarmup)
	ok.Store(0)
	failed.Store(0)
	before, err := readProcStats(child.pid())
	if err != nil {
		return nil, err
	}
	busyBefore, err := machineBusy()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	load(window)
	res := &gwThroughput{wall: time.Since(start), requests: ok.Load(), failures: failed.Load()}
	after, err := readProcStats(child.pid())
	if err != nil {
		return nil, err
	}
	busyAfter, err := machineBusy()
	if err != nil {
		return nil, err
	}
	res.cpu, res.machineBusy = after.cpu-before.cpu, busyAfter-busyBefore
	if f, ok := firstFailure.Load().(string); ok {
		res.firstFailure = f
	}
	return res, ctx.Err()
}

// gwStream is one 50 MB answer streamed through a gateway process.
type gwStream struct {
	how      string
	bytes    int64
	took     time.Duration
	baseline float64 // the gateway's VmRSS just before, bytes
	peak     float64 // the highest VmRSS seen while it streamed (sampled every 2 ms)
	hwmGrew  float64 // VmHWM after − before
}

// measureGWStream asks the gateway at base for gwLargeSIRET's answer with bearer, reading
// it at full speed or at gwSlowReadRate, and watches the gateway's RSS meanwhile.
func measureGWStream(ctx context.Context, pid int, base string, h gwHab, slow bool) (*gwStream, error) {
	res := &gwStream{how: "client reads at full speed"}
	if slow {
		res.how = fmt.Sprintf("client reads at %d MB/s", gwSlowReadRate>>20)
	}
	var rss []float64
	for range 5 {
		ps, err := readProcStats(pid)
		if err != nil {
			return nil, err
		}
		rss = append(rss, ps.rss)
		time.Sleep(20 * time.Millisecond)
	}
	res.baseline = median(rss)
	before, err := readProcStats(pid)
	if err != nil {
		return nil, err
	}
	stop := make(chan struct{})
	var peak float64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			if ps, err := readProcStats(pid); err == nil {
				peak = max(peak, ps.rss)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+gwPath(h, gwLargeSIRET), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+h.Credential)
	start := time.Now()
	resp, err := gwClient().Do(req)
	err = withoutURL(err)
	if err == nil {
		if resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("the gateway answered %d", resp.StatusCode)
		} else if slow {
			res.bytes, err = slowCopy(resp.Body, gwSlowReadRate)
		} else {
			res.bytes, err = io.Copy(io.Discard, resp.Body)
		}
		resp.Body.Close()
	}
	res.took = time.Since(start)
	// A few more samples after the last byte: whatever the gateway held is still there.
	time.Sleep(50 * time.Millisecond)
	close(stop)
	<-sampled
	if err != nil {
		return nil, fmt.Errorf("streaming %d MB (%s): %w", gwStreamBytes>>20, res.how, err)
	}
	if res.bytes != gwStreamBytes {
		return nil, fmt.Errorf("streaming: got %d bytes of %d", res.bytes, gwStreamBytes)
	}
	after, err := readProcStats(pid)
	if err != nil {
		return nil, err
	}
	res.peak, res.hwmGrew = peak, after.peakRSS-before.peakRSS
	return res, nil
}

// slowCopy reads r to the end at about rate bytes per second.
func slowCopy(r io.Reader, rate int) (int64, error) {
	buf := make([]byte, 64<<10)
	start := time.Now()
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if due := time.Duration(float64(n) / float64(rate) * float64(time.Second)); due > time.Since(start) {
			time.Sleep(due - time.Since(start))
		}
	}
}

// gwMemPoint is the real gateway binary's memory with n Habilitations.
type gwMemPoint struct {
	n int
	// env is the runtime setting it ran with ("" for none, as the Deployment runs it).
	env       string
	rss       float64 // median VmRSS after settling, bytes
	peakRSS   float64 // VmHWM then: the initial list's peak
	heapInuse float64 // go_memstats_heap_inuse_bytes then
	ready     time.Duration
}

// gwBinary is the real gateway binary (testenv.Env.StartGateway: built as shipped, run as
// the benchmark's admin user on the control plane) and where its log goes if it fails.
type gwBinary struct {
	*testenv.Gateway
	logPath string
}

func (g *gwBinary) pid() int        { return g.Cmd.Process.Pid }
func (g *gwBinary) dataURL() string { return g.URL() }

// stop stops it as the kubelet would and keeps its log.
func (g *gwBinary) stop() error {
	err := g.Stop(30 * time.Second)
	if werr := os.WriteFile(g.logPath, []byte(g.Out.String()), 0o600); werr != nil && err == nil {
		err = werr
	}
	return err
}

// scrape reads its /metrics.
func (g *gwBinary) scrape(ctx context.Context) (samples, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.MetricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the gateway's /metrics: HTTP %d", resp.StatusCode)
	}
	return parseProm(resp.Body)
}

// startGatewayBinary starts jeton-gateway with the fast upstream allowed, one replica (no
// Service here), and waits until it is ready (caches synced, store filled). The free ports
// testenv picks are free when picked, not when bound (other processes on the machine take
// ephemeral ports): a start that lost one is retried.
func startGatewayBinary(ctx context.Context, c *cluster, up *gwUpstream, logDir, name string, env ...string) (*gwBinary, error) {
	for attempt := 1; ; attempt++ {
		o, err := startGatewayBinaryOnce(ctx, c, up, logDir, name, env...)
		if err == nil || attempt == 3 || o == nil || !strings.Contains(o.Out.String(), "address already in use") {
			return o, err
		}
		logf("gateway: a port was taken before the gateway bound it; starting it again")
	}
}

func startGatewayBinaryOnce(ctx context.Context, c *cluster, up *gwUpstream, logDir, name string, env ...string) (*gwBinary, error) {
	g, err := c.env.StartGateway(c.env.Kubeconfig, append([]string{"POD_NAMESPACE=" + credentialsNamespace}, env...),
		"--credentials-namespaces", credentialsNamespace, "--allowed-api-hosts", up.host(), "--replicas", "1")
	if err != nil {
		return nil, err
	}
	o := &gwBinary{Gateway: g, logPath: filepath.Join(logDir, name+".log")}
	err = poll(ctx, 5*time.Minute, 100*time.Millisecond, "the gateway to become ready (log: "+o.logPath+")", func() (bool, error) {
		if !g.Running() {
			return false, fmt.Errorf("the gateway exited before becoming ready (%v); see %s", g.ExitErr(), o.logPath)
		}
		return g.Ready(ctx) == nil, nil
	})
	if err != nil {
		_ = o.stop()
		return o, err
	}
	return o, nil
}

// measureGWMemory samples the settled gateway's RSS (median of 10 samples over 3 s) and
// its Go heap in use.
func measureGWMemory(ctx context.Context, o *gwBinary, n int, ready time.Duration) (gwMemPoint, error) {
	p := gwMemPoint{n: n, ready: ready}
	select {
	case <-ctx.Done():
		return p, ctx.Err()
	case <-time.After(gwMemorySettle):
	}
	var rss []float64
	for range 10 {
		ps, err := readProcStats(o.pid())
		if err != nil {
			return p, err
		}
		rss = append(rss, ps.rss)
		time.Sleep(300 * time.Millisecond)
	}
	p.rss = median(rss)
	ps, err := readProcStats(o.pid())
	if err != nil {
		return p, err
	}
	p.peakRSS = ps.peakRSS
	ss, err := o.scrape(ctx)
	if err != nil {
		return p, err
	}
	p.heapInuse = ss.sum("go_memstats_heap_inuse_bytes", nil)
	return p, nil
}

// createGWFleet creates n clients in Gateway delivery on the control plane, with the status
// the manager would write, and returns them with their credentials (bound to the UIDs the
// API server gave).
func createGWFleet(ctx context.Context, c client.Client, up *gwUpstream, n int) ([]gwHab, error) {
	fx, err := newGWFixture(up.url, n)
	if err != nil {
		return nil, err
	}
	habs := fx.Habs
	for i := range habs {
		habs[i].Name = fmt.Sprintf("gwm-%05d", i)
	}
	err = parallel(ctx, n, setupWorkers, func(ctx context.Context, i int) error {
		src, pc, hab := gwObjects(habs[i], up.url)
		for _, o := range []client.Object{src, pc, hab} {
			if err := c.Create(ctx, o); err != nil {
				return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
			}
		}
		if err := setGWStatus(hab, src, habs[i].Name); err != nil {
			return err
		}
		if err := c.Status().Update(ctx, hab); err != nil {
			return fmt.Errorf("status of Habilitation %s: %w", hab.Name, err)
		}
		habs[i].UID = string(hab.UID)
		habs[i].Credential = gateway.MintCredential(gwKey, habs[i].UID, "")
		return nil
	})
	return habs, err
}

// gatewayResult is everything the gateway scenario measured.
type gatewayResult struct {
	habs       int // Habilitations of the child (latency, throughput)
	latency    []*gwLatency
	throughput *gwThroughput
	streams    []*gwStream // through the child, then through the real binary
	memory     []gwMemPoint
	// upstreamRequests and upstreamNoRecipient: what the upstream saw (every request
	// through the gateway carries exactly one recipient).
	upstreamRequests, upstreamNoRecipient, upstreamConns int64
	took                                                 time.Duration
}

func runGateway(ctx context.Context, cfg benchConfig, logDir string) (*gatewayResult, error) {
	start := time.Now()
	res := &gatewayResult{habs: gwChildHabilitations}
	up, err := startGWUpstream()
	if err != nil {
		return nil, err
	}
	defer up.srv.Close()

	logf("gateway: minting %d tokens and credentials for the in-process gateway", gwChildHabilitations)
	fx, err := newGWFixture(up.url, gwChildHabilitations)
	if err != nil {
		return nil, err
	}
	fixturePath := filepath.Join(logDir, "gateway-fixture.json")
	raw, err := json.Marshal(fx)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(fixturePath, raw, 0o600); err != nil {
		return nil, err
	}
	defer os.Remove(fixturePath) // it holds tokens, even if only the emulator's

	// Twice: with Go's default GOMAXPROCS (the machine's cores, as the Deployment runs it
	// without a CPU limit), and with GOMAXPROCS=1 (a CPU limit of one core or less), where
	// a request's goroutines hand over on one thread instead of waking others.
	// Then a plain httputil.ReverseProxy in the same kind of child: what one more process
	// hop costs on this machine, whatever the proxy does.
	for _, run := range []struct {
		procs int
		plain bool
	}{{0, false}, {1, false}, {0, true}} {
		what, env := "the gateway", []string(nil)
		if run.plain {
			what, env = "a plain reverse proxy", []string{plainProxyEnv + "=1"}
		}
		logf("gateway: latency, direct and through %s (GOMAXPROCS %s), %d req/s each for %s", what, procsName(run.procs), gwLatencyRate, cfg.gatewayWindow)
		child, err := startGatewayChild(ctx, fixturePath, run.procs, filepath.Join(logDir, fmt.Sprintf("gateway-child-latency-%d-%t.log", run.procs, run.plain)), env...)
		if err != nil {
			return nil, err
		}
		l, err := measureGWLatency(ctx, up, fx, child, cfg.gatewayWindow, run.plain)
		child.stop()
		if err != nil {
			return nil, fmt.Errorf("latency: %w", err)
		}
		l.procs, l.plain = run.procs, run.plain
		res.latency = append(res.latency, l)
		d, g := seconds(l.direct.lat), seconds(l.viaGateway.lat)
		logf("gateway: latency p50 %.3f ms → %.3f ms, p99 %.3f ms → %.3f ms (direct → through the proxy); failures %d / %d",
			1000*percentile(d, 50), 1000*percentile(g, 50), 1000*percentile(d, 99), 1000*percentile(g, 99), l.direct.failures, l.viaGateway.failures)
	}

	logf("gateway: throughput, the gateway at GOMAXPROCS=1, %d clients in a closed loop for %s", gwThroughputWorkers, cfg.gatewayWindow)
	child, err := startGatewayChild(ctx, fixturePath, 1, filepath.Join(logDir, "gateway-child-throughput.log"))
	if err != nil {
		return nil, err
	}
	res.throughput, err = measureGWThroughput(ctx, fx, child, cfg.gatewayWindow)
	child.stop()
	if err != nil {
		return nil, fmt.Errorf("throughput: %w", err)
	}
	t := res.throughput
	logf("gateway: throughput %.0f req/s, %.0f requests per CPU-second of the gateway, failures %d", float64(t.requests)/t.wall.Seconds(), float64(t.requests)/t.cpu.Seconds(), t.failures)

	logf("gateway: streaming %d MB through the in-process gateway", gwStreamBytes>>20)
	child, err = startGatewayChild(ctx, fixturePath, 0, filepath.Join(logDir, "gateway-child-stream.log"))
	if err != nil {
		return nil, err
	}
	for i := range 20 { // warm: the buffers and connections a streamed answer uses exist
		h := fx.Habs[i]
		if _, _, err := gwGet(ctx, gwClient(), "http://"+child.addr+gwPath(h, h.SIRET), h.Credential); err != nil {
			child.stop()
			return nil, err
		}
	}
	for _, slow := range []bool{false, true} {
		s, err := measureGWStream(ctx, child.pid(), "http://"+child.addr, fx.Habs[100], slow)
		if err != nil {
			child.stop()
			return nil, err
		}
		s.how = "in-process handler, " + s.how
		res.streams = append(res.streams, s)
	}
	child.stop()

	if err := gatewayMemory(ctx, cfg, logDir, up, res); err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	res.upstreamRequests, res.upstreamNoRecipient, res.upstreamConns = up.requests.Load(), up.noRecipient.Load(), up.conns.Load()
	res.took = time.Since(start)
	return res, nil
}

// gatewayMemory measures the real binary with 0 and cfg.gatewayHabs Habilitations, and
// streams through it.
func gatewayMemory(ctx context.Context, cfg benchConfig, logDir string, up *gwUpstream, res *gatewayResult) error {
	c, err := startCluster(ctx)
	if err != nil {
		return err
	}
	defer c.stop()
	if err := c.setup.Create(ctx, gwKeySecret()); err != nil {
		return err
	}
	logf("gateway: building jeton-gateway as shipped (testenv.Env.GatewayBinary)")
	if _, err := c.env.GatewayBinary(); err != nil {
		return err
	}
	point := func(n int, env ...string) (*gwBinary, error) {
		startAt := time.Now()
		o, err := startGatewayBinary(ctx, c, up, logDir, fmt.Sprintf("gateway-memory-%d%s", n, strings.Join(env, "")), env...)
		if err != nil {
			return nil, err
		}
		p, err := measureGWMemory(ctx, o, n, time.Since(startAt))
		if err != nil {
			_ = o.stop()
			return nil, err
		}
		p.env = strings.Join(env, " ")
		res.memory = append(res.memory, p)
		logf("gateway: real binary with %d Habilitations %s: RSS %s (peak %s), Go heap in use %s (ready after %s)", n, p.env, fmtMiB(p.rss), fmtMiB(p.peakRSS), fmtMiB(p.heapInuse), p.ready.Round(time.Millisecond))
		return o, nil
	}
	o, err := point(0)
	if err != nil {
		return err
	}
	if err := o.stop(); err != nil {
		return err
	}
	n := cfg.gatewayHabs
	logf("gateway: creating %d PublicClients, token Secrets and Habilitations in Gateway delivery (status as the manager writes it)", n)
	habs, err := createGWFleet(ctx, c.setup, up, n)
	if err != nil {
		return err
	}
	// The same with GOGC=50: what a runtime setting, not code, does to the GC's headroom
	// (the live heap is about half of RSS with the default GOGC=100).
	if o, err = point(n, "GOGC=50"); err != nil {
		return err
	}
	if err := o.stop(); err != nil {
		return err
	}
	if o, err = point(n); err != nil {
		return err
	}
	defer func() { _ = o.stop() }()
	// The point counts only if the gateway serves them: a sample of them through it.
	for i := 0; i < n; i += max(1, n/20) {
		status, _, err := gwGet(ctx, gwClient(), o.dataURL()+gwPath(habs[i], habs[i].SIRET), habs[i].Credential)
		if err != nil || status != http.StatusOK {
			return fmt.Errorf("the real gateway does not serve Habilitation %d of %d (status %d, error %v); see %s", i, n, status, err, o.logPath)
		}
	}
	for _, slow := range []bool{false, true} {
		s, err := measureGWStream(ctx, o.pid(), o.dataURL(), habs[0], slow)
		if err != nil {
			return err
		}
		s.how = fmt.Sprintf("jeton-gateway binary with %d Habilitations, %s", n, s.how)
		res.streams = append(res.streams, s)
	}
	return o.stop()
}

func (r *gatewayResult) write(w io.Writer) {
	fmt.Fprintf(w, "### Gateway (-scenarios gateway, %s)\n\n", r.took.Round(time.Second))
	fmt.Fprintf(w, "| Measure | Value | Target | |\n|---|---|---|---|\n")
	for _, l := range r.latency {
		d, g := seconds(l.direct.lat), seconds(l.viaGateway.lat)
		ms := func(xs []float64, p float64) float64 { return 1000 * percentile(xs, p) }
		add50, add99 := ms(g, 50)-ms(d, 50), ms(g, 99)-ms(d, 99)
		procs := "gateway GOMAXPROCS " + procsName(l.procs)
		if l.plain {
			procs = "control: a plain httputil.ReverseProxy, no jeton logic, GOMAXPROCS " + procsName(l.procs)
		}
		fmt.Fprintf(w, "| Latency at %d req/s each way, %s, direct: p50 / p90 / p99 (%d answers, %d failures) | %.3f / %.3f / %.3f ms | | |\n",
			gwLatencyRate, l.window, len(d), l.direct.failures, ms(d, 50), ms(d, 90), ms(d, 99))
		fmt.Fprintf(w, "| Latency through the proxy (%s): p50 / p90 / p99 (%d answers, %d failures%s) | %.3f / %.3f / %.3f ms | | |\n",
			procs, len(g), l.viaGateway.failures, firstFailure(l.viaGateway.firstFailure), ms(g, 50), ms(g, 90), ms(g, 99))
		fmt.Fprintf(w, "| The machine's busy share during that window (%d cores, the benchmark included) / the proxy process's CPU per request | %.0f%% / %.0f µs | | |\n",
			runtime.NumCPU(), 100*l.machineBusy.Seconds()/l.window.Seconds()/float64(runtime.NumCPU()), 1e6*l.gatewayCPU.Seconds()/float64(max(1, len(g)+l.viaGateway.failures)))
		if l.plain {
			fmt.Fprintf(w, "| Latency added by one plain proxy hop (%s), p50 / p99 | %.3f / %.3f ms | | |\n", procs, add50, add99)
			continue
		}
		fmt.Fprintf(w, "| Latency added by the gateway (%s), p50 | %.3f ms | ≤ 0.3 ms | %s |\n", procs, add50, yesNo(add50 <= 0.3 && l.viaGateway.failures == 0))
		fmt.Fprintf(w, "| Latency added by the gateway (%s), p99 | %.3f ms | ≤ 2 ms | %s |\n", procs, add99, yesNo(add99 <= 2 && l.viaGateway.failures == 0))
	}
	if t := r.throughput; t != nil {
		perCPU := float64(t.requests) / t.cpu.Seconds()
		fmt.Fprintf(w, "| Throughput, gateway at GOMAXPROCS=1, %d clients, %s: requests/s (%d failures%s) | %.0f | | |\n",
			gwThroughputWorkers, t.wall.Round(time.Second), t.failures, firstFailure(t.firstFailure), float64(t.requests)/t.wall.Seconds())
		fmt.Fprintf(w, "| Gateway CPU per request / the machine's busy share meanwhile (%d cores) | %.0f µs / %.0f%% | | |\n",
			runtime.NumCPU(), 1e6*t.cpu.Seconds()/float64(t.requests), 100*t.machineBusy.Seconds()/t.wall.Seconds()/float64(runtime.NumCPU()))
		fmt.Fprintf(w, "| Proxied requests per CPU-second of the gateway (requests / its user+system time) | %.0f | ≥ 2,000 per core | %s |\n", perCPU, yesNo(perCPU >= 2000 && t.failures == 0))
	}
	if len(r.memory) == 3 {
		a, gogc, b := r.memory[0], r.memory[1], r.memory[2]
		per := (b.rss - a.rss) / float64(b.n)
		fmt.Fprintf(w, "| jeton-gateway with 0 / %d Habilitations: RSS (peak RSS; Go heap in use) | %s (%s; %s) / %s (%s; %s) | | |\n", b.n,
			fmtMiB(a.rss), fmtMiB(a.peakRSS), fmtMiB(a.heapInuse), fmtMiB(b.rss), fmtMiB(b.peakRSS), fmtMiB(b.heapInuse))
		fmt.Fprintf(w, "| jeton-gateway ready after start, %d Habilitations | %s | | |\n", b.n, fmtSeconds(b.ready.Seconds()))
		fmt.Fprintf(w, "| Memory per Habilitation: (RSS at %d − RSS at 0) / %d (Go heap in use: %.1f KiB) | %.1f KiB | ≤ 8 KiB | %s |\n",
			b.n, b.n, (b.heapInuse-a.heapInuse)/float64(b.n)/1024, per/1024, yesNo(per <= 8*1024))
		fmt.Fprintf(w, "| The same with %s (RSS %s, peak %s) | %.1f KiB | | |\n", gogc.env, fmtMiB(gogc.rss), fmtMiB(gogc.peakRSS), (gogc.rss-a.rss)/float64(gogc.n)/1024)
	}
	for _, s := range r.streams {
		grew := s.peak - s.baseline
		fmt.Fprintf(w, "| Streaming %d MB (%s, %s): RSS growth, highest VmRSS − before (VmHWM grew %s) | %.1f MiB | < 5 MB | %s |\n",
			s.bytes>>20, s.how, fmtSeconds(s.took.Seconds()), fmtMiBf(s.hwmGrew), grew/(1<<20), yesNo(grew < 5e6))
	}
	fmt.Fprintf(w, "| Upstream: requests received (connections opened, direct and gateway) / without exactly one recipient | %d (%d) / %d | 0 without | %s |\n\n",
		r.upstreamRequests, r.upstreamConns, r.upstreamNoRecipient, yesNo(r.upstreamNoRecipient == 0))
}

func procsName(procs int) string {
	if procs == 0 {
		return fmt.Sprintf("default (%d)", runtime.NumCPU())
	}
	return strconv.Itoa(procs)
}

func firstFailure(s string) string {
	if s == "" {
		return ""
	}
	return "; first: " + s
}

func fmtMiBf(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

// gatewayChildMain runs the gateway child when this process is one; it returns false
// otherwise.
func gatewayChildMain() bool {
	path := os.Getenv(gatewayChildEnv)
	if path == "" {
		return false
	}
	signal.Ignore(os.Interrupt) // the parent stops it (stdin), after the load stops
	if err := gatewayChild(path); err != nil {
		fmt.Fprintln(os.Stderr, "gateway child:", err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}
