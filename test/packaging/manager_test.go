package packaging

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jeton-dev/jeton/internal/testenv"
)

// manager is a running manager process.
type manager struct{ *testenv.Manager }

// startProcess starts cmd, the manager from the image, serving on metricsAddr and
// probeAddr, and collects its output. It is killed at the end of the test if still running,
// and its output logged if the test failed.
func startProcess(t *testing.T, cmd *exec.Cmd, metricsAddr, probeAddr string) *manager {
	t.Helper()
	m, err := testenv.RunManager(cmd, metricsAddr, probeAddr)
	if err != nil {
		t.Fatal(err)
	}
	m.KillAtEnd(t, cmd.Path)
	return &manager{m}
}

// startManager runs the manager binary with kubeconfig and args; extraEnv adds to its
// environment (POD_NAMESPACE, as the Deployment sets it).
func startManager(t *testing.T, kubeconfig string, extraEnv []string, args ...string) *manager {
	t.Helper()
	return &manager{env.StartTestManager(t, "manager", kubeconfig, extraEnv, args...)}
}

// eventually waits up to timeout for f to return nil (testenv.WaitFor), failing at once
// if the process exits.
func (p *manager) eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	testenv.WaitFor(t, timeout, what, func(context.Context) error {
		if !p.Running() {
			t.Fatalf("the manager exited (%v) while waiting for %s", p.ExitErr(), what)
		}
		return f()
	})
}

// ready waits for /readyz: informer caches synced.
func (p *manager) ready(t *testing.T) {
	t.Helper()
	p.eventually(t, 90*time.Second, "/readyz", func() error {
		return httpOK("http://" + p.ProbeAddr + "/readyz")
	})
}

// stop sends SIGTERM; the process must exit 0 within 45s, as a pod's would.
func (p *manager) stop(t *testing.T) {
	t.Helper()
	if err := p.Stop(45 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// noForbidden fails when the process hit an RBAC denial.
func (p *manager) noForbidden(t *testing.T, identity string) {
	t.Helper()
	var denied []string
	for _, line := range strings.Split(p.Out.String(), "\n") {
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
