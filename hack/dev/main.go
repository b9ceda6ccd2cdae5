//go:build unix

// Command dev is the local run behind `make dev`: a real cluster (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and KWOK's simulated nodes from bin/, CRDs
// installed), the API emulator on 127.0.0.1:18080 with one token minted per sample Secret,
// the samples from config/samples, a sample Deployment whose pod runs on a simulated node,
// and the jeton manager as a child process, all stopped together by Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/testenv"
)

const (
	credentialsNamespace = "jeton-system"
	// workloadNamespace and workloadName are the sample Deployment of config/samples/workload.
	workloadNamespace = "trifouilly"
	workloadName      = "marches-publics"
	// managerStopTimeout is how long the manager gets to stop on SIGTERM before SIGKILL;
	// above its own graceful shutdown timeout (20s).
	managerStopTimeout = 30 * time.Second
)

// sampleToken is a token the local run mints in the emulator and stores in a Secret of
// the credentials namespace, under the name and key config/samples reference.
type sampleToken struct {
	secret string
	api    jetonv1alpha1.API
	mint   emulator.MintOptions
}

// sampleTokens must cover every tokenSecretRef of config/samples (main_test.go checks it).
var sampleTokens = []sampleToken{
	{"trifouilly-api-entreprise-token", jetonv1alpha1.APIEntreprise, emulator.MintOptions{
		Scopes: []string{"unites_legales_etablissements_insee", "attestations_fiscales"}, Subject: "Trifouilly - marchés publics"}},
	{"trifouilly-api-particulier-token", jetonv1alpha1.APIParticulier, emulator.MintOptions{
		Scopes: []string{"cnaf_quotient_familial"}, Subject: "Trifouilly - tarification cantine"}},
	{"bordeciel-demarches-numeriques-token", jetonv1alpha1.DemarchesNumeriques, emulator.MintOptions{
		Scopes: []string{"12345"}}},
	{"technical-api-entreprise-token", jetonv1alpha1.APIEntreprise, emulator.MintOptions{
		Scopes: []string{"unites_legales_etablissements_insee"}, Subject: "Jeton éditeur - jeton technique"}},
	{"technical-api-particulier-token", jetonv1alpha1.APIParticulier, emulator.MintOptions{
		Scopes: []string{"cnaf_quotient_familial"}, Subject: "Jeton éditeur - jeton technique"}},
	{"technical-demarches-numeriques-token", jetonv1alpha1.DemarchesNumeriques, emulator.MintOptions{
		Scopes: []string{"12345"}, ExpiresAt: time.Date(2027, 3, 31, 0, 0, 0, 0, time.UTC)}},
}

// config is where the local run puts things. The defaults are what the README and the
// samples (their baseURL is the emulator's address) expect; the flags exist so that a test
// can run it beside a developer's own `make dev`.
type config struct {
	dir, emulatorAddr, metricsAddr, probeAddr string
	// gatewayAddr serves the gateway (plain HTTP on loopback); gatewayProbeAddr its /readyz.
	gatewayAddr, gatewayProbeAddr string
}

