// Command jeton is the jeton manager: it runs every jeton reconciler (PublicClient,
// Habilitation, TechnicalToken) against the cluster of its kubeconfig or service account.
package main

import (
	// The Europe/Paris zone (Démarches Numériques expiry dates) without the OS zoneinfo,
	// which the distroless image does not have.
	_ "time/tzdata"

	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/controllers"
	"github.com/jeton-dev/jeton/internal/budget"
	"github.com/jeton-dev/jeton/internal/isolation"
	"github.com/jeton-dev/jeton/internal/memlimit"
	"github.com/jeton-dev/jeton/internal/namespaces"
	"github.com/jeton-dev/jeton/internal/publicapi"
	"github.com/jeton-dev/jeton/internal/version"
)

const (
	// leaderElectionID names the Lease the replicas compete for.
	leaderElectionID = "jeton.dev"
	// fallbackNamespace is the operator namespace when neither POD_NAMESPACE nor the
	// service-account namespace file says otherwise (out-of-cluster runs).
	fallbackNamespace = "jeton-system"
	// serviceAccountNamespaceFile is where Kubernetes mounts the pod's namespace.
	serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
	// gracefulShutdownTimeout bounds how long reconcilers get to finish on SIGTERM; it
	// stays below the default 30s termination grace period of the pod.
	gracefulShutdownTimeout = 20 * time.Second
)

// config is the validated command line.
type config struct {
	metricsAddr             string
	metricsSecure           bool
	metricsCertPath         string
	metricsCertName         string
	metricsCertKey          string
	probeAddr               string
	pprofAddr               string
	leaderElect             bool
	leaderElectionNamespace string
	credentialsNamespaces   []string
	reservedNamespaces      []string
	operatorNamespace       string
	allowedAPIHosts         publicapi.HostPolicy
	maxConcurrentReconciles int
	kubeAPIQPS              float64
	kubeAPIBurst            int
	// podSecurityFloor: see --pod-security-floor.
	podSecurityFloor jetonv1alpha1.PodSecurityLevel
	// apiHostBudget: see --api-host-budget-per-minute.
	apiHostBudget int
	// defaultDelivery and gatewayURL: see --default-delivery and --gateway-url.
	defaultDelivery jetonv1alpha1.Delivery
	gatewayURL      string
	// testProbeInterval is for the tests only: see --test-probe-interval, which only binaries
	// built with the jetontest tag have (testflags_jetontest.go); always zero otherwise.
	testProbeInterval time.Duration
	zap               zap.Options
	// printVersion: --version prints the build and exits.
	printVersion bool
}

