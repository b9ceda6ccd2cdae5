package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is the unit of utime and stime in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const clockTicks = 100

// benchEmulatorHost is the base URL host of the benchmark's Habilitations (injected, never
// called), allowed with --allowed-api-hosts.
const benchEmulatorHost = "127.0.0.1:18080"

// operator is the real jeton manager (bin/jeton) running as a child process, so that its
// memory, CPU, goroutines and API requests are its own and nothing of the benchmark's.
type operator struct {
	cmd        *exec.Cmd
	exited     chan error
	metricsURL string
	readyURL   string
	logPath    string
	stopped    bool
}

// operatorArgs are what every operator run shares.
type operatorArgs struct {
	binary     string
	kubeconfig string
	qps        float64
	burst      int
	logDir     string
	extra      []string
	// env is added to the benchmark's environment (JETON_MEMORY_LIMIT).
	env []string
}

// startOperator starts the manager and waits until it is ready (caches synced).
func startOperator(ctx context.Context, a operatorArgs, name string) (*operator, error) {
	metricsAddr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	probeAddr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(a.logDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child keeps its own descriptor
	args := append([]string{
		"--kubeconfig", a.kubeconfig,
		"--credentials-namespaces", credentialsNamespace,
		"--metrics-bind-address", metricsAddr,
		"--metrics-secure=false", // loopback only: the benchmark scrapes plain HTTP
		// The Habilitations' base URL (injected, never called): the emulator's address.
		"--allowed-api-hosts", benchEmulatorHost,
		"--health-probe-bind-address", probeAddr,
		"--kube-api-qps", strconv.FormatFloat(a.qps, 'f', -1, 64),
		"--kube-api-burst", strconv.Itoa(a.burst),
	}, a.extra...)
	cmd := exec.Command(a.binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), a.env...)
	// Its own process group, so a Ctrl-C of the benchmark does not kill it before the
	// control plane it talks to: the benchmark stops it first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", a.binary, err)
	}
	o := &operator{cmd: cmd, exited: make(chan error, 1), metricsURL: "http://" + metricsAddr + "/metrics",
		readyURL: "http://" + probeAddr + "/readyz", logPath: logPath}
	go func() { o.exited <- cmd.Wait() }()
	if err := o.waitReady(ctx); err != nil {
		_ = o.stop()
		return nil, err
	}
	return o, nil
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (o *operator) pid() int { return o.cmd.Process.Pid }

func (o *operator) waitReady(ctx context.Context) error {
	return poll(ctx, 2*time.Minute, 100*time.Millisecond, "the operator to become ready (log: "+o.logPath+")", func() (bool, error) {
		select {
		case err := <-o.exited:
			o.exited <- err
			return false, fmt.Errorf("the operator exited before becoming ready (%v); see %s", err, o.logPath)
		default:
		}
		resp, err := http.Get(o.readyURL)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// stop sends SIGTERM and waits for the exit (SIGKILL after 30s). Stopping twice is a no-op.
func (o *operator) stop() error {
	if o.stopped {
		return nil
	}
	o.stopped = true
	_ = syscall.Kill(-o.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-o.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-o.cmd.Process.Pid, syscall.SIGKILL)
		<-o.exited
		return fmt.Errorf("the operator did not stop within 30s of SIGTERM; killed it")
	}
}

// scrape reads the operator's /metrics.
func (o *operator) scrape(ctx context.Context) (samples, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.metricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", o.metricsURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s: HTTP %d", o.metricsURL, resp.StatusCode)
	}
	return parseProm(resp.Body)
}

// procStats is what /proc says about a process.
type procStats struct {
	peakRSS float64       // VmHWM, bytes
	rss     float64       // VmRSS, bytes
	cpu     time.Duration // user + system time
}

func readProcStats(pid int) (procStats, error) {
	var ps procStats
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "VmHWM":
			ps.peakRSS, err = parseKB(v)
		case "VmRSS":
			ps.rss, err = parseKB(v)
		}
		if err != nil {
			return ps, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ps, err
	}
	ps.cpu, err = parseStatCPU(string(stat))
	return ps, err
}

