//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// TestCtrlCThroughClosedPipeLeavesNothingRunning is `make dev 2>&1 | tee log` then Ctrl-C:
// the terminal sends SIGINT to its foreground process group, jeton-dev and tee alike; tee
// dies, so every later write of jeton-dev (its "stopping" messages, the manager's logs)
// goes to a pipe nobody reads. jeton-dev must still stop, cleanly, every process it started:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK, the manager and the gateway.
func TestCtrlCThroughClosedPipeLeavesNothingRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole local run")
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	devBin := filepath.Join(t.TempDir(), "jeton-dev")
	build := exec.Command("go", "build", "-o", devBin, "./hack/dev")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./hack/dev: %v\n%s", err, out)
	}

	// Its own directory and ports, so that it runs beside a developer's `make dev`.
	cmd := exec.Command(devBin, "-dir", t.TempDir(), "-emulator-addr", testenv.FreeAddr(t),
		"-metrics-addr", testenv.FreeAddr(t), "-probe-addr", testenv.FreeAddr(t),
		"-gateway-addr", testenv.FreeAddr(t), "-gateway-probe-addr", testenv.FreeAddr(t))
	cmd.Dir = root
	pipeR, pipeW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pipeW, pipeW
	// The process group the terminal's Ctrl-C goes to.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = pipeW.Close()
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	var started []proc
	t.Cleanup(func() {
		// Whatever the outcome, leave nothing running.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		for _, p := range started {
			if p.alive() {
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
			}
		}
	})

	// tee: reads everything until it dies.
	out := &testenv.SyncBuffer{}
	go func() { _, _ = io.Copy(out, pipeR) }()
	err = testenv.Poll(5*time.Minute, 200*time.Millisecond, func(context.Context) error {
		select {
		case <-exited:
			return errors.New("jeton-dev exited")
		default:
		}
		if !strings.Contains(out.String(), "jeton is running locally") {
			return errors.New("not running yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the local run did not start: %v\n%s", err, testenv.LastLines(out.String(), 40))
	}

	started, err = descendants(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller", "kube-scheduler", "kwok", "jeton", "jeton-gateway"} {
		if !hasProc(started, name) {
			t.Fatalf("no %s among the processes of the local run: %v", name, started)
		}
	}

	// Ctrl-C: tee dies first, then jeton-dev gets SIGINT with nobody reading its output.
	_ = pipeR.Close()
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(3 * time.Minute):
		t.Fatal("jeton-dev did not exit within 3 minutes of Ctrl-C")
	}
	if waitErr != nil {
		t.Errorf("jeton-dev did not stop cleanly after Ctrl-C: %v", waitErr)
	}
	for _, p := range started {
		if p.alive() {
			t.Errorf("%s (pid %d) still running after jeton-dev exited", p.name, p.pid)
		}
	}
}

// proc is a process, told apart from a later one with the same pid by its start time.
type proc struct {
	pid   int
	name  string
	start string
}

func (p proc) String() string { return fmt.Sprintf("%s(%d)", p.name, p.pid) }

// alive reports whether p still runs (a zombie has exited: it is only waiting to be reaped).
func (p proc) alive() bool {
	q, err := readProc(p.pid)
	return err == nil && q.start == p.start && q.state != "Z"
}

type procStat struct {
	proc
	ppid  int
	state string
}

// readProc parses /proc/<pid>/stat: "pid (comm) state ppid ...", starttime the 22nd field.
func readProc(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return procStat{}, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, s)
	}
	fields := strings.Fields(s[closing+1:]) // fields[0] is the 3rd field, state
	if len(fields) < 20 {
		return procStat{}, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, s)
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return procStat{}, err
	}
	return procStat{proc: proc{pid: pid, name: s[open+1 : closing], start: fields[19]}, ppid: ppid, state: fields[0]}, nil
}

// descendants lists the living descendants of pid.
func descendants(pid int) ([]proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]procStat{}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProc(n); err == nil && st.state != "Z" {
			children[st.ppid] = append(children[st.ppid], st)
		}
	}
	var out []proc
	for queue := []int{pid}; len(queue) > 0; queue = queue[1:] {
		for _, c := range children[queue[0]] {
			out = append(out, c.proc)
			queue = append(queue, c.pid)
		}
	}
	return out, nil
}

func hasProc(ps []proc, name string) bool {
	for _, p := range ps {
		if p.name == name {
			return true
		}
	}
	return false
}
