package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The built binary, found by the real kubectl on PATH as a plugin: `kubectl jeton ...`,
// its exit statuses passed through, and `kubectl jeton <TAB>` completion through
// kubectl_complete-jeton, as `make plugin` installs them into bin/.
func TestKubectlFindsThePlugin(t *testing.T) {
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "kubectl-jeton"), "./cmd/kubectl-jeton")
	build.Dir = env.Root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kubectl-jeton: %v\n%s", err, out)
	}
	complete, err := os.ReadFile(filepath.Join(env.Root, "cmd", "kubectl-jeton", "kubectl_complete-jeton"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kubectl_complete-jeton"), complete, 0o755); err != nil {
		t.Fatal(err)
	}

	em, url := takeEmulator(t)
	f := fleetIn(t, nsDiscovery, em, url, nil)
	kubectl := func(args ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(env.Environment.BinaryAssetsDirectory, "kubectl"), args...)
		cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+env.Kubeconfig)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
		}
		log := "$ kubectl " + strings.Join(args, " ") + "\n" + out.String()
		allOutput.Write([]byte(log))
		if l := leaks(out.String()); len(l) > 0 {
			t.Fatalf("kubectl %s printed tokens: %v", strings.Join(args, " "), l)
		}
		return out.String(), cmd.ProcessState.ExitCode()
	}

	out, code := kubectl("plugin", "list")
	if code != 0 || !strings.Contains(out, filepath.Join(dir, "kubectl-jeton")) {
		t.Fatalf("kubectl plugin list (exit %d) does not list the plugin:\n%s", code, out)
	}
	out, code = kubectl("jeton", "inventory", "-n", nsDiscovery, "-o", "csv")
	if code != 0 || !strings.Contains(out, "Habilitation,"+nsDiscovery+","+f.hab.Name+","+f.client.Name+",") {
		t.Fatalf("kubectl jeton inventory (exit %d):\n%s", code, out)
	}
	out, code = kubectl("jeton", "reconcile", "hab", f.hab.Name)
	if code != 0 || !strings.Contains(out, "request handled") {
		t.Fatalf("kubectl jeton reconcile (exit %d):\n%s", code, out)
	}
	// Exit statuses come through kubectl: 2 for an error.
	if out, code = kubectl("jeton", "probe", "-n", nsDiscovery, "nope"); code != exitError {
		t.Fatalf("kubectl jeton probe nope: exit %d, want %d:\n%s", code, exitError, out)
	}
	out, code = kubectl("__complete", "jeton", "reconcile", "")
	if code != 0 || !strings.Contains(out, "hab\tHabilitation") || !strings.Contains(out, "pcl\tPublicClient") {
		t.Fatalf("kubectl __complete jeton reconcile (exit %d):\n%s", code, out)
	}
	out, code = kubectl("__complete", "jeton", "reconcile", "hab", "-n", nsDiscovery, "")
	if code != 0 || !strings.Contains(out, f.hab.Name) {
		t.Fatalf("kubectl __complete jeton reconcile hab (exit %d):\n%s", code, out)
	}
}