func main() {
	root, err := testenv.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
	cfg := config{}
	flag.StringVar(&cfg.dir, "dir", filepath.Join(root, ".dev"), "directory for the kubeconfig and the cluster components' logs")
	flag.StringVar(&cfg.emulatorAddr, "emulator-addr", "127.0.0.1:18080", "API emulator address (the samples' baseURL)")
	flag.StringVar(&cfg.metricsAddr, "metrics-addr", "127.0.0.1:8080", "manager metrics address (plain HTTP)")
	flag.StringVar(&cfg.probeAddr, "probe-addr", "127.0.0.1:8081", "manager health probe address")
	flag.StringVar(&cfg.gatewayAddr, "gateway-addr", "127.0.0.1:18090", "gateway address (the BASE_URL of Habilitations delivered through it)")
	flag.StringVar(&cfg.gatewayProbeAddr, "gateway-probe-addr", "127.0.0.1:18091", "gateway health probe address")
	flag.Parse()

	// SIGHUP (the terminal closed) stops everything as Ctrl-C and SIGTERM do. After the
	// first one, the others are caught too, so a second Ctrl-C cannot cut the stop short
	// and leave processes behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	// `make dev | tee log`: Ctrl-C kills tee too, and the next write to stdout or stderr
	// would kill us with SIGPIPE before we stop the processes we started. Asking for
	// SIGPIPE makes such a write fail with EPIPE instead (ignored: see output).
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	if err := run(ctx, root, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

// output writes to w and never fails: the manager's output goes through it, so that a
// closed terminal pipe neither kills the manager with SIGPIPE nor blocks its logging.
type output struct{ w io.Writer }

func (o output) Write(p []byte) (int, error) {
	_, _ = o.w.Write(p)
	return len(p), nil
}

func run(ctx context.Context, root string, cfg config) (err error) {
	// Claim the emulator port first: failing here is cheap, after the control plane is not.
	ln, err := net.Listen("tcp", cfg.emulatorAddr)
	if err != nil {
		return fmt.Errorf("the API emulator cannot listen on %s (is another `make dev` running?): %w", cfg.emulatorAddr, err)
	}

	step("starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK with two simulated nodes (bin/), installing the CRDs")
	logDir := filepath.Join(cfg.dir, "logs")
	env, err := testenv.Start(testenv.WithCluster(), testenv.WithLogDir(logDir))
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer func() {
		step("stopping the cluster")
		if stopErr := env.Stop(); stopErr != nil && err == nil {
			err = fmt.Errorf("stopping the cluster: %w", stopErr)
		}
	}()

	kubeconfig := filepath.Join(cfg.dir, "kubeconfig")
	if err := os.MkdirAll(cfg.dir, 0o700); err != nil {
		return err
	}
	b, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		return err
	}
	if err := os.WriteFile(kubeconfig, b, 0o600); err != nil {
		return err
	}

	step("starting the API emulator on http://" + cfg.emulatorAddr)
	emu := emulator.New(emulator.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "emulator")))
	emuServer := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = emuServer.Serve(ln) }()
	defer func() {
		step("stopping the API emulator")
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = emuServer.Shutdown(shutdownCtx)
	}()

	step("creating namespace " + credentialsNamespace + " and the token Secrets (tokens minted by the emulator)")
	ids, err := createTokenSecrets(ctx, env, emu)
	if err != nil {
		return err
	}

	step("applying config/samples")
	out, stderr, err := env.Kubectl(ctx, nil, "apply", "-k", filepath.Join(root, "config", "samples"))
	if err != nil {
		return fmt.Errorf("kubectl apply -k config/samples: %v: %s", err, stderr)
	}
	fmt.Fprint(output{os.Stdout}, out)

	step("building the manager into bin/jeton and the gateway into bin/jeton-gateway")
	managerBin, gatewayBin := filepath.Join(root, "bin", "jeton"), filepath.Join(root, "bin", "jeton-gateway")
	for bin, pkg := range map[string]string{managerBin: "./cmd", gatewayBin: "./cmd/gateway"} {
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
		build.Dir, build.Stdout, build.Stderr = root, os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building %s: %w", pkg, err)
		}
	}

	step("starting the gateway on http://" + cfg.gatewayAddr)
	gw, err := startProcess(exec.Command(gatewayBin,
		"--kubeconfig", kubeconfig,
		"--credentials-namespaces", credentialsNamespace,
		"--allowed-api-hosts", cfg.emulatorAddr,
		"--listen-address", cfg.gatewayAddr,
		"--health-probe-bind-address", cfg.gatewayProbeAddr,
		"--metrics-bind-address", "0",
		"--replicas", "1",
		"--zap-devel"), "POD_NAMESPACE="+credentialsNamespace)
	if err != nil {
		return fmt.Errorf("starting the gateway: %w", err)
	}
	defer func() {
		step("stopping the gateway")
		if serr := gw.stop(); serr != nil && err == nil {
			err = serr
		}
	}()

	step("starting the manager")
	m, err := startProcess(exec.Command(managerBin,
		"--kubeconfig", kubeconfig,
		"--credentials-namespaces", credentialsNamespace,
		// The samples' baseURL: the emulator, plain HTTP on loopback.
		"--allowed-api-hosts", cfg.emulatorAddr,
		"--metrics-bind-address", cfg.metricsAddr,
		// Plain HTTP: the metrics endpoint listens on loopback only, so a newcomer can curl it.
		"--metrics-secure=false",
		"--health-probe-bind-address", cfg.probeAddr,
		// Habilitations with spec.delivery: Gateway get this URL as BASE_URL.
		"--gateway-url", "http://"+cfg.gatewayAddr,
		"--zap-devel"))
	if err != nil {
		return fmt.Errorf("starting the manager: %w", err)
	}

	if err := waitReady(ctx, "http://"+cfg.probeAddr+"/readyz", m.exited); err != nil {
		_ = m.stop()
		return err
	}
	if err := waitReady(ctx, "http://"+cfg.gatewayProbeAddr+"/readyz", gw.exited); err != nil {
		_ = m.stop()
		return fmt.Errorf("the gateway: %w", err)
	}
	step("applying config/samples/workload once namespace trifouilly exists (a Deployment using the injected token)")
	if err := applyWorkload(ctx, env, root, m.exited); err != nil {
		_ = m.stop()
		return err
	}
	step("waiting for the pod of Deployment trifouilly/marches-publics to run on a simulated node")
	if err := waitRunning(ctx, env, m.exited); err != nil {
		_ = m.stop()
		return err
	}
	printInstructions(root, cfg, logDir, ids)

	select {
	case <-ctx.Done():
		step("stopping (Ctrl-C, SIGTERM or SIGHUP): the manager first")
		return m.stop()
	case <-m.exited:
		return fmt.Errorf("the manager exited: %v", m.err)
	case <-gw.exited:
		_ = m.stop()
		return fmt.Errorf("the gateway exited: %v", gw.err)
	}
}

