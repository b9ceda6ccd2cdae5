package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/controllers"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/publicapi"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// The package shares one control plane and one in-process operator (every reconciler, as
// controllers.Setup wires them for the manager binary). Each test uses its own credentials
// namespace, so that the namespace-scoped outputs it compares are its own.
var (
	env       *testenv.Env
	k8sClient client.Client
	// emulators serve the API emulator on loopback addresses the operator allows; each
	// test that probes takes its own, so a 429's host-wide backoff holds only its tokens.
	emulators chan string
	// fakeAPI answers the golden TechnicalTokens' probes: 200 on /privileges, 401 on
	// /api/introspect, always, so their status is the same on every run.
	fakeAPI string
)

// Credentials namespaces of the operator, one per test that needs its own.
const (
	nsGolden    = "golden"
	nsCommands  = "jeton-system"
	nsHealthy   = "healthy"
	nsLeak      = "leak"
	nsDiscovery = "discovery"
)

// goldenNow is the plugin's clock in the golden runs: their reports are the same on every
// run. Other runs use the wall clock, like the operator.
var goldenNow = time.Date(2098, 12, 25, 0, 0, 0, 0, time.UTC)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	testenv.Main(m, func(e *testenv.Env) {
		env, k8sClient = e, e.Client
		if err := startOperator(); err != nil {
			fmt.Fprintln(os.Stderr, "starting the operator:", err)
			_ = e.Stop()
			os.Exit(1)
		}
	})
}

func startOperator() error {
	ctx, cancel := context.WithCancel(context.Background())
	allowed := []string{}
	emulators = make(chan string, 10)
	var servers []*http.Server
	serve := func(h http.Handler) (string, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, srv)
		go func() { _ = srv.Serve(l) }()
		allowed = append(allowed, l.Addr().String())
		return "http://" + l.Addr().String(), nil
	}
	var err error
	if fakeAPI, err = serve(fakeAPIHandler()); err != nil {
		cancel()
		return err
	}
	for range cap(emulators) {
		url, err := serve(emulatorHandler{})
		if err != nil {
			cancel()
			return err
		}
		emulators <- url
	}
	hosts, err := publicapi.NewHostPolicy(allowed)
	if err != nil {
		cancel()
		return err
	}
	opts := controllers.Options{
		CredentialsNamespaces:   []string{nsCommands, nsGolden, nsHealthy, nsLeak, nsDiscovery},
		MaxConcurrentReconciles: 2,
		APIHosts:                hosts,
		// The plugin's tests ask for probes back to back: not the 30s floor of production.
		RequestFloor: time.Second,
		// Habilitations with spec.delivery Gateway get a credential (rotate-gateway-credential).
		GatewayURL: "http://jeton-gateway.jeton-system.svc:8080",
	}
	for _, ns := range opts.CredentialsNamespaces {
		if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			cancel()
			return err
		}
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  env.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   controllers.CacheOptions(opts),
		Logger:  logr.Discard(),
	})
	if err != nil {
		cancel()
		return err
	}
	if err := controllers.Setup(ctx, mgr, opts); err != nil {
		cancel()
		return err
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "operator stopped:", err)
			os.Exit(1)
		}
	}()
	env.Cleanup(func() {
		cancel()
		<-stopped
		for _, s := range servers {
			_ = s.Close()
		}
	})
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return fmt.Errorf("cache did not sync")
	}
	return nil
}

// fakeAPIHandler answers the golden probes the same way every time.
func fakeAPIHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /privileges", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"privileges":["unites_legales_etablissements_insee"]}`)
	})
	mux.HandleFunc("GET /api/introspect", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":[{"code":"00101","title":"Interdit","detail":"Votre token n'est pas valide ou n'est pas renseigné.","source":{},"meta":{}}]}`)
	})
	return mux
}

// emulatorHandler routes each listener to its own emulator, set by takeEmulator.
type emulatorHandler struct{}

var emulatorsByHost sync.Map // host -> *emulator.Server

func (emulatorHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if em, ok := emulatorsByHost.Load(r.Host); ok {
		em.(*emulator.Server).ServeHTTP(w, r)
		return
	}
	http.Error(w, "no emulator", http.StatusBadGateway)
}

