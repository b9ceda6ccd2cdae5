// Package packaging tests jeton the way platform teams install and watch it, with the real
// tools: the Helm chart (dist/chart) with helm built from Go modules (bin/helm), the release
// bundle (make build-installer) with kubectl, the OCI image (make image) unpacked and run as
// UID 65532 on a read-only root, the Argo CD health checks (config/argocd) in gopher-lua and
// the Grafana dashboard's queries (config/grafana) with promtool, the last two against
// statuses and metrics that the real manager produced on a real API server in this run.
//
// The tools come from `make test` (its packaging-tools target builds bin/helm and
// bin/jeton-image); a missing tool fails the test that needs it with what to run, never skips.
package packaging

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jeton-dev/jeton/internal/testenv"
)

// operatorNamespace is the namespace config/default and the README's Helm install use.
const operatorNamespace = "jeton-system"

var (
	// env is the package's control plane, with the CRDs installed by envtest. The Helm
	// lifecycle test starts its own, without CRDs, so that the chart installs them.
	env *testenv.Env
	// tmpDir holds what the package builds (the release bundle).
	tmpDir string
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Run(func(e *testenv.Env) int {
		env = e
		var err error
		if tmpDir, err = os.MkdirTemp("", "jeton-packaging-"); err != nil {
			fmt.Fprintln(os.Stderr, "packaging:", err)
			return 1
		}
		defer os.RemoveAll(tmpDir)
		return m.Run()
	}, testenv.WithNamespaces(operatorNamespace)))
}

// tool returns the path of a tool `make test` installs into bin/, failing the test with the
// command to run when it is missing.
func tool(t *testing.T, name, makeTarget string) string {
	t.Helper()
	p := filepath.Join(env.Root, "bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found: run `make %s` (make test does it first)", p, makeTarget)
	}
	return p
}

func helmBin(t *testing.T) string { return tool(t, "helm", "packaging-tools") }

// promtool is the Debian package prometheus's (PROMTOOL overrides), as hack/test-alerts.sh.
func promtool(t *testing.T) string {
	t.Helper()
	name := os.Getenv("PROMTOOL")
	if name == "" {
		name = "promtool"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("promtool not found (%v): apt-get install -y --no-install-recommends prometheus, or set PROMTOOL (.ci/run installs it)", err)
	}
	return p
}

// result is what a command wrote.
type result struct{ stdout, stderr string }

// runCmd runs a command from the repository root with a 3-minute deadline and returns its
// output; err includes stderr so that a failure explains itself.
func runCmd(t *testing.T, stdin []byte, env []string, name string, args ...string) (result, error) {
	t.Helper()
	return runCmdTimeout(t, 3*time.Minute, stdin, env, name, args...)
}

func runCmdTimeout(t *testing.T, timeout time.Duration, stdin []byte, env []string, name string, args ...string) (result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	// Past the deadline, stop waiting for the output of children (go build under a builder).
	cmd.WaitDelay = 10 * time.Second
	cmd.Dir = rootDir()
	cmd.Env = append(os.Environ(), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, errOut.String())
	}
	return result{out.String(), errOut.String()}, err
}

// must is runCmd failing the test on error.
func must(t *testing.T, stdin []byte, env []string, name string, args ...string) result {
	t.Helper()
	r, err := runCmd(t, stdin, env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func rootDir() string { return env.Root }
