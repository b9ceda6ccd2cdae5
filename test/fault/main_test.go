// Package fault runs the real operator binary (cmd/, built once per package run) as child
// processes against a real control plane and breaks things under it: SIGKILL at random
// points of convergence, an API server restart, two replicas with leader election, an API
// answering 429s and 5xx bursts. The default run is kept short for `make test`; longer
// variants run with `go test ./test/fault -fault.long` or JETON_FAULT_LONG=1.
//
// Randomness is seeded and logged: rerun a failure with JETON_FAULT_SEED=<seed>.
package fault

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jeton-dev/jeton/internal/testenv"
)

var (
	env *testenv.Env
	// operatorBin is the manager binary, built once in TestMain.
	operatorBin string
	long        = flag.Bool("fault.long", os.Getenv("JETON_FAULT_LONG") == "1",
		"run the longer fault variants (more objects, more kills, more restarts)")
	// The scale variant of TestKillAtRandomPoints (docs/benchmarks.md): e.g.
	// go test ./test/fault -run TestKillAtRandomPoints -count 10 -timeout 4h -fault.clients 1000 -fault.kills 10
	clients = flag.Int("fault.clients", 0, "TestKillAtRandomPoints: public clients (default 30, 100 with -fault.long)")
	kills   = flag.Int("fault.kills", 0, "TestKillAtRandomPoints: SIGKILLs, half during the first injection, half during rotation (default 3, 10 with -fault.long)")
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "jeton-fault-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault:", err)
		return 1
	}
	defer os.RemoveAll(dir)

	e, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault:", err)
		return 1
	}
	env = e
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "fault: stopping the control plane:", err)
		}
		for _, d := range certDirs {
			_ = os.RemoveAll(d)
		}
	}()

	// Built as shipped (CGO off, like the image), once for every test of the package.
	operatorBin = filepath.Join(dir, "jeton")
	build := exec.Command("go", "build", "-o", operatorBin, "./cmd")
	build.Dir = env.Root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "fault: go build ./cmd: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// seeded returns the test's random source: JETON_FAULT_SEED when set, else a fresh seed,
// logged so that a failure can be replayed.
func seeded(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("JETON_FAULT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("JETON_FAULT_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("random seed %d (replay with JETON_FAULT_SEED=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// waitFor polls cond every 50ms until it returns nil, and fails the test with the last
// error when the deadline passes. Tests wait on conditions, never on the clock.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) error) {
	t.Helper()
	if err := testenv.Poll(timeout, 50*time.Millisecond, cond); err != nil {
		t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
	}
}

// operator is one running jeton manager process.
type operator struct {
	name        string
	cmd         *exec.Cmd
	out         *testenv.SyncBuffer
	metricsAddr string
	probeAddr   string
	done        chan struct{} // closed when the process has exited
	exitErr     error
}

// startOperator starts the manager binary against the test control plane. extra flags
// come after the defaults and override them. The process is killed when the test ends;
// its output is logged when the test failed.
func startOperator(t *testing.T, name, credentialsNamespace string, extra ...string) *operator {
	t.Helper()
	o := &operator{name: name, out: &testenv.SyncBuffer{}, metricsAddr: testenv.FreeAddr(t), probeAddr: testenv.FreeAddr(t), done: make(chan struct{})}
	args := append([]string{
		"--kubeconfig", env.Kubeconfig,
		"--credentials-namespaces", credentialsNamespace,
		"--metrics-bind-address", o.metricsAddr,
		"--metrics-secure=false", // loopback only: the tests scrape plain HTTP
		"--health-probe-bind-address", o.probeAddr,
		// Debug logs: more places a token could leak from, and all of them are checked.
		"--zap-log-level", "debug",
	}, extra...)
	o.cmd = exec.Command(operatorBin, args...)
	o.cmd.Stdout, o.cmd.Stderr = o.out, o.out
	if err := o.cmd.Start(); err != nil {
		t.Fatalf("starting operator %s: %v", name, err)
	}
	go func() {
		o.exitErr = o.cmd.Wait()
		close(o.done)
	}()
	t.Cleanup(func() {
		o.kill(t)
		if t.Failed() {
			t.Logf("operator %s output (last 60 lines):\n%s", name, testenv.LastLines(o.out.String(), 60))
		}
	})
	return o
}

// kill sends SIGKILL, as a node failure or the OOM killer would, and waits for the exit.
func (o *operator) kill(t *testing.T) {
	t.Helper()
	select {
	case <-o.done:
		return
	default:
	}
	_ = o.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-o.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("operator %s did not exit 30s after SIGKILL", o.name)
	}
}

// ready returns nil once the operator's /readyz passes: its informers have synced.
func (o *operator) ready(ctx context.Context) error {
	return testenv.Readyz(ctx, o.probeAddr)
}

// running reports whether the process has not exited.
func (o *operator) running() bool {
	select {
	case <-o.done:
		return false
	default:
		return true
	}
}

// metric sums the samples of a metric family on the operator's /metrics whose label set
// contains every one of labels (each written `name="value"`). found is false when the
// family has no such sample.
func (o *operator) metric(name string, labels ...string) (sum float64, found bool, err error) {
	return testenv.ScrapeMetric("http://"+o.metricsAddr+"/metrics", name, labels...)
}

// suffix returns a short random DNS-label suffix, so that the cluster-scoped objects of
// one test never collide with another's.
func suffix(r *rand.Rand) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 5)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}

// noTokenIn fails the test if any token, or the secret part of one (a JWT's signature),
// appears in text: operator logs, events, status.
func noTokenIn(t *testing.T, where, text string, tokens []string) {
	t.Helper()
	for _, tok := range tokens {
		secret := tok
		if i := strings.LastIndexByte(tok, '.'); i >= 0 {
			secret = tok[i+1:]
		}
		if strings.Contains(text, secret) {
			t.Errorf("%s contains a token (fingerprint-worthy secret leaked)", where)
			return
		}
	}
}