// takeEmulator gives the test an emulator of its own, on an allowed address.
func takeEmulator(t *testing.T) (*emulator.Server, string) {
	t.Helper()
	var url string
	select {
	case url = <-emulators:
	default:
		t.Fatal("no emulator left: raise the capacity of emulators")
	}
	em := emulator.New()
	emulatorsByHost.Store(strings.TrimPrefix(url, "http://"), em)
	return em, url
}

// tokens records every token the tests give the cluster: no output may contain one.
var tokens struct {
	sync.Mutex
	list []string
}

func remember(tok string) string {
	tokens.Lock()
	defer tokens.Unlock()
	tokens.list = append(tokens.list, tok)
	return tok
}

// leaks returns the known tokens that s contains, in part or whole: the token, and its
// signature or payload alone.
func leaks(s string) []string {
	tokens.Lock()
	defer tokens.Unlock()
	var found []string
	for _, tok := range tokens.list {
		parts := append([]string{tok}, strings.Split(tok, ".")...)
		for _, p := range parts {
			if len(p) >= 16 && strings.Contains(s, p) {
				found = append(found, fmt.Sprintf("%.12s… (%d bytes)", p, len(p)))
				break
			}
		}
	}
	return found
}

// result is one in-process run of the plugin.
type result struct {
	stdout, stderr string
	code           int
}

// allOutput collects everything the plugin printed in this test binary, for the leak test.
var allOutput testenv.SyncBuffer

// kubectlJeton runs the plugin in-process against the test cluster with stdin, and fails
// the test if any output holds a token.
func kubectlJeton(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return run(t, env.Kubeconfig, time.Now, stdin, args...)
}

// kubectlJetonAs runs the plugin with another kubeconfig (another user, another cluster).
func kubectlJetonAs(t *testing.T, kubeconfig, stdin string, args ...string) result {
	t.Helper()
	return run(t, kubeconfig, time.Now, stdin, args...)
}

// goldenRun runs the plugin with the golden clock.
func goldenRun(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, env.Kubeconfig, func() time.Time { return goldenNow }, "", args...)
}

func run(t *testing.T, kubeconfig string, now func() time.Time, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := execute(ctx, append([]string{"--kubeconfig", kubeconfig}, args...),
		genericiooptions.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}, now)
	r := result{stdout: out.String(), stderr: errOut.String(), code: code}
	fmt.Fprintf(&allOutput, "$ kubectl jeton %s\n%s%s", strings.Join(args, " "), r.stdout, r.stderr)
	if l := leaks(r.stdout + r.stderr); len(l) > 0 {
		t.Fatalf("kubectl jeton %s printed tokens: %v", strings.Join(args, " "), l)
	}
	return r
}

// wantCode fails the test unless r exited with code.
func wantCode(t *testing.T, r result, code int, args string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("kubectl jeton %s: exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", args, r.code, code, r.stdout, r.stderr)
	}
}

func uniqueName(prefix string) string { return prefix + "-" + rand.String(6) }

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8sClient.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// tokenSecret creates Secret name in namespace holding tok under key "token".
func tokenSecret(t *testing.T, namespace, name, tok string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, StringData: map[string]string{"token": tok}}
	create(t, s)
	return s
}

// readyReason checks that obj's Ready condition describes its generation, with reason.
func readyReason(conds []metav1.Condition, generation int64, reason string) error {
	for _, c := range conds {
		if c.Type == jetonv1alpha1.ConditionReady {
			if c.ObservedGeneration != generation || c.Reason != reason {
				return fmt.Errorf("Ready %s/%s (generation %d of %d): %s", c.Status, c.Reason, c.ObservedGeneration, generation, c.Message)
			}
			return nil
		}
	}
	return fmt.Errorf("no Ready condition")
}

// waitReason waits until obj (a jeton resource) is reconciled with Ready reason.
func waitReason(t *testing.T, obj client.Object, reason string) {
	t.Helper()
	testenv.WaitFor(t, time.Minute, fmt.Sprintf("%T %s Ready reason %s", obj, obj.GetName(), reason), func(ctx context.Context) error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		var conds []metav1.Condition
		switch o := obj.(type) {
		case *jetonv1alpha1.PublicClient:
			conds = o.Status.Conditions
		case *jetonv1alpha1.Habilitation:
			conds = o.Status.Conditions
		case *jetonv1alpha1.TechnicalToken:
			conds = o.Status.Conditions
		}
		return readyReason(conds, obj.GetGeneration(), reason)
	})
}
