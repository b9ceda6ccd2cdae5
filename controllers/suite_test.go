package controllers

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/jeton-dev/jeton/internal/publicapi"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// The whole package shares one control plane and one manager running every reconciler,
// as in production. Tests use their own namespaces and names so they do not interfere.
var (
	env       *testenv.Env
	k8sClient client.Client
	// testOptions are the options the manager runs with; credentials namespace: credNS.
	testOptions Options
	// logs captures every log line the manager writes, at debug level, so tests can assert
	// that no token ever appears in them.
	logs testenv.SyncBuffer
)

const credNS = "jeton-system"

func TestMain(m *testing.M) {
	testenv.Main(m, func(e *testenv.Env) {
		env = e
		k8sClient = e.Client
		if err := startManager(); err != nil {
			fmt.Fprintln(os.Stderr, "starting the manager:", err)
			_ = e.Stop()
			os.Exit(1)
		}
	})
}

// emulatorPoolSize is how many test emulators may be served (ttEmulator).
const emulatorPoolSize = 48

// unreachableAPIHost is an allowed API host where nothing listens.
const unreachableAPIHost = "127.0.0.1:1"

// emulatorListeners are loopback listeners listed in testOptions.APIHosts, one per emulator.
var emulatorListeners chan net.Listener

func startManager() error {
	logger := zap.New(zap.WriteTo(&logs), zap.Level(zapcore.Level(-5)), zap.UseDevMode(false))
	ctrl.SetLogger(logger)

	ctx, cancel := context.WithCancel(context.Background())
	// The emulators of the tests listen on loopback addresses opened now, so that they can
	// be listed in the allowed API hosts, as --allowed-api-hosts does for the binary.
	allowed := []string{unreachableAPIHost}
	emulatorListeners = make(chan net.Listener, emulatorPoolSize)
	for range emulatorPoolSize {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			cancel()
			return err
		}
		emulatorListeners <- l
		allowed = append(allowed, l.Addr().String())
	}
	hosts, err := publicapi.NewHostPolicy(allowed)
	if err != nil {
		cancel()
		return err
	}
	testOptions = Options{
		CredentialsNamespaces:   []string{credNS},
		MaxConcurrentReconciles: 4,
		// Probe TechnicalTokens every second (the CRD's minimum is 30s) so that tests of
		// failures, recovery and Retry-After run in seconds.
		ProbeInterval: time.Second,
		APIHosts:      hosts,
		// Habilitations with spec.delivery Gateway get a credential (gateway_test.go).
		GatewayURL: testGatewayURL,
	}
	if err := k8sClient.Create(ctx, namespaceObject(credNS)); err != nil {
		cancel()
		return err
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  env.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		// The Habilitations of the second manager (startDefaultGatewayManager) are its own.
		Cache:  withoutSecondManagersObjects(CacheOptions(testOptions)),
		Logger: logger,
	})
	if err != nil {
		cancel()
		return err
	}
	if err := Setup(ctx, mgr, testOptions); err != nil {
		cancel()
		return err
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager stopped:", err)
			os.Exit(1)
		}
	}()
	env.Cleanup(func() { cancel(); <-stopped })
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return fmt.Errorf("cache did not sync")
	}
	return startDefaultGatewayManager(ctx, logger)
}
