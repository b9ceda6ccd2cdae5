//go:build unix

// Command dev is the local run behind `make dev`: a real control plane (etcd and
// kube-apiserver from bin/, CRDs installed), the API emulator on 127.0.0.1:18080 with one
// token minted per sample Secret, the samples from config/samples, and the jeton manager
// as a child process, all stopped together by Ctrl-C.
package main

import (
	"context"
	"errors"
	"fmt"
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
	emulatorAddr         = "127.0.0.1:18080"
	metricsAddr          = "127.0.0.1:8080"
	probeAddr            = "127.0.0.1:8081"
	// workloadNamespace is the client namespace of config/samples/workload.
	workloadNamespace = "trifouilly"
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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) (err error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	// Claim the emulator port first: failing here is cheap, after the control plane is not.
	ln, err := net.Listen("tcp", emulatorAddr)
	if err != nil {
		return fmt.Errorf("the API emulator cannot listen on %s (is another `make dev` running?): %w", emulatorAddr, err)
	}

	step("starting etcd and kube-apiserver (bin/), installing the CRDs")
	env, err := testenv.Start()
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer func() {
		step("stopping the control plane")
		if stopErr := env.Stop(); stopErr != nil && err == nil {
			err = fmt.Errorf("stopping the control plane: %w", stopErr)
		}
	}()

	devDir := filepath.Join(root, ".dev")
	kubeconfig := filepath.Join(devDir, "kubeconfig")
	if err := os.MkdirAll(devDir, 0o700); err != nil {
		return err
	}
	b, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		return err
	}
	if err := os.WriteFile(kubeconfig, b, 0o600); err != nil {
		return err
	}

	step("starting the API emulator on http://" + emulatorAddr)
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
	fmt.Print(out)

	step("building the manager into bin/jeton")
	managerBin := filepath.Join(root, "bin", "jeton")
	build := exec.CommandContext(ctx, "go", "build", "-o", managerBin, "./cmd")
	build.Dir, build.Stdout, build.Stderr = root, os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the manager: %w", err)
	}

	step("starting the manager")
	manager := exec.Command(managerBin,
		"--kubeconfig", kubeconfig,
		"--credentials-namespaces", credentialsNamespace,
		// The samples' baseURL: the emulator, plain HTTP on loopback.
		"--allowed-api-hosts", emulatorAddr,
		"--metrics-bind-address", metricsAddr,
		// Plain HTTP: the metrics endpoint listens on loopback only, so a newcomer can curl it.
		"--metrics-secure=false",
		"--health-probe-bind-address", probeAddr,
		"--zap-devel")
	manager.Stdout, manager.Stderr = os.Stdout, os.Stderr
	// Its own process group: Ctrl-C reaches only us, and we stop the manager first,
	// while the control plane it talks to is still up.
	manager.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := manager.Start(); err != nil {
		return fmt.Errorf("starting the manager: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- manager.Wait() }()

	if err := waitReady(ctx, "http://"+probeAddr+"/readyz", exited); err != nil {
		stopManager(manager, exited)
		return err
	}
	step("applying config/samples/workload once namespace trifouilly exists (a Deployment using the injected token)")
	if err := applyWorkload(ctx, env, root, exited); err != nil {
		_ = stopManager(manager, exited)
		return err
	}
	printInstructions(root, ids)

	select {
	case <-ctx.Done():
		step("Ctrl-C: stopping the manager")
		return stopManager(manager, exited)
	case err := <-exited:
		return fmt.Errorf("the manager exited: %v", err)
	}
}

// applyWorkload waits for jeton to create the client namespace of the sample workload,
// then applies it.
func applyWorkload(ctx context.Context, env *testenv.Env, root string, exited <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		ns := &corev1.Namespace{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: workloadNamespace}, ns); err == nil {
			break
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the manager exited: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("jeton did not create namespace %s: %w", workloadNamespace, ctx.Err())
		case <-tick.C:
		}
	}
	out, stderr, err := env.Kubectl(ctx, nil, "apply", "-f", filepath.Join(root, "config", "samples", "workload"))
	if err != nil {
		return fmt.Errorf("kubectl apply -f config/samples/workload: %v: %s", err, stderr)
	}
	fmt.Print(out)
	return nil
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
func waitReady(ctx context.Context, url string, exited <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if resp, err := http.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the manager exited before becoming ready: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("the manager did not become ready (%s): %w", url, ctx.Err())
		case <-tick.C:
		}
	}
}

// stopManager sends SIGTERM to the manager's process group, and SIGKILL if it has not
// exited after managerStopTimeout, so that no process is left behind.
func stopManager(manager *exec.Cmd, exited <-chan error) error {
	pgid := manager.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			return err
		}
		if exit != nil && exit.ExitCode() != 0 {
			return fmt.Errorf("the manager exited with code %d", exit.ExitCode())
		}
		return nil
	case <-time.After(managerStopTimeout):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
		return fmt.Errorf("the manager did not stop within %s; killed it", managerStopTimeout)
	}
}

func step(msg string) { fmt.Fprintf(os.Stderr, "\n==> %s\n", msg) }

func printInstructions(root string, ids map[string]string) {
	fmt.Fprintf(os.Stderr, `
==> jeton is running locally. In another terminal:

  cd %s
  export KUBECONFIG=$PWD/.dev/kubeconfig
  bin/kubectl get publicclients,habilitations,technicaltokens -A
  bin/kubectl get secrets -A -l app.kubernetes.io/managed-by=jeton   # the injected Secrets
  bin/kubectl describe technicaltoken -n jeton-system api-entreprise
  curl -s localhost:8080/metrics | grep '^jeton_'

Break the API Entreprise technical token in the emulator (the next probes fail; after
failureThreshold failures the TechnicalToken turns Ready=False):

  curl -s -XPUT localhost:18080/_emulator/tokens/%s -d '{"behaviour":"revoked"}'

Other behaviours: unauthorized, expired, insufficient-privileges, rate-limited,
rate-limited-empty, slow, down, server-error. Back to normal: {"behaviour":"healthy"}.
Token ids: curl -s localhost:18080/_emulator/tokens

Rotate Trifouilly's API Entreprise token: mint a new one in the emulator and put it in the
source Secret; the injected Secret follows within seconds and the Deployment
trifouilly/marches-publics is restarted (its pod-template annotation names the new
fingerprint):

  NEW=$(go run ./cmd/emulator mint --scopes unites_legales_etablissements_insee,attestations_fiscales APIEntreprise 2>/dev/null)
  bin/kubectl -n jeton-system create secret generic trifouilly-api-entreprise-token \
    --from-literal=token="$NEW" --dry-run=client -o yaml | bin/kubectl replace -f -
  bin/kubectl -n jeton-system get habilitation trifouilly-api-entreprise -o jsonpath='{.status.tokenFingerprint}{"\n"}'
  bin/kubectl -n trifouilly get secret api-entreprise -o jsonpath='{.metadata.annotations.jeton\.dev/token-fingerprint}{"\n"}'
  bin/kubectl -n trifouilly get deployment marches-publics -o jsonpath='{.spec.template.metadata.annotations}{"\n"}'
  bin/kubectl -n jeton-system get events --field-selector involvedObject.name=trifouilly-api-entreprise

Ctrl-C stops the manager, the emulator and the control plane.
`, root, ids["technical-api-entreprise-token"])
}
