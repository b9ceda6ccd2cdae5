package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jeton-dev/jeton/internal/testenv"
)

var (
	buildOnce sync.Once
	buildErr  error
)

// managerBinary builds cmd/ once per test run, as shipped (CGO off, like the image).
func managerBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(binDir, "jeton")
	buildOnce.Do(func() {
		cmd := exec.Command("go", "build", "-o", bin, "./cmd")
		cmd.Dir = env.Root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin
}

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
type managerProcess struct {
	cmd         *exec.Cmd
	output      *testenv.SyncBuffer
	exited      chan error
	stopped     bool
	metricsAddr string
	probeAddr   string
}

// startManager starts the manager binary with kubeconfig, leader election in the
// operator namespace, free ports and args. It is killed at the end of the test if still
// running, and its output is logged if the test failed.
func startManager(t *testing.T, kubeconfig string, args ...string) *managerProcess {
	t.Helper()
	p := &managerProcess{output: &testenv.SyncBuffer{}, exited: make(chan error, 1),
		metricsAddr: testenv.FreeAddr(t), probeAddr: testenv.FreeAddr(t)}
	p.cmd = exec.Command(managerBinary(t), append([]string{
		"--kubeconfig", kubeconfig,
		"--leader-elect",
		"--leader-election-namespace", operatorNamespace,
		"--credentials-namespaces", operatorNamespace,
		"--metrics-bind-address", p.metricsAddr,
		"--health-probe-bind-address", p.probeAddr}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if !p.stopped {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("manager output:\n%s", p.output.String())
		}
	})
	return p
}

// eventually is the package's eventually, failing at once if the manager dies.
func (p *managerProcess) eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	eventually(t, time.Minute, func() error {
		select {
		case err := <-p.exited:
			p.stopped = true
			t.Fatalf("the manager exited (%v) while waiting for %s", err, what)
		default:
		}
		return f()
	})
}

// stop sends SIGTERM; the manager must exit 0 within 45s.
func (p *managerProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		p.stopped = true
		if err != nil {
			t.Fatalf("the manager exited with %v after SIGTERM, want exit code 0", err)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("the manager did not exit within 45s of SIGTERM")
	}
}

// leaseHeld waits until the Lease jeton.dev has a holder.
func leaseHeld(ctx context.Context) error {
	lease, err := getLease(ctx)
	if err != nil {
		return err
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		return errors.New("lease jeton.dev has no holder")
	}
	return nil
}

func TestManagerLifecycle(t *testing.T) {
	ctx := context.Background()
	// Plain HTTP metrics on loopback: this test reads their content (TestMetricsRequireAuthentication
	// covers the secure default).
	p := startManager(t, env.Kubeconfig, "--max-concurrent-reconciles", "3", "--metrics-secure=false")

	p.eventually(t, "the lease", func() error { return leaseHeld(ctx) })

	for _, path := range []string{"/healthz", "/readyz"} {
		p.eventually(t, path, func() error {
			code, body, err := httpGet("http://" + p.probeAddr + path)
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
		code, body, err := httpGet("http://" + p.metricsAddr + "/metrics")
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
		if !strings.Contains(p.output.String(), want) {
			t.Errorf("the manager did not log its configuration (%s) at start:\n%s", want, p.output.String())
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
	bin := managerBinary(t)
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
