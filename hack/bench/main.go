//go:build unix

// Command bench is `make bench`: it measures the real jeton manager (bin/jeton, a child
// process) on a real control plane (etcd and kube-apiserver from bin/) and prints a
// markdown table, each figure a median over -runs runs:
//
//   - convergence: N PublicClients and N Habilitations, from the operator's start to every
//     injected Secret written and every resource Ready; and the floor, the same writes done
//     by a plain client with the same QPS and burst; and their ratio;
//   - steady state: API writes the operator makes over a full resync (a restart) with
//     nothing changed;
//   - rotation: source Secret update → injected Secret updated, and → the Deployment's pod
//     template annotated, p50 and p99;
//   - memory: the operator's peak RSS after a full resync with N clients and M unrelated
//     Secrets, for N/10 and N clients, 0 and M Secrets;
//   - probes: CPU, goroutines and requests per token per minute with many TechnicalTokens
//     at the minimum interval, against the in-process API emulator;
//   - storm (storm.go): every token of many clients rotated at once on a cluster that rolls
//     Deployments out: rollouts per workload (target 1) and time until all rolled;
//   - gateway (gateway.go): jeton-gateway's added latency, requests per CPU-second, memory
//     per Habilitation at -gateway-habilitations, and RSS while a 50 MB answer streams.
//
// Usage: go run ./hack/bench [-n 1000] [-m 10000] [-runs 3] [-quick] [-scenarios ...]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/testenv"
)

type benchConfig struct {
	n, m, runs, rotations int
	qps                   float64
	burst, workers        int
	probeTokens           int
	probeInterval         time.Duration
	probeWarmup           time.Duration
	probeDuration         time.Duration
	scenarios             []string
	skipBuild             bool
	out                   string
	operatorArgs          string
	failover              bool
	memoryLimit           string
	apiserverProfiles     string
	// gateway scenario (gateway.go)
	gatewayWindow time.Duration
	gatewayHabs   int
}

