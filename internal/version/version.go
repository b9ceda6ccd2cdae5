// Package version says which build of jeton is running: the release version, the commit it
// was built from, the build date and the Go toolchain. Every jeton binary (the manager, the
// kubectl plugin, and the gateway once it exists) prints it the same way with String and logs
// it with KeysAndValues, so that a bug report can say exactly what ran.
//
// The Makefile stamps the values at link time (LDFLAGS, from the VERSION file and the commit):
//
//	go build -ldflags "-X github.com/jeton-dev/jeton/internal/version.version=v0.1.0 \
//	  -X github.com/jeton-dev/jeton/internal/version.commit=$(git rev-parse HEAD) \
//	  -X github.com/jeton-dev/jeton/internal/version.sourceDateEpoch=$(git log -1 --format=%ct)"
//
// The build date is the commit's date (SOURCE_DATE_EPOCH), not the wall clock: two builds of
// one commit are byte for byte the same. A binary built without these flags (go run, go
// test, go install) falls back to what the Go toolchain recorded (the module version and the
// VCS stamp), else "unknown".
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"
)

// Set with -ldflags -X; strings only, as -X requires.
var (
	version         string
	commit          string
	sourceDateEpoch string
)

// unknown stands for a value the build did not record.
const unknown = "unknown"

// Info is one binary's build.
type Info struct {
	// Version is the release, e.g. v0.1.0 (the VERSION file).
	Version string `json:"version"`
	// Commit is the full git commit the binary was built from.
	Commit string `json:"commit"`
	// BuildDate is the commit's date in UTC, RFC 3339.
	BuildDate string `json:"buildDate"`
	// GoVersion is the toolchain, e.g. go1.26.8.
	GoVersion string `json:"goVersion"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
}

// Get returns this binary's build.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, commit, sourceDateEpoch, bi)
}

// resolve prefers the stamped values, then the build info's, then "unknown".
func resolve(ver, rev, epoch string, bi *debug.BuildInfo) Info {
	i := Info{Version: ver, Commit: rev, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if sec, err := strconv.ParseInt(epoch, 10, 64); err == nil {
		i.BuildDate = time.Unix(sec, 0).UTC().Format(time.RFC3339)
	}
	if bi != nil {
		i.GoVersion = bi.GoVersion
		// go install module@v0.1.0 records the module's version; a build in a checkout
		// records "(devel)", which says nothing.
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if i.Commit == "" {
					i.Commit = s.Value
				}
			case "vcs.time":
				if i.BuildDate == "" {
					if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
						i.BuildDate = t.UTC().Format(time.RFC3339)
					}
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		// Only when the commit came from the VCS stamp: uncommitted changes make it a
		// different program from that commit.
		if modified && rev == "" && i.Commit != "" {
			i.Commit += "-dirty"
		}
	}
	for _, f := range []*string{&i.Version, &i.Commit, &i.BuildDate, &i.GoVersion} {
		if *f == "" {
			*f = unknown
		}
	}
	return i
}

// String is the line that `--version` prints, program first, e.g.
//
//	jeton v0.1.0 (commit 3eec930…, built 2026-12-07T02:00:00Z, go1.26.8, linux/amd64)
func (i Info) String(program string) string {
	return fmt.Sprintf("%s %s (commit %s, built %s, %s, %s)", program, i.Version, i.Commit, i.BuildDate, i.GoVersion, i.Platform)
}

// KeysAndValues are the fields for a structured log line (logr), e.g. at start.
func (i Info) KeysAndValues() []any {
	return []any{"version", i.Version, "commit", i.Commit, "buildDate", i.BuildDate, "goVersion", i.GoVersion, "platform", i.Platform}
}