// parseFlags parses and validates args. operatorNamespace is the namespace the operator
// runs in, the default of --credentials-namespaces and --leader-election-namespace.
func parseFlags(fs *flag.FlagSet, args []string, operatorNamespace string) (*config, error) {
	c := &config{zap: zap.Options{}}
	var credNS string
	fs.StringVar(&c.metricsAddr, "metrics-bind-address", ":8443",
		`Address the Prometheus metrics endpoint binds to; "0" disables it.`)
	fs.BoolVar(&c.metricsSecure, "metrics-secure", true,
		"Serve /metrics over HTTPS, only to callers whose bearer token the API server authenticates (TokenReview) "+
			"and authorizes for GET /metrics (SubjectAccessReview). false serves plain HTTP to anyone: only for loopback addresses.")
	fs.StringVar(&c.metricsCertPath, "metrics-cert-path", "",
		"Directory holding the metrics server's certificate and key (e.g. a mounted cert-manager Secret), reloaded when they change; "+
			"empty: a self-signed certificate generated at start.")
	fs.StringVar(&c.metricsCertName, "metrics-cert-name", "tls.crt",
		"File name of the metrics server's certificate in --metrics-cert-path.")
	fs.StringVar(&c.metricsCertKey, "metrics-cert-key", "tls.key",
		"File name of the metrics server's private key in --metrics-cert-path.")
	fs.StringVar(&c.pprofAddr, "pprof-bind-address", "0",
		`Address of the Go profiler (/debug/pprof/), e.g. 127.0.0.1:6060 when diagnosing CPU or memory; "0" disables it.`)
	fs.StringVar(&c.probeAddr, "health-probe-bind-address", ":8081",
		"Address the /healthz and /readyz endpoints bind to.")
	fs.BoolVar(&c.leaderElect, "leader-elect", false,
		"Elect a leader (Lease "+leaderElectionID+") so that only one replica reconciles at a time.")
	fs.StringVar(&c.leaderElectionNamespace, "leader-election-namespace", operatorNamespace,
		"Namespace of the leader-election Lease.")
	fs.StringVar(&credNS, "credentials-namespaces", operatorNamespace,
		"Comma-separated namespaces where Habilitations and TechnicalTokens are honoured (and their token Secrets read).")
	var reservedNS, apiHosts string
	fs.StringVar(&reservedNS, "reserved-namespaces", "",
		"Comma-separated namespaces that may never be client namespaces, besides the credentials namespaces, the operator's own, default and kube-*.")
	fs.StringVar(&apiHosts, "allowed-api-hosts", "",
		"Comma-separated host[:port] (exact match) to which tokens may be sent besides the APIs' official hosts: an egress proxy, an emulator. HTTPS only, except loopback hosts, which may be plain HTTP.")
	fs.IntVar(&c.maxConcurrentReconciles, "max-concurrent-reconciles", 4,
		"Maximum concurrent reconciles per controller.")
	fs.Float64Var(&c.kubeAPIQPS, "kube-api-qps", 50,
		"Steady rate of requests per second to the Kubernetes API server (client-side limit).")
	fs.IntVar(&c.kubeAPIBurst, "kube-api-burst", 100,
		"Burst of requests to the Kubernetes API server above --kube-api-qps.")
	// The Pod Security floor (issue 21): labelling a namespace privileged is a cluster
	// admin's power, which an editor of PublicClients must not gain through jeton.
	var podSecurityFloor string
	fs.StringVar(&podSecurityFloor, "pod-security-floor", string(jetonv1alpha1.PodSecurityBaseline),
		"Most permissive Pod Security level a PublicClient's spec.isolation.podSecurity may ask for (privileged, baseline or restricted); "+
			"below it the PublicClient is Stalled (PodSecurityBelowFloor) and its namespace's labels are left as they are. "+
			"privileged lets every PublicClient editor grant privileged pods.")
	// --test-probe-interval exists only in binaries built for tests (testflags_jetontest.go).
	registerTestFlags(fs, c)
	fs.IntVar(&c.apiHostBudget, "api-host-budget-per-minute", budget.DefaultPerHostPerMinute,
		"Requests per minute the probes send to each public API host, all tokens together, whatever the host's spelling: the prober's share of the "+
			"per-address limit (1000/min per IP on API Entreprise and API Particulier; exceeding it bans the vendor's address for 12 hours), "+
			"which it shares with the gateway (keep the gateway's --prober-share-per-minute equal to it).")
	// The gateway (issue 22): how a Habilitation without spec.delivery reaches the API.
	var defaultDelivery string
	fs.StringVar(&defaultDelivery, "default-delivery", string(jetonv1alpha1.DeliveryDirect),
		"Delivery of the Habilitations whose spec.delivery is empty: Direct (the API token is injected) or Gateway "+
			"(a gateway credential is injected and BASE_URL points at --gateway-url; the token stays with jeton). Gateway moves every such client at once.")
	fs.StringVar(&c.gatewayURL, "gateway-url", "",
		"URL of jeton's gateway as client workloads reach it, written as BASE_URL in Gateway delivery, e.g. http://jeton-gateway.jeton-system.svc:8080. "+
			"Empty: no gateway (Gateway delivery is then refused: GatewayNotConfigured).")
	c.zap.BindFlags(fs)
	fs.BoolVar(&c.printVersion, "version", false, "Print the version, commit, build date and Go version, and exit.")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: jeton takes flags only", fs.Args())
	}

	var err error
	if c.credentialsNamespaces, err = namespaces.ParseList(credNS); err != nil {
		return nil, fmt.Errorf("--credentials-namespaces: %w", err)
	}
	c.operatorNamespace = operatorNamespace
	if strings.TrimSpace(reservedNS) != "" {
		if c.reservedNamespaces, err = namespaces.ParseList(reservedNS); err != nil {
			return nil, fmt.Errorf("--reserved-namespaces: %w", err)
		}
	}
	if c.allowedAPIHosts, err = publicapi.NewHostPolicy(strings.Split(apiHosts, ",")); err != nil {
		return nil, fmt.Errorf("--allowed-api-hosts: %w", err)
	}
	if msgs := validation.IsDNS1123Label(c.leaderElectionNamespace); c.leaderElect && len(msgs) > 0 {
		return nil, fmt.Errorf("--leader-election-namespace %q is not a valid namespace name: %s",
			c.leaderElectionNamespace, strings.Join(msgs, "; "))
	}
	if err := c.validateMetricsTLS(); err != nil {
		return nil, err
	}
	if c.podSecurityFloor, err = isolation.ParsePodSecurityLevel(podSecurityFloor); err != nil {
		return nil, fmt.Errorf("--pod-security-floor: %w", err)
	}
	if c.maxConcurrentReconciles < 1 {
		return nil, fmt.Errorf("--max-concurrent-reconciles must be at least 1, got %d", c.maxConcurrentReconciles)
	}
	if c.apiHostBudget < 1 {
		return nil, fmt.Errorf("--api-host-budget-per-minute must be at least 1, got %d", c.apiHostBudget)
	}
	if c.defaultDelivery, err = parseDelivery(defaultDelivery); err != nil {
		return nil, fmt.Errorf("--default-delivery: %w", err)
	}
	if err := validateGatewayURL(c.gatewayURL); err != nil {
		return nil, fmt.Errorf("--gateway-url: %w", err)
	}
	if c.defaultDelivery == jetonv1alpha1.DeliveryGateway && c.gatewayURL == "" {
		return nil, errors.New("--default-delivery=Gateway needs --gateway-url: the URL of the gateway the injected BASE_URL points at")
	}
	if c.kubeAPIQPS <= 0 || c.kubeAPIBurst < 1 {
		return nil, fmt.Errorf("--kube-api-qps must be above 0 and --kube-api-burst at least 1, got %g and %d", c.kubeAPIQPS, c.kubeAPIBurst)
	}
	return c, nil
}

