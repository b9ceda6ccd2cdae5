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
	"testing"
	"time"

	"github.com/jeton-dev/jeton/internal/testenv"
)

// credNS is the credentials namespace of the operator the tests share.
const credNS = "jeton-credentials"

var (
	env *testenv.Env
	// op is the operator every test shares; a test may restart it (restartOperator).
	op *operator
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Run(func(e *testenv.Env) int {
		env = e
		return run(m)
	}, testenv.WithCluster(), testenv.WithNamespaces(credNS)))
}

func run(m *testing.M) int {
	var err error
	if op, err = startOperator(); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		return 1
	}
	defer func() { _ = op.Stop(25 * time.Second) }()
	if err := testenv.Poll(time.Minute, 100*time.Millisecond, op.Ready); err != nil {
		fmt.Fprintf(os.Stderr, "cluster: the operator did not become ready: %v\n%s\n", err, testenv.LastLines(op.out.String(), 40))
		return 1
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "operator output (last 40 lines):\n%s\n", testenv.LastLines(op.out.String(), 40))
	}
	return code
}

// operator is the jeton manager binary running against the test cluster.
type operator struct {
	*testenv.Manager
	// out is Manager.Out, by the name the tests read it.
	out *testenv.SyncBuffer
}

func startOperator() (*operator, error) {
	m, err := env.StartManager(env.Kubeconfig, nil,
		"--credentials-namespaces", credNS,
		"--metrics-secure=false", // loopback only: the tests scrape plain HTTP
	)
	if err != nil {
		return nil, err
	}
	return &operator{Manager: m, out: m.Out}, nil
}

// restartOperator stops the shared operator and starts a new one, ready: its first pass
// over every resource is the resync after a restart.
func restartOperator(t *testing.T) {
	t.Helper()
	_ = op.Stop(25 * time.Second)
	var err error
	if op, err = startOperator(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "the restarted operator to be ready", op.Ready)
}

// quiet returns nil once the operator has reconciled at least n Habilitations since it
// started and has none queued or in flight: what it had to do is done.
func (o *operator) quiet(n int) func(context.Context) error {
	return func(context.Context) error {
		done, _, err := o.Metric("controller_runtime_reconcile_total", `controller="habilitation"`)
		if err != nil {
			return err
		}
		if done < float64(n) {
			return fmt.Errorf("%v of at least %d Habilitation reconciles", done, n)
		}
		active, _, err := o.Metric("controller_runtime_active_workers", `controller="habilitation"`)
		if err != nil {
			return err
		}
		depth, _, err := o.Metric("workqueue_depth", `name="habilitation"`)
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
	if testenv.ContainsToken(text, tokens) {
		t.Errorf("%s contains a token", where)
	}
}
