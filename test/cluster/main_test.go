// Package cluster tests what jeton does to a cluster that acts on it: a fuller test cluster
// (testenv.WithCluster: kube-controller-manager, kube-scheduler and KWOK's simulated nodes
// beside etcd and kube-apiserver), so that the restarts jeton asks for are real rollouts to
// new ReplicaSets whose pods run, deleted namespaces are really emptied and finalized, and
// the operator's own Deployment gets its (simulated) pods. The manager binary runs as a
// child process of the tests, built once per package run.
package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/jeton-dev/jeton/internal/testenv"
)

// credNS is the credentials namespace of the operator the tests share.
const credNS = "jeton-credentials"

var (
	env *testenv.Env
	// operatorBin is the manager binary, built once in TestMain.
	operatorBin string
	// op is the operator every test shares; a test may restart it (restartOperator).
	op *operator
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "jeton-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		return 1
	}
	defer os.RemoveAll(dir)

	if env, err = testenv.Start(testenv.WithCluster()); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		return 1
	}
	code := 1
	defer func() {
		if code != 0 {
			fmt.Fprint(os.Stderr, env.ComponentLogs(20))
		}
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "cluster: stopping the cluster:", err)
		}
	}()
	// Built as shipped (CGO off, like the image).
	operatorBin = filepath.Join(dir, "jeton")
	build := exec.Command("go", "build", "-o", operatorBin, "./cmd")
	build.Dir = env.Root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "cluster: go build ./cmd: %v\n%s", err, out)
		return 1
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: credNS}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		fmt.Fprintln(os.Stderr, "cluster: creating namespace:", err)
		return 1
	}
	if op, err = startOperator(); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		return 1
	}
	defer func() { op.stop() }()
	if err := testenv.Poll(time.Minute, 100*time.Millisecond, op.ready); err != nil {
		fmt.Fprintf(os.Stderr, "cluster: the operator did not become ready: %v\n%s\n", err, testenv.LastLines(op.out.String(), 40))
		return 1
	}
	code = m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "operator output (last 40 lines):\n%s\n", testenv.LastLines(op.out.String(), 40))
	}
	return code
}

// waitFor polls cond until it returns nil, and fails the test with the last error when
// the deadline passes. Tests wait on conditions, never on the clock.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) error) {
	t.Helper()
	if err := testenv.Poll(timeout, 100*time.Millisecond, cond); err != nil {
		t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
	}
}

// operator is the jeton manager binary running against the test cluster.
type operator struct {
	cmd         *exec.Cmd
	out         *testenv.SyncBuffer
	metricsAddr string
	probeAddr   string
	done        chan struct{}
	exitErr     error
}

func startOperator() (*operator, error) {
	o := &operator{out: &testenv.SyncBuffer{}, done: make(chan struct{})}
	for _, a := range []*string{&o.metricsAddr, &o.probeAddr} {
		l, err := testenv.FreeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		*a = l
	}
	o.cmd = exec.Command(operatorBin,
		"--kubeconfig", env.Kubeconfig,
		"--credentials-namespaces", credNS,
		"--metrics-bind-address", o.metricsAddr,
		"--metrics-secure=false", // loopback only: the tests scrape plain HTTP
		"--health-probe-bind-address", o.probeAddr,
	)
	o.cmd.Stdout, o.cmd.Stderr = o.out, o.out
	if err := o.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the operator: %w", err)
	}
	go func() {
		o.exitErr = o.cmd.Wait()
		close(o.done)
	}()
	return o, nil
}

// restartOperator stops the shared operator and starts a new one, ready: its first pass
// over every resource is the resync after a restart.
func restartOperator(t *testing.T) {
	t.Helper()
	op.stop()
	var err error
	if op, err = startOperator(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the restarted operator to be ready", op.ready)
}

// stop sends SIGTERM and waits for the exit (SIGKILL after 25s).
func (o *operator) stop() {
	select {
	case <-o.done:
		return
	default:
	}
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-o.done:
	case <-time.After(25 * time.Second):
		_ = o.cmd.Process.Signal(syscall.SIGKILL)
		<-o.done
	}
}

// ready returns nil once /readyz passes: the informers have synced.
func (o *operator) ready(ctx context.Context) error {
	select {
	case <-o.done:
		return fmt.Errorf("the operator exited: %v", o.exitErr)
	default:
	}
	return testenv.Readyz(ctx, o.probeAddr)
}

// quiet returns nil once the operator has reconciled at least n Habilitations since it
// started and has none queued or in flight: what it had to do is done.
func (o *operator) quiet(n int) func(context.Context) error {
	return func(context.Context) error {
		url := "http://" + o.metricsAddr + "/metrics"
		done, _, err := testenv.ScrapeMetric(url, "controller_runtime_reconcile_total", `controller="habilitation"`)
		if err != nil {
			return err
		}
		if done < float64(n) {
			return fmt.Errorf("%v of at least %d Habilitation reconciles", done, n)
		}
		active, _, err := testenv.ScrapeMetric(url, "controller_runtime_active_workers", `controller="habilitation"`)
		if err != nil {
			return err
		}
		depth, _, err := testenv.ScrapeMetric(url, "workqueue_depth", `name="habilitation"`)
		if err != nil {
			return err
		}
		if active != 0 || depth != 0 {
			return fmt.Errorf("%v Habilitation reconciles in flight, %v queued", active, depth)
		}
		return nil
	}
}

// noToken fails the test if text holds the secret part of any of tokens (a JWT's
// signature): test output and the operator's logs must never show one.
func noToken(t *testing.T, where, text string, tokens []string) {
	t.Helper()
	for _, tok := range tokens {
		secret := tok
		if i := strings.LastIndexByte(tok, '.'); i >= 0 {
			secret = tok[i+1:]
		}
		if secret != "" && strings.Contains(text, secret) {
			t.Errorf("%s contains a token", where)
			return
		}
	}
}