// parseDelivery reads a delivery as the CRD spells it (Direct or Gateway).
func parseDelivery(s string) (jetonv1alpha1.Delivery, error) {
	switch d := jetonv1alpha1.Delivery(s); d {
	case jetonv1alpha1.DeliveryDirect, jetonv1alpha1.DeliveryGateway:
		return d, nil
	}
	return "", fmt.Errorf("%q is neither %s nor %s", s, jetonv1alpha1.DeliveryDirect, jetonv1alpha1.DeliveryGateway)
}

// validateGatewayURL accepts an absolute http or https URL with a host, and nothing that
// would change what the client libraries send or leak: no user info (it would be a
// credential in every client namespace), no query or fragment (client libraries append
// paths to BASE_URL). Empty: no gateway.
func validateGatewayURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return errors.New("not a URL") // url.Parse's error quotes the value
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("scheme %q: want http or https", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return errors.New("no host")
	case u.User != nil:
		return errors.New("user info is not allowed: it would be copied into every client namespace")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		return errors.New("a query or fragment is not allowed: client libraries append paths to BASE_URL")
	}
	return nil
}

// validateMetricsTLS checks the metrics certificate flags. A certificate directory given
// without its files would otherwise make controller-runtime fall back to a self-signed
// certificate without a word.
func (c *config) validateMetricsTLS() error {
	if c.metricsCertPath == "" {
		return nil
	}
	if !c.metricsSecure {
		return errors.New("--metrics-cert-path needs --metrics-secure: plain HTTP uses no certificate")
	}
	files := []struct{ flag, name string }{{"--metrics-cert-name", c.metricsCertName}, {"--metrics-cert-key", c.metricsCertKey}}
	for _, f := range files {
		if f.name == "" || filepath.Base(f.name) != f.name {
			return fmt.Errorf("%s must be a file name in --metrics-cert-path, got %q", f.flag, f.name)
		}
	}
	for _, f := range files {
		p := filepath.Join(c.metricsCertPath, f.name)
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			return fmt.Errorf("%s: %s is not a readable file (--metrics-cert-path %q)", f.flag, p, c.metricsCertPath)
		}
	}
	return nil
}