// applyWorkload waits for jeton to create the client namespace of the sample workload,
// then applies it.
func applyWorkload(ctx context.Context, env *testenv.Env, root string, exited <-chan struct{}) error {
	err := waitFor(ctx, time.Minute, exited, func(ctx context.Context) error {
		return env.Client.Get(ctx, types.NamespacedName{Name: workloadNamespace}, &corev1.Namespace{})
	})
	if err != nil {
		return fmt.Errorf("jeton did not create namespace %s: %w", workloadNamespace, err)
	}
	out, stderr, err := env.Kubectl(ctx, nil, "apply", "-f", filepath.Join(root, "config", "samples", "workload"))
	if err != nil {
		return fmt.Errorf("kubectl apply -f config/samples/workload: %v: %s", err, stderr)
	}
	fmt.Fprint(output{os.Stdout}, out)
	return nil
}

// waitRunning waits until the sample Deployment is rolled out and its pods are Running.
func waitRunning(ctx context.Context, env *testenv.Env, exited <-chan struct{}) error {
	key := types.NamespacedName{Namespace: workloadNamespace, Name: workloadName}
	err := waitFor(ctx, 2*time.Minute, exited, func(ctx context.Context) error {
		_, err := testenv.RolledOut(ctx, env.Client, key)
		return err
	})
	if err != nil {
		return fmt.Errorf("the sample Deployment %s did not run: %w", key, err)
	}
	return nil
}

// waitFor runs cond every 200ms until it returns nil, the manager exits, ctx ends (Ctrl-C)
// or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, exited <-chan struct{}, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("the manager exited")
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// createTokenSecrets mints one emulator token per sample Secret and stores it in the
// credentials namespace. It returns the token ids (never the tokens) by Secret name.
func createTokenSecrets(ctx context.Context, env *testenv.Env, emu *emulator.Server) (map[string]string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: credentialsNamespace}}
	if err := env.Client.Create(ctx, ns); err != nil {
		return nil, fmt.Errorf("creating namespace %s: %w", credentialsNamespace, err)
	}
	ids := map[string]string{}
	for _, t := range sampleTokens {
		tok, id, err := emu.Mint(t.api, t.mint)
		if err != nil {
			return nil, fmt.Errorf("minting the token of Secret %s: %w", t.secret, err)
		}
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: t.secret, Namespace: credentialsNamespace},
			StringData: map[string]string{"token": tok},
		}
		if err := env.Client.Create(ctx, secret); err != nil {
			return nil, fmt.Errorf("creating Secret %s: %w", t.secret, err)
		}
		ids[t.secret] = id
	}
	return ids, nil
}

// waitReady polls the manager's /readyz until it answers 200, the manager exits, or a
// minute passes.
func waitReady(ctx context.Context, url string, exited <-chan struct{}) error {
	err := waitFor(ctx, time.Minute, exited, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("the manager did not become ready: %w", err)
	}
	return nil
}

// startProcess starts cmd (the manager or the gateway) in its own process group: Ctrl-C
// reaches only us, and we stop it first, while the control plane it talks to is still up.
func startProcess(cmd *exec.Cmd, env ...string) (*managerProcess, error) {
	cmd.Stdout, cmd.Stderr = output{os.Stdout}, output{os.Stderr}
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m := &managerProcess{cmd: cmd, exited: make(chan struct{})}
	go func() {
		m.err = cmd.Wait()
		close(m.exited)
	}()
	return m, nil
}

