package fault

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jeton-dev/jeton/internal/emulator"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// certDirs are the API server certificate directories restartAPIServer created; TestMain
// removes them once the control plane is stopped.
var certDirs []string

// restartAPIServer crashes kube-apiserver (SIGKILL) and starts it again on the same port
// with the same serving certificate. etcd keeps running.
//
// A crash, not a graceful stop: with the operator's watches open, kube-apiserver's
// graceful shutdown waits for its 60s shutdown timeout, as long as envtest's stop timeout.
// envtest's APIServer.Stop deletes its generated certificate directory and Start would then
// mint a new serving CA, which no existing kubeconfig trusts; so the certificates are
// copied aside first and the restarted server is pointed at the copy.
func restartAPIServer(t *testing.T) {
	t.Helper()
	api := env.Environment.ControlPlane.APIServer
	dir, err := os.MkdirTemp("", "jeton-fault-apiserver-")
	if err != nil {
		t.Fatal(err)
	}
	certDirs = append(certDirs, dir)
	entries, err := os.ReadDir(api.CertDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(api.CertDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	port := api.SecureServing.Port
	pid, err := pidOf("kube-apiserver", "--secure-port="+port)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing kube-apiserver: %v", err)
	}
	// Stop now only waits for the dead process and cleans up.
	if err := api.Stop(); err != nil {
		t.Fatalf("stopping kube-apiserver: %v", err)
	}
	api.CertDir = dir
	if err := api.Start(); err != nil {
		t.Fatalf("restarting kube-apiserver: %v", err)
	}
	if api.SecureServing.Port != port {
		t.Fatalf("kube-apiserver came back on port %s, not %s", api.SecureServing.Port, port)
	}
}

// The API server restarts under a running operator (once, or three times in the long
// run); the operator resumes: objects created afterwards converge, and a token rotated
// afterwards reaches its client.
func TestAPIServerRestart(t *testing.T) {
	ctx := context.Background()
	r := seeded(t)
	sfx := suffix(r)
	credNS := "fault-apiserver-" + sfx
	newCredentialsNamespace(t, ctx, credNS)
	emu := emulator.New()
	var tenants []*tenant
	for i := range 3 {
		tenants = append(tenants, createTenant(t, ctx, r, emu, credNS, fmt.Sprintf("a%s-%d", sfx, i)))
	}
	o := startOperator(t, "apiserver", credNS)
	testenv.WaitFor(t, 60*time.Second, "convergence before the restart", func(ctx context.Context) error {
		return converged(ctx, credNS, tenants, nil)
	})

	restarts := 1
	if *long {
		restarts = 3
	}
	for i := range restarts {
		restartAPIServer(t)
		t.Logf("kube-apiserver restarted (%d/%d)", i+1, restarts)
		if !o.Running() {
			t.Fatalf("the operator exited when the API server went away: %v", o.ExitErr())
		}
		rotate(t, ctx, emu, tenants[0])
		for j := range 2 {
			tenants = append(tenants, createTenant(t, ctx, r, emu, credNS, fmt.Sprintf("a%s-%d-%d", sfx, i, j)))
		}
		// client-go's reflectors back off while the server is away (up to 30s between
		// attempts), hence the generous deadline.
		testenv.WaitFor(t, 90*time.Second, "convergence after the API server restart", func(ctx context.Context) error {
			return converged(ctx, credNS, tenants, nil)
		})
	}
	checkRestarts(t, ctx, tenants)
	if !o.Running() {
		t.Errorf("the operator exited: %v", o.ExitErr())
	}
	noTokenIn(t, "operator output", o.Out.String(), tokensOf(tenants))
}

// pidOf finds the process running binary with arg among its arguments (other test packages
// may run their own kube-apiserver at the same time, on other ports).
func pidOf(binary, arg string) (int, error) {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if filepath.Base(args[0]) == binary && slices.Contains(args, arg) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no %s process with argument %s", binary, arg)
}