// metricsOptions configures the metrics server. Secure (the default): HTTPS, HTTP/1.1 only,
// and every request authenticated with a TokenReview and authorized with a
// SubjectAccessReview (nonResourceURL /metrics, verb get) against the API server.
func (c *config) metricsOptions() metricsserver.Options {
	o := metricsserver.Options{BindAddress: c.metricsAddr, SecureServing: c.metricsSecure}
	if !c.metricsSecure {
		return o
	}
	o.FilterProvider = filters.WithAuthenticationAndAuthorization
	// HTTP/2 stays off, as in the kubebuilder scaffold: it exposed servers to the HTTP/2
	// Stream Cancellation and Rapid Reset CVEs, and Prometheus scrapes over HTTP/1.1.
	o.TLSOpts = []func(*tls.Config){func(tc *tls.Config) {
		tc.NextProtos = []string{"http/1.1"}
		tc.MinVersion = tls.VersionTLS12
	}}
	if c.metricsCertPath != "" {
		// controller-runtime watches these files and reloads them when they change.
		o.CertDir, o.CertName, o.KeyName = c.metricsCertPath, c.metricsCertName, c.metricsCertKey
	}
	return o
}

// isLoopback reports whether addr (host:port) binds to loopback addresses only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// operatorNamespace is the namespace jeton runs in: $POD_NAMESPACE (downward API), else
// the service-account namespace file, else jeton-system.
func operatorNamespace(getenv func(string) string, readFile func(string) ([]byte, error)) string {
	if ns := strings.TrimSpace(getenv("POD_NAMESPACE")); ns != "" {
		return ns
	}
	if b, err := readFile(serviceAccountNamespaceFile); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return fallbackNamespace
}

// newScheme knows the built-in kinds and jeton's.
func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(jetonv1alpha1.AddToScheme(s))
	return s
}