func main() {
	if gatewayChildMain() { // this process is the gateway scenario's child (gateway.go)
		return
	}
	cfg := benchConfig{}
	var scenarios string
	var quick bool
	flag.IntVar(&cfg.n, "n", 1000, "public clients (each with one Habilitation)")
	flag.IntVar(&cfg.m, "m", 10000, "unrelated Secrets for the memory scenario")
	flag.IntVar(&cfg.runs, "runs", 3, "runs of the convergence scenario; figures are medians over them")
	flag.IntVar(&cfg.rotations, "rotations", 100, "token rotations per run")
	flag.Float64Var(&cfg.qps, "qps", 200, "API QPS of the operator and of the floor client (--kube-api-qps)")
	flag.IntVar(&cfg.burst, "burst", 400, "API burst of the operator and of the floor client (--kube-api-burst)")
	flag.IntVar(&cfg.workers, "workers", 4, "operator --max-concurrent-reconciles; the floor uses twice as many workers (two controllers)")
	flag.IntVar(&cfg.probeTokens, "probe-tokens", 1000, "TechnicalTokens in the probe scenario")
	flag.DurationVar(&cfg.probeInterval, "probe-interval", 30*time.Second, "probe interval (30s is the API's minimum)")
	flag.DurationVar(&cfg.probeWarmup, "probe-warmup", 30*time.Second, "probe time before the measurement window (first probes of every token)")
	flag.DurationVar(&cfg.probeDuration, "probe-duration", 90*time.Second, "probe measurement window")
	flag.DurationVar(&cfg.gatewayWindow, "gateway-window", 30*time.Second, "gateway scenario: latency and throughput measurement windows")
	flag.IntVar(&cfg.gatewayHabs, "gateway-habilitations", 10000, "gateway scenario: Habilitations of the memory measurement")
	flag.StringVar(&scenarios, "scenarios", "convergence,memory,probes,storm,gateway", "comma-separated scenarios to run")
	flag.BoolVar(&quick, "quick", false, "smoke run: -n 100 -m 1000 -runs 1 -rotations 20 -probe-tokens 100, short probe window, -gateway-window 10s -gateway-habilitations 1000")
	flag.BoolVar(&cfg.skipBuild, "skip-build", false, "use bin/jeton-bench as it is instead of building it")
	flag.StringVar(&cfg.out, "out", "", "also write the table to this file")
	flag.BoolVar(&cfg.failover, "failover", true, "measure a leader fail-over on the converged fleet of the first convergence run")
	flag.StringVar(&cfg.memoryLimit, "memory-limit", "512Mi", `the container memory limit the operator runs under, as config/manager sets it (JETON_MEMORY_LIMIT); "" for none`)
	flag.StringVar(&cfg.apiserverProfiles, "apiserver-profiles", "", "a directory: take a 60 s kube-apiserver CPU profile during the first run's convergence and during its floor")
	flag.StringVar(&cfg.operatorArgs, "operator-args", "", `extra flags for the operator, space-separated, e.g. "--pprof-bind-address=127.0.0.1:6060" to profile it`)
	flag.Parse()
	if quick {
		cfg.n, cfg.m, cfg.runs, cfg.rotations, cfg.probeTokens = 100, 1000, 1, 20, 100
		cfg.probeWarmup, cfg.probeDuration = 15*time.Second, 45*time.Second
		cfg.gatewayWindow, cfg.gatewayHabs = 10*time.Second, 1000
	}
	cfg.scenarios = strings.Split(scenarios, ",")
	for _, s := range cfg.scenarios {
		if !slices.Contains([]string{"convergence", "memory", "probes", "storm", "gateway"}, s) {
			fmt.Fprintf(os.Stderr, "bench: unknown scenario %q: want convergence, memory, probes, storm or gateway\n", s)
			os.Exit(2)
		}
	}
	if cfg.gatewayWindow < time.Second || cfg.gatewayHabs < 100 {
		fmt.Fprintln(os.Stderr, "bench: need -gateway-window >= 1s and -gateway-habilitations >= 100")
		os.Exit(2)
	}
	if cfg.n < 10 || cfg.runs < 1 || cfg.rotations < 1 || cfg.probeTokens < 3 || cfg.probeInterval < 30*time.Second {
		fmt.Fprintln(os.Stderr, "bench: need -n >= 10, -runs >= 1, -rotations >= 1, -probe-tokens >= 3 and -probe-interval >= 30s (the CRD minimum)")
		os.Exit(2)
	}
	// envtest logs through controller-runtime; the benchmark reports on its own.
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

var benchStart = time.Now()

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(benchStart).Seconds(), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, cfg benchConfig) error {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	// Its own file: `make dev` and the e2e tests build bin/jeton at the same time. Built
	// with the default flags, so the Go build cache is shared with theirs.
	binary := filepath.Join(root, "bin", "jeton-bench")
	if !cfg.skipBuild {
		logf("building the manager into bin/jeton-bench")
		build := exec.CommandContext(ctx, "go", "build", "-o", binary, "./cmd")
		build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building the manager: %w", err)
		}
	}
	logDir, err := os.MkdirTemp("", "jeton-bench-")
	if err != nil {
		return err
	}
	logf("operator logs in %s", logDir)
	opArgs := operatorArgs{binary: binary, qps: cfg.qps, burst: cfg.burst, logDir: logDir,
		extra: append([]string{"--max-concurrent-reconciles", fmt.Sprint(cfg.workers)}, strings.Fields(cfg.operatorArgs)...)}
	if cfg.memoryLimit != "" {
		q, err := resource.ParseQuantity(cfg.memoryLimit)
		if err != nil {
			return fmt.Errorf("-memory-limit %q: %w", cfg.memoryLimit, err)
		}
		opArgs.env = append(opArgs.env, fmt.Sprintf("JETON_MEMORY_LIMIT=%d", q.Value()))
	}

	rep := report{cfg: cfg}
	if slices.Contains(cfg.scenarios, "convergence") {
		for r := range cfg.runs {
			res, err := convergenceRun(ctx, cfg, opArgs, r)
			if err != nil {
				return fmt.Errorf("convergence run %d: %w", r+1, err)
			}
			rep.runs = append(rep.runs, res)
		}
	}
	if slices.Contains(cfg.scenarios, "memory") {
		if rep.memory, err = memoryScenario(ctx, cfg, opArgs); err != nil {
			return fmt.Errorf("memory: %w", err)
		}
	}
	if slices.Contains(cfg.scenarios, "probes") {
		p, err := runProbes(ctx, cfg, opArgs)
		if err != nil {
			return fmt.Errorf("probes: %w", err)
		}
		rep.probes = &p
	}
	if slices.Contains(cfg.scenarios, "storm") { // storm.go
		s, err := runStorm(ctx, cfg, opArgs)
		if err != nil {
			return fmt.Errorf("storm: %w", err)
		}
		rep.storm = &s
	}
	if slices.Contains(cfg.scenarios, "gateway") { // gateway.go
		if rep.gateway, err = runGateway(ctx, cfg, logDir); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
	}
	rep.total = time.Since(benchStart)
	var w io.Writer = os.Stdout
	if cfg.out != "" {
		f, err := os.Create(cfg.out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = io.MultiWriter(os.Stdout, f)
	}
	rep.write(w)
	return nil
}

