package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jeton-dev/jeton/internal/testenv"
)

func httpGet(url string) (int, string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func getLease(ctx context.Context) (*coordinationv1.Lease, error) {
	lease := &coordinationv1.Lease{}
	err := env.Client.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "jeton.dev"}, lease)
	return lease, err
}

// managerProcess is a running manager binary.
type managerProcess struct{ *testenv.Manager }

// startManager starts the manager binary with kubeconfig, leader election in the
// operator namespace, free ports and args. It is killed at the end of the test if still
// running, and its output is logged if the test failed.
func startManager(t *testing.T, kubeconfig string, args ...string) *managerProcess {
	t.Helper()
	return &managerProcess{env.StartTestManager(t, "manager", kubeconfig, nil, append([]string{
		"--leader-elect",
		"--leader-election-namespace", operatorNamespace,
		"--credentials-namespaces", operatorNamespace}, args...)...)}
}

// eventually waits up to a minute for f to return nil (testenv.WaitFor), failing at once
// if the manager dies.
func (p *managerProcess) eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	testenv.WaitFor(t, time.Minute, what, func(context.Context) error {
		if !p.Running() {
			t.Fatalf("the manager exited (%v) while waiting for %s", p.ExitErr(), what)
		}
		return f()
	})
}

// stop sends SIGTERM; the manager must exit 0 within 45s.
func (p *managerProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.Stop(45 * time.Second); err != nil {
		t.Fatalf("the manager %v", err)
	}
}

func TestManagerLifecycle(t *testing.T) {
	ctx := context.Background()
	// Plain HTTP metrics on loopback: this test reads their content (TestMetricsRequireAuthentication
	// covers the secure default).
	p := startManager(t, env.Kubeconfig, "--max-concurrent-reconciles", "3", "--metrics-secure=false")

	p.eventually(t, "the lease", func() error { return testenv.LeaseHeld(ctx, env.Client, operatorNamespace) })

	for _, path := range []string{"/healthz", "/readyz"} {
		p.eventually(t, path, func() error {
			code, body, err := httpGet("http://" + p.ProbeAddr + path)
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("%s answered %d: %s", path, code, body)
			}
			return nil
		})
	}

	p.eventually(t, "/metrics", func() error {
		code, body, err := httpGet("http://" + p.MetricsAddr + "/metrics")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("/metrics answered %d", code)
		}
		for _, want := range []string{
			`leader_election_master_status{name="jeton.dev"} 1`,
			// Every controller runs with the --max-concurrent-reconciles workers.
			"controller_runtime_max_concurrent_reconciles{controller=",
		} {
			if !strings.Contains(body, want) {
				return fmt.Errorf("/metrics lacks %q", want)
			}
		}
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "controller_runtime_max_concurrent_reconciles{") && !strings.HasSuffix(line, " 3") {
				return fmt.Errorf("--max-concurrent-reconciles=3 not honoured: %s", line)
			}
		}
		return nil
	})

	for _, want := range []string{`"credentialsNamespaces":["jeton-system"]`, `"metricsSecure":false`} {
		if !strings.Contains(p.Out.String(), want) {
			t.Errorf("the manager did not log its configuration (%s) at start:\n%s", want, p.Out.String())
		}
	}

	// SIGTERM: a clean exit, releasing the lease so that a standby replica takes over at once.
	p.stop(t)
	lease, err := getLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h := lease.Spec.HolderIdentity; h != nil && *h != "" {
		t.Errorf("lease still held by %q after the manager stopped; want it released", *h)
	}
}

func TestManagerRejectsBadFlags(t *testing.T) {
	bin, err := env.ManagerBinary()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--credentials-namespaces", "jeton-system,Not_A_Namespace"},
			`--credentials-namespaces: "Not_A_Namespace" is not a valid namespace name`},
		{[]string{"--max-concurrent-reconciles", "0"},
			"--max-concurrent-reconciles must be at least 1"},
		{[]string{"--metrics-cert-path", "/nonexistent/jeton-certs"},
			"--metrics-cert-name: /nonexistent/jeton-certs/tls.crt is not a readable file"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// No kubeconfig: flags are validated before anything touches a cluster.
			cmd := exec.CommandContext(ctx, bin, tt.args...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("got %v, want a non-zero exit code; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output:\n%s\nwant it to contain %q", out, tt.want)
			}
		})
	}
}