func main() {
	// The kubeconfig flag is registered on flag.CommandLine by controller-runtime.
	cfg, err := parseFlags(flag.CommandLine, os.Args[1:], operatorNamespace(os.Getenv, os.ReadFile))
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "jeton: invalid flags:", err)
		os.Exit(1)
	}
	if cfg.printVersion {
		fmt.Println(version.Get().String("jeton"))
		os.Exit(0)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&cfg.zap)))
	// First line of every run: a bug report's logs say which build ran.
	ctrl.Log.WithName("setup").Info("jeton build", version.Get().KeysAndValues()...)
	limit, err := memlimit.Soft(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "jeton:", err)
		os.Exit(1)
	}
	if limit > 0 {
		debug.SetMemoryLimit(limit)
		ctrl.Log.WithName("setup").Info("Go soft memory limit set to 80% of the container's", "bytes", limit)
	}
	if err := run(ctrl.SetupSignalHandler(), cfg); err != nil {
		ctrl.Log.Error(err, "manager stopped with an error")
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg *config) error {
	log := ctrl.Log.WithName("setup")
	restConfig, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading the kubeconfig (set --kubeconfig or KUBECONFIG, or run in a pod): %w", err)
	}
	restConfig.QPS, restConfig.Burst = float32(cfg.kubeAPIQPS), cfg.kubeAPIBurst
	log.Info("starting jeton",
		"apiServer", restConfig.Host,
		"credentialsNamespaces", cfg.credentialsNamespaces,
		"reservedNamespaces", cfg.reservedNamespaces,
		"allowedAPIHosts", cfg.allowedAPIHosts.Allowed(),
		"metricsBindAddress", cfg.metricsAddr,
		"metricsSecure", cfg.metricsSecure,
		"metricsCertPath", cfg.metricsCertPath,
		"healthProbeBindAddress", cfg.probeAddr,
		"leaderElect", cfg.leaderElect,
		"leaderElectionNamespace", cfg.leaderElectionNamespace,
		"maxConcurrentReconciles", cfg.maxConcurrentReconciles,
		"kubeAPIQPS", cfg.kubeAPIQPS,
		"kubeAPIBurst", cfg.kubeAPIBurst,
		"podSecurityFloor", cfg.podSecurityFloor, "apiHostBudgetPerMinute", cfg.apiHostBudget,
		"defaultDelivery", cfg.defaultDelivery, "gatewayURL", cfg.gatewayURL)

	opts := controllers.Options{
		CredentialsNamespaces:   cfg.credentialsNamespaces,
		MaxConcurrentReconciles: cfg.maxConcurrentReconciles,
		ProbeInterval:           cfg.testProbeInterval,
		APIHostBudgetPerMinute:  cfg.apiHostBudget,
		APIHosts:                cfg.allowedAPIHosts,
		OperatorNamespace:       cfg.operatorNamespace,
		ReservedNamespaces:      cfg.reservedNamespaces,
		PodSecurityFloor:        cfg.podSecurityFloor,
		DefaultDelivery:         cfg.defaultDelivery,
		GatewayURL:              cfg.gatewayURL,
	}
	if cfg.testProbeInterval > 0 {
		log.Info("WARNING: --test-probe-interval is set: every TechnicalToken is probed at this interval, ignoring spec.interval; this flag is for tests only",
			"testProbeInterval", cfg.testProbeInterval)
	}
	if !cfg.metricsSecure && cfg.metricsAddr != "0" && !isLoopback(cfg.metricsAddr) {
		log.Info("WARNING: --metrics-secure=false serves /metrics over plain HTTP to anyone who can reach it, with every client name and token expiry; bind it to a loopback address or keep --metrics-secure",
			"metricsBindAddress", cfg.metricsAddr)
	}
	shutdown := gracefulShutdownTimeout
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                        newScheme(),
		Cache:                         controllers.CacheOptions(opts),
		Metrics:                       cfg.metricsOptions(),
		HealthProbeBindAddress:        cfg.probeAddr,
		PprofBindAddress:              cfg.pprofAddr,
		LeaderElection:                cfg.leaderElect,
		LeaderElectionID:              leaderElectionID,
		LeaderElectionNamespace:       cfg.leaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true, // safe: main returns right after the manager stops
		GracefulShutdownTimeout:       &shutdown,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := controllers.Setup(ctx, mgr, opts); err != nil {
		return fmt.Errorf("setting up the controllers: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	// Ready once the informers have synced: before that, the replica would act on an
	// incomplete view of the cluster.
	cacheSynced := func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("informer caches not synced yet")
		}
		return nil
	}
	if err := mgr.AddReadyzCheck("informers", cacheSynced); err != nil {
		return err
	}
	log.Info("starting the manager")
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running the manager: %w", err)
	}
	log.Info("manager stopped")
	return nil
}