// parseKB parses a /proc/<pid>/status size such as " 123456 kB" into bytes.
func parseKB(v string) (float64, error) {
	f := strings.Fields(v)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("unexpected size %q", v)
	}
	n, err := strconv.ParseFloat(f[0], 64)
	return n * 1024, err
}

// parseStatCPU returns utime+stime from /proc/<pid>/stat. The command name (field 2) may
// hold spaces and parentheses, so fields are counted after its last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/<pid>/stat")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc/<pid>/stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/<pid>/stat utime/stime: %w", err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// idleOptions say what "idle" means for waitIdle.
type idleOptions struct {
	// minReconciles per controller must have completed first, so that the operator has
	// really seen every object (an empty queue before the first list means nothing).
	minReconciles map[string]float64
	// quiet is how long the queues must stay empty with no new API write.
	quiet   time.Duration
	timeout time.Duration
	// idleAt, when set, receives when the quiet period began: when the operator had
	// finished its work.
	idleAt *time.Time
	// leaderElection: the operator renews its lease with a PUT every 2 s, which is not work.
	// jeton itself never PUTs (it creates, patches and deletes), so PUTs are not counted.
	leaderElection bool
}

// waitIdle waits until every workqueue is empty and no API write happened for o.quiet,
// after the required reconciles. It returns the last scrape.
func (o *operator) waitIdle(ctx context.Context, opts idleOptions) (samples, error) {
	var last samples
	lastWrites := -1.0
	var quietSince time.Time
	err := poll(ctx, opts.timeout, 250*time.Millisecond, "the operator to be idle", func() (bool, error) {
		ss, err := o.scrape(ctx)
		if err != nil {
			return false, err
		}
		last = ss
		for ctrl, n := range opts.minReconciles {
			if ss.sum("controller_runtime_reconcile_total", labelIn("controller", ctrl)) < n {
				quietSince = time.Time{}
				return false, nil
			}
		}
		writes := ss.apiWrites()
		if opts.leaderElection {
			writes -= ss.sum("rest_client_requests_total", labelIn("method", "PUT"))
		}
		busy := ss.sum("workqueue_depth", nil) > 0 || ss.sum("controller_runtime_active_workers", nil) > 0
		if busy || writes != lastWrites {
			lastWrites, quietSince = writes, time.Time{}
			return false, nil
		}
		if quietSince.IsZero() {
			quietSince = time.Now()
		}
		return time.Since(quietSince) >= opts.quiet, nil
	})
	if opts.idleAt != nil {
		*opts.idleAt = quietSince
	}
	return last, err
}

// poll calls cond every interval until it returns true, an error, or timeout passes.
func poll(ctx context.Context, timeout, interval time.Duration, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

// machineBusy returns the CPU time every process of the machine has used since boot
// (/proc/stat: every state but idle, iowait and steal), so that the difference over a phase is
// what the whole machine spent on it: API server, etcd, the benchmark and the operator.
func machineBusy() (time.Duration, error) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseMachineBusy(string(stat))
}

// parseMachineBusy reads the aggregate "cpu" line of /proc/stat: user nice system idle
// iowait irq softirq steal (guest time is already counted in user). Steal is time the
// hypervisor gave another machine: not work done here.
func parseMachineBusy(stat string) (time.Duration, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("malformed /proc/stat")
	}
	var busy int64
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		if i != 3 && i != 4 && i != 7 { // idle, iowait, steal
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}

// busySince returns the machine's CPU time since busyBefore (machineBusy) and the operator
// process pid's CPU time so far.
func busySince(busyBefore time.Duration, pid int) (machine, operator time.Duration, err error) {
	busy, err := machineBusy()
	if err != nil {
		return 0, 0, err
	}
	ps, err := readProcStats(pid)
	return busy - busyBefore, ps.cpu, err
}
