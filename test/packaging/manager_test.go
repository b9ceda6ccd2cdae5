package packaging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jeton-dev/jeton/internal/testenv"
)

// manager is a running manager process.
type manager struct {
	cmd       *exec.Cmd
	output    *testenv.SyncBuffer
	exited    chan error
	stopped   bool
	probeAddr string
}

// startProcess starts cmd (a manager, from the binary or from the image), collecting its
// output. It is killed at the end of the test if still running, and its output logged if
// the test failed.
func startProcess(t *testing.T, cmd *exec.Cmd, probeAddr string) *manager {
	t.Helper()
	p := &manager{cmd: cmd, output: &testenv.SyncBuffer{}, exited: make(chan error, 1), probeAddr: probeAddr}
	cmd.Stdout, cmd.Stderr = p.output, p.output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if !p.stopped {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s output (last lines):\n%s", cmd.Path, testenv.LastLines(p.output.String(), 60))
		}
	})
	return p
}

// startManager runs the manager binary with kubeconfig and args; extraEnv adds to its
// environment (POD_NAMESPACE, as the Deployment sets it).
func startManager(t *testing.T, kubeconfig string, extraEnv []string, args ...string) *manager {
	t.Helper()
	probeAddr := testenv.FreeAddr(t)
	cmd := exec.Command(managerBinary(t), append([]string{"--kubeconfig", kubeconfig,
		"--health-probe-bind-address", probeAddr}, args...)...)
	cmd.Env = append(os.Environ(), extraEnv...)
	return startProcess(t, cmd, probeAddr)
}

// eventually polls f for up to timeout, failing at once if the process exits.
func (p *manager) eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	err := testenv.Poll(timeout, 250*time.Millisecond, func(context.Context) error {
		select {
		case err := <-p.exited:
			p.stopped = true
			return fmt.Errorf("exited (%v) while waiting for %s", err, what)
		default:
		}
		return f()
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// ready waits for /readyz: informer caches synced.
func (p *manager) ready(t *testing.T) {
	t.Helper()
	p.eventually(t, 90*time.Second, "/readyz", func() error {
		return httpOK("http://" + p.probeAddr + "/readyz")
	})
}

// stop sends SIGTERM; the process must exit 0 within 45s, as a pod's would.
func (p *manager) stop(t *testing.T) {
	t.Helper()
	if p.stopped {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		p.stopped = true
		if err != nil {
			t.Fatalf("exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("did not exit within 45s of SIGTERM")
	}
}

// noForbidden fails when the process hit an RBAC denial.
func (p *manager) noForbidden(t *testing.T, identity string) {
	t.Helper()
	var denied []string
	for _, line := range strings.Split(p.output.String(), "\n") {
		if strings.Contains(strings.ToLower(line), "forbidden") {
			denied = append(denied, line)
		}
	}
	if len(denied) > 0 {
		t.Errorf("the manager hit RBAC denials as %s:\n%s", identity, strings.Join(denied, "\n"))
	}
}

func httpOK(url string) error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d: %s", url, resp.StatusCode, body)
	}
	return nil
}

// leaseHeld checks that the Lease jeton.dev in namespace has a holder.
func leaseHeld(ctx context.Context, c client.Client, namespace string) error {
	lease := &coordinationv1.Lease{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "jeton.dev"}, lease); err != nil {
		return err
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		return errors.New("lease jeton.dev has no holder")
	}
	return nil
}