// runResult is one convergence run.
type runResult struct {
	converge, floor     time.Duration
	opWritesPerClient   float64
	opRequestsPerClient float64 // every verb: writes, gets and lists
	// writesByKind is the API server's count of the operator's writes per client, by verb
	// and resource, during convergence.
	writesByKind     string
	opWritesByMethod map[string]float64
	steadyWrites     float64
	steadyByMethod   map[string]float64
	// reads are the operator's GET and LIST requests during convergence, by resource.
	reads map[string]float64
	// A cold restart with everything converged: time to ready (caches synced) and to idle
	// (everything reconciled), and its reads (one list per kind is the target).
	restartReady, restartIdle time.Duration
	restartReads              map[string]float64
	failover                  *failoverResult
	peakRSS                   float64
	cpu                       time.Duration
	// machineCPU is what the whole machine (API server, etcd, benchmark, operator) spent
	// from the operator's start to convergence, opCPU the operator's share of it, and
	// floorMachineCPU the machine's for the floor: on a machine whose cores are all busy,
	// the ratio is (floor's work + operator's CPU) / floor's work, whatever the operator
	// does with its API calls.
	machineCPU, opCPU, floorMachineCPU time.Duration
	// passes is reconcile passes per client, by controller, during convergence.
	passes         map[string]float64
	rotations      rotationResult
	rotSecretP50   float64
	rotSecretP99   float64
	rotWorkloadP50 float64
	rotWorkloadP99 float64
}

func writesByMethod(ss samples) map[string]float64 {
	m := map[string]float64{}
	for _, method := range writeMethods {
		if v := ss.sum("rest_client_requests_total", labelIn("method", method)); v > 0 {
			m[method] = v
		}
	}
	return m
}

