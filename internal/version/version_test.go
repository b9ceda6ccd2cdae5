package version

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "ffff"}, {Key: "vcs.time", Value: "2020-01-01T00:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	for _, tc := range []struct {
		name            string
		ver, rev, epoch string
		bi              *debug.BuildInfo
		want            Info
	}{
		{
			name: "stamped by the Makefile: the stamps win over the VCS",
			ver:  "v0.1.0", rev: "3eec930", epoch: "1796601600", bi: stamped,
			want: Info{Version: "v0.1.0", Commit: "3eec930", BuildDate: "2026-12-07T00:00:00Z", GoVersion: "go1.26.8"},
		},
		{
			name: "go build in a dirty checkout: the VCS stamp, marked dirty",
			bi:   stamped,
			want: Info{Version: unknown, Commit: "ffff-dirty", BuildDate: "2020-01-01T00:00:00Z", GoVersion: "go1.26.8"},
		},
		{
			name: "go install module@version: the module's version",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.1.0"}},
			want: Info{Version: "v0.1.0", Commit: unknown, BuildDate: unknown, GoVersion: "go1.26.8"},
		},
		{
			name: "a bad epoch is unknown, not 1970",
			ver:  "v0.1.0", rev: "abc", epoch: "yesterday",
			want: Info{Version: "v0.1.0", Commit: "abc", BuildDate: unknown, GoVersion: runtime.Version()},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := resolve(tc.ver, tc.rev, tc.epoch, tc.bi)
			tc.want.Platform = runtime.GOOS + "/" + runtime.GOARCH
			if got != tc.want {
				t.Errorf("resolve = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	i := Info{Version: "v0.1.0", Commit: "abc", BuildDate: "2026-12-07T00:00:00Z", GoVersion: "go1.26.8", Platform: "linux/amd64"}
	want := "kubectl-jeton v0.1.0 (commit abc, built 2026-12-07T00:00:00Z, go1.26.8, linux/amd64)"
	if got := i.String("kubectl-jeton"); got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}
