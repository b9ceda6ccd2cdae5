package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// ManagerBinary builds the manager (./cmd) into the Env's temporary directory, once per Env,
// and returns its path. It is built as shipped (CGO off, like the image), plus the test-only
// flags of the jetontest build tag (--test-probe-interval, which the shipped binary refuses
// as unknown).
func (e *Env) ManagerBinary() (string, error) {
	e.managerOnce.Do(func() { e.managerBin, e.managerErr = e.build("jeton", "./cmd", "-tags", "jetontest") })
	return e.managerBin, e.managerErr
}

// build builds package pkg into the Env's temporary directory as name, CGO off as in the
// image, with extra go build flags.
func (e *Env) build(name, pkg string, flags ...string) (string, error) {
	bin := filepath.Join(e.dir, name)
	build := exec.Command("go", append(append([]string{"build"}, flags...), "-o", bin, pkg)...)
	build.Dir = e.Root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// Manager is a manager process a test started: the binary (StartManager) or anything else
// that runs it, such as the image's entrypoint (RunManager).
type Manager struct {
	Cmd *exec.Cmd
	// Out is what the process wrote on stdout and stderr.
	Out *SyncBuffer
	// MetricsAddr and ProbeAddr (host:port) serve /metrics and /healthz, /readyz.
	MetricsAddr, ProbeAddr string
	done                   chan struct{} // closed once the process has exited
	exitErr                error
}

// StartManager starts the manager binary (ManagerBinary) as the user of kubeconfig, serving
// metrics and health probes on free loopback ports, with args after those flags (a flag
// given again overrides them) and env added to the environment. Stop or Kill it.
func (e *Env) StartManager(kubeconfig string, env []string, args ...string) (*Manager, error) {
	bin, err := e.ManagerBinary()
	if err != nil {
		return nil, err
	}
	var metricsAddr, probeAddr string
	for _, a := range []*string{&metricsAddr, &probeAddr} {
		if *a, err = FreeLoopbackAddr(); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(bin, append([]string{
		"--kubeconfig", kubeconfig,
		"--metrics-bind-address", metricsAddr,
		"--health-probe-bind-address", probeAddr,
	}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return RunManager(cmd, metricsAddr, probeAddr)
}

// StartTestManager is StartManager for one test: it fails the test when the manager does
// not start, and KillAtEnd(t, name).
func (e *Env) StartTestManager(t testing.TB, name, kubeconfig string, env []string, args ...string) *Manager {
	t.Helper()
	m, err := e.StartManager(kubeconfig, env, args...)
	if err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	m.KillAtEnd(t, name)
	return m
}

// RunManager starts cmd, a manager serving metrics on metricsAddr and health probes on
// probeAddr, and collects its output in Out.
func RunManager(cmd *exec.Cmd, metricsAddr, probeAddr string) (*Manager, error) {
	m := &Manager{Cmd: cmd, Out: &SyncBuffer{}, MetricsAddr: metricsAddr, ProbeAddr: probeAddr, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = m.Out, m.Out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	go func() {
		m.exitErr = cmd.Wait()
		close(m.done)
	}()
	return m, nil
}

// KillAtEnd kills the process when the test ends if it is still running and, if the test
// failed, logs the last lines of its output under name.
func (m *Manager) KillAtEnd(t testing.TB, name string) {
	t.Cleanup(func() {
		if err := m.Kill(30 * time.Second); err != nil {
			t.Errorf("%s %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s output (last 60 lines):\n%s", name, LastLines(m.Out.String(), 60))
		}
	})
}

// Running reports whether the process has not exited.
func (m *Manager) Running() bool {
	return !closed(m.done)
}

// ExitErr is how the process exited (nil for exit code 0), or nil while it runs.
func (m *Manager) ExitErr() error {
	if m.Running() {
		return nil
	}
	return m.exitErr
}

// Stop sends SIGTERM, as the kubelet does to stop a pod, and waits up to grace for the exit;
// after grace it sends SIGKILL and waits for that. It returns nil when the process exited
// with code 0 after SIGTERM, else what happened instead.
func (m *Manager) Stop(grace time.Duration) error {
	if !m.Running() {
		return fmt.Errorf("exited (%v) before SIGTERM", m.exitErr)
	}
	_ = m.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
		if m.exitErr != nil {
			return fmt.Errorf("exited with %v after SIGTERM, want exit code 0", m.exitErr)
		}
		return nil
	case <-time.After(grace):
		_ = m.Cmd.Process.Signal(syscall.SIGKILL)
		<-m.done
		return fmt.Errorf("did not exit within %s of SIGTERM; killed it", grace)
	}
}

// Kill sends SIGKILL, as a node failure or the OOM killer would, and waits up to timeout for
// the exit. A process that has exited already is left as it is.
func (m *Manager) Kill(timeout time.Duration) error {
	if !m.Running() {
		return nil
	}
	_ = m.Cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-m.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("did not exit %s after SIGKILL", timeout)
	}
}

// Ready returns nil once /readyz passes (the informers have synced), for Poll; it says so
// when the process has exited.
func (m *Manager) Ready(ctx context.Context) error {
	if !m.Running() {
		return fmt.Errorf("the manager exited: %v", m.exitErr)
	}
	return Readyz(ctx, m.ProbeAddr)
}

// Metric sums the samples of a metric family on /metrics, served over plain HTTP
// (--metrics-secure=false), whose label set contains every one of labels (each written
// `name="value"`). found is false when the family has no such sample.
func (m *Manager) Metric(name string, labels ...string) (sum float64, found bool, err error) {
	return ScrapeMetric("http://"+m.MetricsAddr+"/metrics", name, labels...)
}
