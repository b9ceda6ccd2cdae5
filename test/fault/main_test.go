// Package fault runs the real operator binary (cmd/, built once per package run) as child
// processes against a real control plane and breaks things under it: SIGKILL at random
// points of convergence, an API server restart, two replicas with leader election, an API
// answering 429s and 5xx bursts. The default run is kept short for `make test`; longer
// variants run with `go test ./test/fault -fault.long` or JETON_FAULT_LONG=1.
//
// Randomness is seeded and logged: rerun a failure with JETON_FAULT_SEED=<seed>.
package fault

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jeton-dev/jeton/internal/testenv"
)

var (
	env  *testenv.Env
	long = flag.Bool("fault.long", os.Getenv("JETON_FAULT_LONG") == "1",
		"run the longer fault variants (more objects, more kills, more restarts)")
	// The scale variant of TestKillAtRandomPoints (docs/benchmarks.md): e.g.
	// go test ./test/fault -run TestKillAtRandomPoints -count 10 -timeout 4h -fault.clients 1000 -fault.kills 10
	clients = flag.Int("fault.clients", 0, "TestKillAtRandomPoints: public clients (default 30, 100 with -fault.long)")
	kills   = flag.Int("fault.kills", 0, "TestKillAtRandomPoints: SIGKILLs, half during the first injection, half during rotation (default 3, 10 with -fault.long)")
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := testenv.Run(func(e *testenv.Env) int {
		env = e
		// Built once for every test of the package, before the first one.
		if _, err := env.ManagerBinary(); err != nil {
			fmt.Fprintln(os.Stderr, "fault:", err)
			return 1
		}
		return m.Run()
	})
	// Only once the control plane that uses them has stopped.
	for _, d := range certDirs {
		_ = os.RemoveAll(d)
	}
	os.Exit(code)
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

// operator is one running jeton manager process.
type operator struct {
	*testenv.Manager
	name string
}

// startOperator starts the manager binary against the test control plane. extra flags
// come after the defaults and override them. The process is killed when the test ends;
// its output is logged when the test failed.
func startOperator(t *testing.T, name, credentialsNamespace string, extra ...string) *operator {
	t.Helper()
	m := env.StartTestManager(t, "operator "+name, env.Kubeconfig, nil, append([]string{
		"--credentials-namespaces", credentialsNamespace,
		"--metrics-secure=false", // loopback only: the tests scrape plain HTTP
		// Debug logs: more places a token could leak from, and all of them are checked.
		"--zap-log-level", "debug",
	}, extra...)...)
	return &operator{Manager: m, name: name}
}

// kill sends SIGKILL, as a node failure or the OOM killer would, and waits for the exit.
func (o *operator) kill(t *testing.T) {
	t.Helper()
	if err := o.Kill(30 * time.Second); err != nil {
		t.Fatalf("operator %s %v", o.name, err)
	}
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
	if testenv.ContainsToken(text, tokens) {
		t.Errorf("%s contains a token (fingerprint-worthy secret leaked)", where)
	}
}