// managerProcess is a running manager or gateway; exited is closed when it has exited, with err.
type managerProcess struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// stop sends SIGTERM to the manager's process group, and SIGKILL if it has not exited
// after managerStopTimeout, so that no process is left behind. It may be called after the
// manager exited on its own.
func (m *managerProcess) stop() error {
	pgid := m.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-m.exited:
		var exit *exec.ExitError
		if m.err != nil && !errors.As(m.err, &exit) {
			return m.err
		}
		if exit != nil && exit.ExitCode() != 0 {
			return fmt.Errorf("the manager exited with code %d", exit.ExitCode())
		}
		return nil
	case <-time.After(managerStopTimeout):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-m.exited
		return fmt.Errorf("the manager did not stop within %s; killed it", managerStopTimeout)
	}
}

func step(msg string) { fmt.Fprintf(output{os.Stderr}, "\n==> %s\n", msg) }

func printInstructions(root string, cfg config, logDir string, ids map[string]string) {
	fmt.Fprintf(output{os.Stderr}, `
==> jeton is running locally. In another terminal:

  cd %[1]s
  export KUBECONFIG=%[2]s
  bin/kubectl get publicclients,habilitations,technicaltokens -A
  bin/kubectl get secrets -A -l app.kubernetes.io/managed-by=jeton   # the injected Secrets
  bin/kubectl describe technicaltoken -n jeton-system api-entreprise
  bin/kubectl get nodes; bin/kubectl -n trifouilly get pods          # simulated by KWOK
  curl -s %[3]s/metrics | grep '^jeton_'

Break the API Entreprise technical token in the emulator (the next probes fail; after
failureThreshold failures the TechnicalToken turns Ready=False):

  curl -s -XPUT %[4]s/_emulator/tokens/%[5]s -d '{"behaviour":"revoked"}'

Other behaviours: unauthorized, expired, insufficient-privileges, rate-limited,
rate-limited-empty, slow, down, server-error. Back to normal: {"behaviour":"healthy"}.
Token ids: curl -s %[4]s/_emulator/tokens

Rotate Trifouilly's API Entreprise token: mint a new one in the emulator and put it in the
source Secret; the injected Secret follows within seconds, jeton sets the Deployment's
pod-template annotation to the new fingerprint, and the Deployment rolls out: a new
ReplicaSet whose pod is Running, the old pod gone.

  NEW=$(go run ./cmd/emulator mint --scopes unites_legales_etablissements_insee,attestations_fiscales APIEntreprise 2>/dev/null)
  bin/kubectl -n jeton-system create secret generic trifouilly-api-entreprise-token \
    --from-literal=token="$NEW" --dry-run=client -o yaml | bin/kubectl replace -f -
  bin/kubectl -n jeton-system get habilitation trifouilly-api-entreprise -o jsonpath='{.status.tokenFingerprint}{"\n"}'
  bin/kubectl -n trifouilly get secret api-entreprise -o jsonpath='{.metadata.annotations.jeton\.dev/token-fingerprint}{"\n"}'
  bin/kubectl -n trifouilly rollout status deployment/marches-publics
  bin/kubectl -n trifouilly get replicasets,pods -l app.kubernetes.io/name=marches-publics
  bin/kubectl -n jeton-system get events --field-selector involvedObject.name=trifouilly-api-entreprise

Call an API through the gateway: move Trifouilly's API Particulier habilitation to it, then
call as the application does (TOKEN is now a gateway credential, BASE_URL the gateway):

  bin/kubectl -n jeton-system patch habilitation trifouilly-api-particulier --type merge -p '{"spec":{"delivery":"Gateway"}}'
  bin/kubectl -n jeton-system wait habilitation/trifouilly-api-particulier --for=jsonpath='{.status.delivery}'=Gateway
  TOKEN=$(bin/kubectl -n trifouilly get secret api-particulier -o jsonpath='{.data.TOKEN}' | base64 -d)
  BASE_URL=$(bin/kubectl -n trifouilly get secret api-particulier -o jsonpath='{.data.BASE_URL}' | base64 -d)
  curl -s -H "X-Api-Key: $TOKEN" "$BASE_URL/v3/france_travail/statut/identifiant?identifiant=A1B2C3"

The cluster components' logs are in %[6]s.
Ctrl-C stops the manager, the gateway, the emulator and the cluster; nothing is left running.
`, root, filepath.Join(cfg.dir, "kubeconfig"), "http://"+cfg.metricsAddr, "http://"+cfg.emulatorAddr, ids["technical-api-entreprise-token"], logDir)
}
