package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jeton-dev/jeton/internal/version"
)

// `kubectl jeton version` and `--version` print the build without a cluster (an unreachable
// kubeconfig does not matter); -o json gives the fields a bug template can ask for.
// TestRelease (test/packaging) checks the values a release build stamps.
func TestVersion(t *testing.T) {
	want := version.Get().String("kubectl-jeton") + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := run(t, "/nonexistent/kubeconfig", time.Now, "", args...)
		wantCode(t, r, exitOK, strings.Join(args, " "))
		if r.stdout != want {
			t.Errorf("kubectl jeton %s printed %q, want %q", strings.Join(args, " "), r.stdout, want)
		}
	}
	r := run(t, "/nonexistent/kubeconfig", time.Now, "", "version", "-o", "json")
	wantCode(t, r, exitOK, "version -o json")
	var got version.Info
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("version -o json: %v\n%s", err, r.stdout)
	}
	if got.GoVersion != runtime.Version() || got.Platform != runtime.GOOS+"/"+runtime.GOARCH || got.Version == "" || got.Commit == "" {
		t.Errorf("version -o json: %+v", got)
	}
	r = run(t, "/nonexistent/kubeconfig", time.Now, "", "version", "-o", "yaml")
	wantCode(t, r, exitError, "version -o yaml")
}