func convergenceRun(ctx context.Context, cfg benchConfig, opArgs operatorArgs, r int) (res runResult, err error) {
	n := cfg.n
	logf("run %d/%d: starting a control plane, creating %d clients, Habilitations and token Secrets", r+1, cfg.runs, n)
	c, err := startCluster(ctx)
	if err != nil {
		return res, err
	}
	defer c.stop()
	opArgs.kubeconfig = c.env.Kubeconfig
	emu := emulator.New()
	f := &fleet{prefix: "client-"}
	if err := createFleet(ctx, c.setup, emu, f, 0, n); err != nil {
		return res, err
	}
	wctx, stopWatcher := context.WithCancel(ctx)
	defer stopWatcher()
	w, err := startWatcher(wctx, c.env.Config, c.env)
	if err != nil {
		return res, err
	}

	cs, err := kubernetes.NewForConfig(unthrottled(c.env.Config))
	if err != nil {
		return res, err
	}
	serverBefore, err := apiserverWrites(ctx, cs)
	if err != nil {
		return res, err
	}
	readsBefore, err := apiserverReads(ctx, cs)
	if err != nil {
		return res, err
	}
	logf("run %d/%d: convergence: starting the operator", r+1, cfg.runs)
	busyBefore, err := machineBusy()
	if err != nil {
		return res, err
	}
	start := time.Now()
	op, err := startOperator(ctx, opArgs, fmt.Sprintf("run%d-converge", r+1))
	if err != nil {
		return res, err
	}
	if r == 0 && cfg.apiserverProfiles != "" {
		go profileAPIServer(wctx, cs, apiserverProfileDelay(n), time.Minute, filepath.Join(cfg.apiserverProfiles, "apiserver-operator.pprof"))
	}
	done, err := w.waitConverged(ctx, f, scaled(15*time.Minute, n))
	if err != nil {
		_ = op.stop()
		return res, err
	}
	res.converge = done.Sub(start)
	if res.machineCPU, res.opCPU, err = busySince(busyBefore, op.pid()); err != nil {
		_ = op.stop()
		return res, err
	}
	idle := idleOptions{minReconciles: map[string]float64{"publicclient": float64(n), "habilitation": float64(n)}, quiet: 3 * time.Second, timeout: scaled(5*time.Minute, n)}
	ss, err := op.waitIdle(ctx, idle)
	if err != nil {
		_ = op.stop()
		return res, err
	}
	res.opWritesPerClient = ss.apiWrites() / float64(n)
	res.opRequestsPerClient = ss.sum("rest_client_requests_total", nil) / float64(n)
	serverAfter, err := apiserverWrites(ctx, cs)
	if err != nil {
		_ = op.stop()
		return res, err
	}
	res.writesByKind = diffWrites(serverBefore, serverAfter, n)
	readsAfter, err := apiserverReads(ctx, cs)
	if err != nil {
		_ = op.stop()
		return res, err
	}
	res.reads = diffCounts(readsBefore, readsAfter)
	logf("run %d/%d: the operator's reads: %s", r+1, cfg.runs, fmtCounts(res.reads))
	logf("run %d/%d: API server's count of the operator's writes per client: %s", r+1, cfg.runs, res.writesByKind)
	res.opWritesByMethod = writesByMethod(ss)
	res.passes = map[string]float64{}
	for _, ctrl := range []string{"publicclient", "habilitation"} {
		res.passes[ctrl] = ss.sum("controller_runtime_reconcile_total", labelIn("controller", ctrl)) / float64(n)
	}
	logf("run %d/%d: reconcile passes per client: PublicClient %.2f, Habilitation %.2f; machine CPU %s, of which the operator %s",
		r+1, cfg.runs, res.passes["publicclient"], res.passes["habilitation"], res.machineCPU.Round(100*time.Millisecond), res.opCPU.Round(100*time.Millisecond))
	ps, err := readProcStats(op.pid())
	if err != nil {
		_ = op.stop()
		return res, err
	}
	res.peakRSS, res.cpu = ps.peakRSS, ps.cpu
	logf("run %d/%d: converged in %s (%.1f API writes per client); restarting the operator for the steady state", r+1, cfg.runs, res.converge.Round(time.Millisecond), res.opWritesPerClient)
	if err := op.stop(); err != nil {
		return res, err
	}

	// Steady state: a new process lists and reconciles everything; nothing changed, so
	// nothing should be written, and each kind listed once.
	if readsBefore, err = apiserverReads(ctx, cs); err != nil {
		return res, err
	}
	watchesBefore, err := apiserverWatches(ctx, cs)
	if err != nil {
		return res, err
	}
	restart := time.Now()
	if op, err = startOperator(ctx, opArgs, fmt.Sprintf("run%d-steady", r+1)); err != nil {
		return res, err
	}
	res.restartReady = time.Since(restart)
	defer func() {
		if serr := op.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	idle.quiet = 5 * time.Second
	var idleAt time.Time
	idle.idleAt = &idleAt
	if ss, err = op.waitIdle(ctx, idle); err != nil {
		return res, err
	}
	idle.idleAt = nil
	res.restartIdle = idleAt.Sub(restart)
	res.steadyWrites = ss.apiWrites()
	res.steadyByMethod = writesByMethod(ss)
	if readsAfter, err = apiserverReads(ctx, cs); err != nil {
		return res, err
	}
	res.restartReads = diffCounts(readsBefore, readsAfter)
	watchesAfter, err := apiserverWatches(ctx, cs)
	if err != nil {
		return res, err
	}
	maps.Copy(res.restartReads, diffCounts(watchesBefore, watchesAfter))
	logf("run %d/%d: cold restart: ready after %s, idle after %s, reads: %s", r+1, cfg.runs,
		res.restartReady.Round(time.Millisecond), res.restartIdle.Round(time.Millisecond), fmtCounts(res.restartReads))
	logf("run %d/%d: steady state: %.0f API writes over a full resync; rotation: %d Deployments, %d rotations", r+1, cfg.runs, res.steadyWrites, n, cfg.rotations)

	if err := createDeployments(ctx, c.setup, f); err != nil {
		return res, err
	}
	if res.rotations, err = runRotations(ctx, c, w, emu, f, cfg.rotations); err != nil {
		return res, err
	}
	sec, wl := seconds(res.rotations.toSecret), seconds(res.rotations.toWorkload)
	res.rotSecretP50, res.rotSecretP99 = percentile(sec, 50), percentile(sec, 99)
	res.rotWorkloadP50, res.rotWorkloadP99 = percentile(wl, 50), percentile(wl, 99)
	logf("run %d/%d: rotation p50/p99: Secret %s/%s, workload %s/%s", r+1, cfg.runs,
		fmtSeconds(res.rotSecretP50), fmtSeconds(res.rotSecretP99), fmtSeconds(res.rotWorkloadP50), fmtSeconds(res.rotWorkloadP99))
	if err := op.stop(); err != nil {
		return res, err
	}
	if r == 0 && cfg.failover {
		logf("run %d/%d: leader fail-over: two replicas, the leader SIGKILLed", r+1, cfg.runs)
		fo, err := failoverScenario(ctx, opArgs, cs, n)
		if err != nil {
			return res, fmt.Errorf("fail-over: %w", err)
		}
		res.failover = &fo
		logf("run %d/%d: fail-over: %s", r+1, cfg.runs, fo)
	}
	stopWatcher()
	c.stop()

	// The floor, on a control plane of its own with the same inputs.
	logf("run %d/%d: floor: fresh control plane, same %d clients, plain client at %g QPS", r+1, cfg.runs, n, cfg.qps)
	fc, err := startCluster(ctx)
	if err != nil {
		return res, err
	}
	defer fc.stop()
	ff := &fleet{prefix: "client-"}
	if err := createFleet(ctx, fc.setup, emu, ff, 0, n); err != nil {
		return res, err
	}
	// The floor is timed as the operator is: by the same watcher, from the first write to
	// everything seen converged. Its own calls end sooner (logged), but the operator's
	// clock would then include the watcher's load on the API server and a watch's
	// delivery, and the floor's not.
	fwctx, stopFloorWatcher := context.WithCancel(ctx)
	defer stopFloorWatcher()
	fw, err := startWatcher(fwctx, fc.env.Config, fc.env)
	if err != nil {
		return res, err
	}
	fcs, err := kubernetes.NewForConfig(unthrottled(fc.env.Config))
	if err != nil {
		return res, err
	}
	if r == 0 && cfg.apiserverProfiles != "" {
		go profileAPIServer(fwctx, fcs, apiserverProfileDelay(n), time.Minute, filepath.Join(cfg.apiserverProfiles, "apiserver-floor.pprof"))
	}
	floorBusyBefore, err := machineBusy()
	if err != nil {
		return res, err
	}
	floorStart := time.Now()
	floorCalls, err := runFloor(ctx, fc.env.Config, fc, ff, cfg.qps, cfg.burst, 2*cfg.workers)
	if err != nil {
		return res, err
	}
	floorDone, err := fw.waitConverged(ctx, ff, scaled(time.Minute, n))
	if err != nil {
		return res, fmt.Errorf("floor: %w", err)
	}
	floorBusy, err := machineBusy()
	if err != nil {
		return res, err
	}
	stopFloorWatcher()
	res.floor, res.floorMachineCPU = floorDone.Sub(floorStart), floorBusy-floorBusyBefore
	logf("run %d/%d: floor %s (its own calls %s), ratio %.2f; machine CPU %s", r+1, cfg.runs, res.floor.Round(time.Millisecond),
		floorCalls.Round(time.Millisecond), res.converge.Seconds()/res.floor.Seconds(), res.floorMachineCPU.Round(100*time.Millisecond))
	return res, nil
}

// memPoint is the operator's peak RSS after a full resync of a cluster holding n clients
// and m unrelated Secrets.
type memPoint struct {
	n, m    int
	peakRSS float64
	rss     float64
}

// memoryScenario measures memPoints for N/10 and N clients, 0 and M unrelated Secrets, on
// one control plane: each point is a fresh operator process that lists everything,
// reconciles it (nothing to write) and goes idle; its VmHWM is the point.
func memoryScenario(ctx context.Context, cfg benchConfig, opArgs operatorArgs) ([]memPoint, error) {
	c, err := startCluster(ctx)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	opArgs.kubeconfig = c.env.Kubeconfig
	emu := emulator.New()
	f := &fleet{prefix: "client-"}
	small := cfg.n / 10
	var points []memPoint

	converge := func(from, to int) error {
		logf("memory: %d clients", to)
		if err := createFleet(ctx, c.setup, emu, f, from, to); err != nil {
			return err
		}
		op, err := startOperator(ctx, opArgs, fmt.Sprintf("memory-converge-%d", to))
		if err != nil {
			return err
		}
		defer op.stop()
		_, err = op.waitIdle(ctx, idleOptions{minReconciles: map[string]float64{"publicclient": float64(to), "habilitation": float64(to)}, quiet: 3 * time.Second, timeout: scaled(15*time.Minute, to)})
		return err
	}
	measure := func(n, m int) error {
		op, err := startOperator(ctx, opArgs, fmt.Sprintf("memory-n%d-m%d", n, m))
		if err != nil {
			return err
		}
		defer op.stop()
		if _, err := op.waitIdle(ctx, idleOptions{minReconciles: map[string]float64{"publicclient": float64(n), "habilitation": float64(n)}, quiet: 3 * time.Second, timeout: scaled(10*time.Minute, n)}); err != nil {
			return err
		}
		ps, err := readProcStats(op.pid())
		if err != nil {
			return err
		}
		points = append(points, memPoint{n: n, m: m, peakRSS: ps.peakRSS, rss: ps.rss})
		logf("memory: N=%d M=%d: peak RSS %s", n, m, fmtMiB(ps.peakRSS))
		return nil
	}
	if err := converge(0, small); err != nil {
		return nil, err
	}
	if err := measure(small, 0); err != nil {
		return nil, err
	}
	logf("memory: creating %d unrelated Secrets", cfg.m)
	if err := createUnrelatedSecrets(ctx, c.setup, cfg.m); err != nil {
		return nil, err
	}
	if err := measure(small, cfg.m); err != nil {
		return nil, err
	}
	if err := converge(small, cfg.n); err != nil {
		return nil, err
	}
	if err := measure(cfg.n, cfg.m); err != nil {
		return nil, err
	}
	if err := deleteUnrelatedSecrets(ctx, c.setup); err != nil {
		return nil, err
	}
	if err := measure(cfg.n, 0); err != nil {
		return nil, err
	}
	return points, nil
}

// report is everything measured, printed as markdown.
type report struct {
	cfg     benchConfig
	runs    []runResult
	memory  []memPoint
	probes  *probeResult
	storm   *stormResult
	gateway *gatewayResult
	total   time.Duration
}

func yesNo(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func (rep report) write(w io.Writer) {
	cfg := rep.cfg
	fmt.Fprintf(w, "## jeton benchmark\n\n")
	limit := "no memory limit"
	if cfg.memoryLimit != "" {
		limit = "memory limit " + cfg.memoryLimit + " (JETON_MEMORY_LIMIT, as config/manager sets it)"
	}
	fmt.Fprintf(w, "Machine: %d cores (GOMAXPROCS %d), %s/%s, %s. Operator and floor: %g QPS, burst %d; operator --max-concurrent-reconciles %d, %s. Benchmark time: %s.\n\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version(), cfg.qps, cfg.burst, cfg.workers, limit, rep.total.Round(time.Second))

	if len(rep.runs) > 0 {
		med := func(f func(runResult) float64) float64 {
			xs := make([]float64, len(rep.runs))
			for i, r := range rep.runs {
				xs[i] = f(r)
			}
			return median(xs)
		}
		conv := med(func(r runResult) float64 { return r.converge.Seconds() })
		floor := med(func(r runResult) float64 { return r.floor.Seconds() })
		ratio := med(func(r runResult) float64 { return r.converge.Seconds() / r.floor.Seconds() })
		steady := med(func(r runResult) float64 { return r.steadyWrites })
		secP99 := med(func(r runResult) float64 { return r.rotSecretP99 })
		wlP99 := med(func(r runResult) float64 { return r.rotWorkloadP99 })
		fmt.Fprintf(w, "### Convergence, steady state, rotation (N=%d, median of %d run(s))\n\n", cfg.n, len(rep.runs))
		fmt.Fprintf(w, "| Measure | Value | Target | |\n|---|---|---|---|\n")
		fmt.Fprintf(w, "| Convergence: operator start → %d clients and Habilitations Ready, Secrets injected | %s | | |\n", cfg.n, fmtSeconds(conv))
		fmt.Fprintf(w, "| Floor: the same writes by a plain client (%d workers) | %s | | |\n", 2*cfg.workers, fmtSeconds(floor))
		fmt.Fprintf(w, "| Ratio operator / floor | %.2f | ≤ 1.25 | %s |\n", ratio, yesNo(ratio <= 1.25))
		fmt.Fprintf(w, "| API writes per client: operator / floor | %.2f / %d | | |\n", med(func(r runResult) float64 { return r.opWritesPerClient }), floorWritesPerClient)
		fmt.Fprintf(w, "| API requests of every verb per client: operator / floor | %.2f / %d | | |\n", med(func(r runResult) float64 { return r.opRequestsPerClient }), floorWritesPerClient)
		fmt.Fprintf(w, "| Operator CPU / peak RSS during convergence | %.1f s / %s | | |\n", med(func(r runResult) float64 { return r.cpu.Seconds() }), fmtMiB(med(func(r runResult) float64 { return r.peakRSS })))
		fmt.Fprintf(w, "| Reconcile passes per client during convergence: PublicClient / Habilitation | %.2f / %.2f | | |\n",
			med(func(r runResult) float64 { return r.passes["publicclient"] }), med(func(r runResult) float64 { return r.passes["habilitation"] }))
		cores := float64(runtime.NumCPU())
		fmt.Fprintf(w, "| Machine CPU (every process) until converged: operator's run, of which the operator / floor's run (%% of the machine) | %s (%.0f%%), %s / %s (%.0f%%) | | |\n",
			fmtSeconds(med(func(r runResult) float64 { return r.machineCPU.Seconds() })), med(func(r runResult) float64 { return 100 * r.machineCPU.Seconds() / cores / r.converge.Seconds() }),
			fmtSeconds(med(func(r runResult) float64 { return r.opCPU.Seconds() })),
			fmtSeconds(med(func(r runResult) float64 { return r.floorMachineCPU.Seconds() })), med(func(r runResult) float64 { return 100 * r.floorMachineCPU.Seconds() / cores / r.floor.Seconds() }))
		fmt.Fprintf(w, "| Ratio from CPU alone: (floor's machine CPU + operator's CPU) / floor's machine CPU (all cores busy: the operator's CPU is taken from the API server's) | %.2f | | |\n",
			med(func(r runResult) float64 {
				return (r.floorMachineCPU + r.opCPU).Seconds() / r.floorMachineCPU.Seconds()
			}))
		fmt.Fprintf(w, "| Machine CPU of the operator's run without the operator's own / the floor's (1.00: the API server, etcd and the benchmark worked as much for the operator as for the floor; the spread is the machine's speed varying) | %.2f | | |\n",
			med(func(r runResult) float64 { return (r.machineCPU - r.opCPU).Seconds() / r.floorMachineCPU.Seconds() }))
		gets := med(func(r runResult) float64 { return objectGets(r.reads) })
		fmt.Fprintf(w, "| GETs of objects during convergence (discovery aside; 1 is the owner-proof key, a create racing its own cache reads once) | %.0f | no per-object GET | %s |\n", gets, yesNo(noPerObjectGets(gets, cfg.n)))
		fmt.Fprintf(w, "| Cold restart, everything converged: time to ready (caches synced) / to idle (everything reconciled) | %s / %s | | |\n",
			fmtSeconds(med(func(r runResult) float64 { return r.restartReady.Seconds() })), fmtSeconds(med(func(r runResult) float64 { return r.restartIdle.Seconds() })))
		fmt.Fprintf(w, "| Steady state: API writes over a full resync (restart), nothing changed | %.0f | 0 | %s |\n", steady, yesNo(steady == 0))
		lists := rep.runs[0].restartReads
		fmt.Fprintf(w, "| Cold restart: reads (run 1; WATCH: streaming lists left open) | %s | one list per kind and cache scope | %s |\n", fmtCounts(lists), yesNo(onePerKind(lists)))
		if fo := rep.runs[0].failover; fo != nil {
			fmt.Fprintf(w, "| Leader fail-over (leader SIGKILLed): standby holds the lease / is idle | %s / %s | | |\n", fmtSeconds(fo.toLeader.Seconds()), fmtSeconds(fo.toIdle.Seconds()))
			fmt.Fprintf(w, "| Leader fail-over: writes besides leader election's (lease renewals, one event) (%s) | %.0f | 0 | %s |\n", fmtCounts(fo.writes), fo.nonLeaseWrites(), yesNo(fo.nonLeaseWrites() == 0))
		}
		fmt.Fprintf(w, "| Rotation → injected Secret updated, p50 / p99 (%d rotations per run) | %s / %s | | |\n", cfg.rotations,
			fmtSeconds(med(func(r runResult) float64 { return r.rotSecretP50 })), fmtSeconds(secP99))
		fmt.Fprintf(w, "| Rotation → Deployment pod template annotated, p50 / p99 | %s / %s | p99 < 1 s | %s |\n",
			fmtSeconds(med(func(r runResult) float64 { return r.rotWorkloadP50 })), fmtSeconds(wlP99), yesNo(wlP99 < 1 && secP99 < 1))
		fmt.Fprintf(w, "\nPer run:\n\n| Run | Convergence | Floor | Ratio | Machine CPU: operator's run (the operator) / floor's | Writes/client | Writes by method | Steady writes | Rotation Secret p50/p99 | Rotation workload p50/p99 |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for i, r := range rep.runs {
			fmt.Fprintf(w, "| %d | %s | %s | %.2f | %s (%s) / %s | %.2f | %s | %.0f %s | %s / %s | %s / %s |\n", i+1, fmtSeconds(r.converge.Seconds()), fmtSeconds(r.floor.Seconds()),
				r.converge.Seconds()/r.floor.Seconds(), fmtSeconds(r.machineCPU.Seconds()), fmtSeconds(r.opCPU.Seconds()), fmtSeconds(r.floorMachineCPU.Seconds()), r.opWritesPerClient, fmtMethods(r.opWritesByMethod), r.steadyWrites, fmtMethods(r.steadyByMethod),
				fmtSeconds(r.rotSecretP50), fmtSeconds(r.rotSecretP99), fmtSeconds(r.rotWorkloadP50), fmtSeconds(r.rotWorkloadP99))
		}
		fmt.Fprintf(w, "\nThe operator's writes per client during convergence, by verb and resource, as the API server counted them (run 1): %s.\n\n", rep.runs[0].writesByKind)
	}

	if len(rep.memory) > 0 {
		fmt.Fprintf(w, "### Memory: operator peak RSS after a full resync\n\n| Clients N | Unrelated Secrets M | Peak RSS (VmHWM) | RSS when idle |\n|---|---|---|---|\n")
		byPoint := map[[2]int]float64{}
		for _, p := range rep.memory {
			fmt.Fprintf(w, "| %d | %d | %s | %s |\n", p.n, p.m, fmtMiB(p.peakRSS), fmtMiB(p.rss))
			byPoint[[2]int{p.n, p.m}] = p.peakRSS
		}
		small := cfg.n / 10
		growM := (byPoint[[2]int{small, cfg.m}] - byPoint[[2]int{small, 0}] + byPoint[[2]int{cfg.n, cfg.m}] - byPoint[[2]int{cfg.n, 0}]) / 2
		growN := (byPoint[[2]int{cfg.n, 0}] - byPoint[[2]int{small, 0}]) / float64(cfg.n-small)
		fmt.Fprintf(w, "\nGrowth: %+.1f KiB per client (target ≤ 20 KiB — %s); %+.1f MiB for %d unrelated Secrets (mean of both N), target: none beyond noise (a few MiB) — %s.\n\n",
			growN/1024, yesNo(growN <= 20*1024), growM/(1<<20), cfg.m, yesNo(math.Abs(growM) < 8<<20))
	}

	if rep.storm != nil {
		rep.storm.write(w)
	}
	if rep.gateway != nil {
		rep.gateway.write(w)
	}
	if p := rep.probes; p != nil {
		fmt.Fprintf(w, "### Probes: %d TechnicalTokens, interval %s, API emulator (window %s after %s warm-up)\n\n", p.tokens, cfg.probeInterval, p.window.Round(time.Second), cfg.probeWarmup)
		ideal := time.Minute.Seconds() / cfg.probeInterval.Seconds()
		fmt.Fprintf(w, "| Measure | Value | Limit | |\n|---|---|---|---|\n")
		fmt.Fprintf(w, "| Operator CPU (mean over the window) | %.1f%% of a core | | |\n", 100*p.cpuCores)
		fmt.Fprintf(w, "| Goroutines (highest) | %.0f | | |\n", p.goroutines)
		fmt.Fprintf(w, "| Peak RSS | %s | | |\n", fmtMiB(p.peakRSS))
		fmt.Fprintf(w, "| Requests per token per minute (mean) | %.2f | %.0f at this interval | |\n", p.perTokenMin, ideal)
		fmt.Fprintf(w, "| Time between two probes of a token (median) | %s | ≥ %s | %s |\n", fmtSeconds(p.gap.Seconds()), cfg.probeInterval, yesNo(p.gap >= cfg.probeInterval))
		fmt.Fprintf(w, "| Most requests by one token in any 60 s | %d | 250 (API Entreprise), 400 (DN) | %s |\n", p.maxTokenMin, yesNo(p.maxTokenMin <= 250))
		fmt.Fprintf(w, "| Most requests to one API host in any 60 s | %d | 1000 per IP | %s |\n", p.maxHostMin, yesNo(p.maxHostMin <= 1000))
		fmt.Fprintf(w, "| 429 answers | %d | 0 | %s |\n", p.tooMany, yesNo(p.tooMany == 0))
		fmt.Fprintf(w, "| Operator API writes per minute (status of probed tokens) | %.0f | | |\n\n", p.writesPerMin)
	}
}

func fmtMethods(m map[string]float64) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, k := range writeMethods {
		if v, ok := m[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0f", k, v))
		}
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// operatorResources are the resources the operator reads. The API server's counters also
// hold its own requests (its endpoint reconciler GETs endpoints and endpointslices every
// 10 s), which say nothing of the operator.
var operatorResources = []string{"secrets", "namespaces", "networkpolicies", "publicclients", "habilitations",
	"technicaltokens", "deployments", "statefulsets", "daemonsets", "leases"}

// objectGets adds the GETs of the operator's objects ("GET resource"), not of discovery
// paths ("GET /api").
func objectGets(m map[string]float64) float64 {
	total := 0.0
	for k, v := range m {
		if r, ok := strings.CutPrefix(k, "GET "); ok && slices.Contains(operatorResources, r) {
			total += v
		}
	}
	return total
}

// noPerObjectGets judges the GETs of objects during a convergence of n clients: the
// owner-proof key is read once, and a pass that creates a Secret its cache has not seen
// yet (its own earlier create, whose status write conflicted) reads it once; a GET per
// client, or per few clients, is what the target forbids.
func noPerObjectGets(gets float64, n int) bool {
	return gets <= 1+float64(n)/1000
}

// onePerKind reports whether the reads of objects are one list per resource and cache scope: a LIST or a
// streaming list (a WATCH left open), not both, and no GET of an object. Discovery (GET
// /api, /apis, /openapi) and the owner-proof key (one GET of a Secret) are not per object.
func onePerKind(m map[string]float64) bool {
	lists := map[string]float64{}
	for k, v := range m {
		verb, resource, _ := strings.Cut(k, " ")
		switch {
		case !slices.Contains(operatorResources, resource):
			// discovery paths, the API server's own requests
		case verb == "GET" && resource == "secrets" && v <= 1:
		case verb == "GET":
			return false
		default:
			lists[resource] += v
		}
	}
	for _, n := range lists {
		// Secrets are cached in two scopes (the credentials namespaces whole, elsewhere
		// jeton's only), each its own list.
		if n > 2 {
			return false
		}
	}
	return true
}

// apiserverProfileDelay is when, after the start, a kube-apiserver profile of a
// convergence begins: about a sixth into the floor's time, well inside both.
func apiserverProfileDelay(n int) time.Duration {
	return scaled(5*time.Second, n)
}

// scaled stretches a timeout sized for 1000 clients to n clients.
func scaled(base time.Duration, n int) time.Duration {
	return base * time.Duration(max(n, 1000)) / 1000
}
