package packaging

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// releaseImageRepo is the Makefile's IMAGE_REPO: the image the chart runs by default.
const releaseImageRepo = "ghcr.io/jeton-dev/jeton"

// release is what the test knows of the commit: the VERSION file, the commit and its time.
type release struct {
	version, chartVersion, commit, buildDate string
	epoch                                    time.Time
}

// TestRelease runs `make release` as a maintainer would, twice, each into a temporary
// RELEASE_DIR, and checks every artifact: the same SHA256SUMS from both runs (reproducible
// for a commit), every file summed and matching its sum, each artifact saying the VERSION
// file's version and the Apache-2.0 license, the plugin of this machine printing its
// version, the manager in the image printing the same, and the packaged chart installing on
// a fresh API server.
func TestRelease(t *testing.T) {
	r := releaseOfCommit(t)
	dirs := []string{filepath.Join(t.TempDir(), "release"), filepath.Join(t.TempDir(), "release")}
	for i, dir := range dirs {
		start := time.Now()
		makeRelease(t, dir)
		t.Logf("make release run %d: %s", i+1, time.Since(start).Round(time.Second))
	}
	dir := dirs[0]

	t.Run("reproducible", func(t *testing.T) {
		a, b := string(mustRead(t, filepath.Join(dirs[0], "SHA256SUMS"))), string(mustRead(t, filepath.Join(dirs[1], "SHA256SUMS")))
		if a != b {
			var differ []string
			lines := strings.Split(b, "\n")
			for _, l := range strings.Split(a, "\n") {
				if !slices.Contains(lines, l) {
					differ = append(differ, l)
				}
			}
			t.Errorf("two runs of make release on one commit differ:\n%s", strings.Join(differ, "\n"))
		}
	})
	t.Run("sums", func(t *testing.T) { checkSums(t, dir) })
	t.Run("files", func(t *testing.T) {
		want := []string{"SHA256SUMS", "install.yaml", "plugin.yaml", "image/index.json", "image/oci-layout",
			fmt.Sprintf("jeton-%s.tgz", r.chartVersion)}
		for _, p := range pluginPlatforms {
			want = append(want, pluginArchive(r.version, p))
		}
		for _, f := range want {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("the release lacks %s: %v", f, err)
			}
		}
	})
	t.Run("image", func(t *testing.T) { checkReleaseImage(t, dir, r) })
	t.Run("install.yaml", func(t *testing.T) {
		b := string(mustRead(t, filepath.Join(dir, "install.yaml")))
		header, _, _ := strings.Cut(b, "\n")
		if !strings.Contains(header, "jeton "+r.version+" ") || !strings.Contains(header, "Apache-2.0") {
			t.Errorf("install.yaml's first line does not give version %s and the license: %q", r.version, header)
		}
		d := parseManifests(t, b).get(t, "Deployment", operatorNamespace, "jeton-controller-manager")
		if img := container(t, d)["image"]; img != releaseImageRepo+":"+r.version {
			t.Errorf("install.yaml runs image %v, want %s:%s", img, releaseImageRepo, r.version)
		}
	})
	t.Run("plugin", func(t *testing.T) { checkPluginArchives(t, dir, r) })
	t.Run("changelog", func(t *testing.T) {
		if !strings.Contains(string(mustRead(t, repoPath("CHANGELOG.md"))), "\n## ["+r.chartVersion+"] - ") {
			t.Errorf("CHANGELOG.md has no section ## [%s] - <date>", r.chartVersion)
		}
	})
	t.Run("chart", func(t *testing.T) { checkReleaseChart(t, dir, r) })
}

func releaseOfCommit(t *testing.T) release {
	t.Helper()
	r := release{version: strings.TrimSpace(string(mustRead(t, repoPath("VERSION"))))}
	r.chartVersion = strings.TrimPrefix(r.version, "v")
	r.commit = strings.TrimSpace(must(t, nil, nil, "git", "rev-parse", "HEAD").stdout)
	sec, err := strconv.ParseInt(strings.TrimSpace(must(t, nil, nil, "git", "log", "-1", "--format=%ct").stdout), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	r.epoch = time.Unix(sec, 0).UTC()
	r.buildDate = r.epoch.Format(time.RFC3339)
	return r
}

// makeRelease runs `make release RELEASE_DIR=dir` from the repository root, without the
// variables of an enclosing make (make test), so that it is the command a maintainer runs.
func makeRelease(t *testing.T, dir string) {
	t.Helper()
	// Six builds (the manager for two platforms, the plugin for four): many minutes with a
	// cold Go build cache on 2 cores.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "release", "RELEASE_DIR="+dir)
	cmd.WaitDelay = 10 * time.Second
	cmd.Dir = rootDir()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); name != "MAKEFLAGS" && name != "MFLAGS" && name != "MAKELEVEL" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make release RELEASE_DIR=%s: %v\n%s", dir, err, out)
	}
}

// checkSums: SHA256SUMS lists every other file of the release, each with its SHA-256.
func checkSums(t *testing.T, dir string) {
	t.Helper()
	listed := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(mustRead(t, filepath.Join(dir, "SHA256SUMS"))))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("SHA256SUMS line %q is not `<sha256>  <file>`", sc.Text())
		}
		listed[name] = sum
	}
	var files []string
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != "SHA256SUMS" {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(files) != len(listed) {
		t.Errorf("SHA256SUMS lists %d files, the release holds %d", len(listed), len(files))
	}
	for _, f := range files {
		switch want, ok := listed[f]; {
		case !ok:
			t.Errorf("SHA256SUMS does not list %s", f)
		case sha256Hex(mustRead(t, filepath.Join(dir, f))) != want:
			t.Errorf("%s does not match its SHA256SUMS line", f)
		}
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// tarEntry is one file of an archive.
type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

// readTarGz returns the entries of a .tar.gz in their order.
func readTarGz(t *testing.T, b []byte) []tarEntry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out []tarEntry
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{h, data})
	}
}

func tarFile(t *testing.T, entries []tarEntry, name string) []byte {
	t.Helper()
	for _, e := range entries {
		if e.hdr.Name == name {
			return e.data
		}
	}
	t.Fatalf("no %s in the archive", name)
	return nil
}

// checkReleaseImage: the image is tagged with the version, labelled with it, the commit and
// the license, and its manager says the same with --version.
func checkReleaseImage(t *testing.T, dir string, r release) {
	t.Helper()
	layoutDir := filepath.Join(dir, "image")
	var top ociIndex
	decodeJSON(t, mustRead(t, filepath.Join(layoutDir, "index.json")), &top)
	if len(top.Manifests) != 1 || top.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != releaseImageRepo+":"+r.version {
		t.Fatalf("index.json should name one image %s:%s: %+v", releaseImageRepo, r.version, top.Manifests)
	}
	var idx ociIndex
	decodeJSON(t, layoutBlob(t, layoutDir, top.Manifests[0]), &idx)
	if len(idx.Manifests) != 2 {
		t.Fatalf("the release image has %d platforms, want linux/amd64 and linux/arm64", len(idx.Manifests))
	}
	for _, m := range idx.Manifests {
		var man ociManifest
		decodeJSON(t, layoutBlob(t, layoutDir, m), &man)
		var cfg ociConfig
		decodeJSON(t, layoutBlob(t, layoutDir, man.Config), &cfg)
		for k, want := range map[string]string{
			"org.opencontainers.image.version":  r.version,
			"org.opencontainers.image.revision": r.commit,
			"org.opencontainers.image.licenses": "Apache-2.0",
			"org.opencontainers.image.created":  r.buildDate,
		} {
			if got := cfg.Config.Labels[k]; got != want {
				t.Errorf("%s image: label %s = %q, want %q", m.Platform.Architecture, k, got, want)
			}
		}
		if m.Platform.Architecture != runtime.GOARCH || runtime.GOOS != "linux" {
			continue
		}
		manager := tarFile(t, readTarGz(t, layoutBlob(t, layoutDir, man.Layers[0])), "manager")
		bin := filepath.Join(t.TempDir(), "manager")
		if err := os.WriteFile(bin, manager, 0o755); err != nil {
			t.Fatal(err)
		}
		out := must(t, nil, nil, bin, "--version").stdout
		if want := fmt.Sprintf("jeton %s (commit %s, built %s, ", r.version, r.commit, r.buildDate); !strings.HasPrefix(out, want) {
			t.Errorf("the image's /manager --version printed %q, want it to start with %q", out, want)
		}
		// The gateway, in the same image, is stamped the same way.
		gw := filepath.Join(t.TempDir(), "jeton-gateway")
		if err := os.WriteFile(gw, tarFile(t, readTarGz(t, layoutBlob(t, layoutDir, man.Layers[0])), "jeton-gateway"), 0o755); err != nil {
			t.Fatal(err)
		}
		out = must(t, nil, nil, gw, "--version").stdout
		if want := fmt.Sprintf("jeton-gateway %s (commit %s, built %s, ", r.version, r.commit, r.buildDate); !strings.HasPrefix(out, want) {
			t.Errorf("the image's /jeton-gateway --version printed %q, want it to start with %q", out, want)
		}
	}
}

var pluginPlatforms = []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"}

func pluginArchive(version, platform string) string {
	goos, goarch, _ := strings.Cut(platform, "/")
	return fmt.Sprintf("kubectl-jeton_%s_%s_%s.tar.gz", version, goos, goarch)
}

// krewPlugin is the part of a krew manifest (krew.googlecontainertools.github.com/v1alpha2)
// that krew installs from.
type krewPlugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version   string `json:"version"`
		Platforms []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			SHA256 string `json:"sha256"`
			Bin    string `json:"bin"`
			Files  []struct {
				From string `json:"from"`
				To   string `json:"to"`
			} `json:"files"`
		} `json:"platforms"`
	} `json:"spec"`
}

// checkPluginArchives: the krew manifest points at each archive with its sum; each archive
// holds the plugin, its completion script and LICENSE with fixed owners and times; the
// plugin for this machine prints the release's version, commit and build date.
func checkPluginArchives(t *testing.T, dir string, r release) {
	t.Helper()
	var k krewPlugin
	if err := yaml.Unmarshal(mustRead(t, filepath.Join(dir, "plugin.yaml")), &k); err != nil {
		t.Fatalf("plugin.yaml: %v", err)
	}
	if k.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || k.Kind != "Plugin" || k.Metadata.Name != "jeton" || k.Spec.Version != r.version {
		t.Errorf("plugin.yaml: %s %s %s version %s, want a krew Plugin jeton version %s", k.APIVersion, k.Kind, k.Metadata.Name, k.Spec.Version, r.version)
	}
	license := mustRead(t, repoPath("LICENSE"))
	seen := map[string]bool{}
	for _, p := range k.Spec.Platforms {
		platform := p.Selector.MatchLabels["os"] + "/" + p.Selector.MatchLabels["arch"]
		seen[platform] = true
		archive := pluginArchive(r.version, platform)
		b := mustRead(t, filepath.Join(dir, archive))
		if p.SHA256 != sha256Hex(b) {
			t.Errorf("plugin.yaml: %s sha256 %s, the archive's is %s", platform, p.SHA256, sha256Hex(b))
		}
		if want := "https://github.com/jeton-dev/jeton/releases/download/" + r.version + "/" + archive; p.URI != want {
			t.Errorf("plugin.yaml: %s uri %s, want %s", platform, p.URI, want)
		}
		if p.Bin != "kubectl-jeton" || len(p.Files) == 0 {
			t.Errorf("plugin.yaml: %s bin %q files %v", platform, p.Bin, p.Files)
		}
		entries := readTarGz(t, b)
		var names []string
		for _, e := range entries {
			names = append(names, e.hdr.Name)
			if e.hdr.Uid != 0 || e.hdr.Gid != 0 || e.hdr.Uname != "" || !e.hdr.ModTime.Equal(r.epoch) {
				t.Errorf("%s: %s has owner %d:%d %q, time %s; want 0:0 and the commit's time %s", archive, e.hdr.Name, e.hdr.Uid, e.hdr.Gid, e.hdr.Uname, e.hdr.ModTime, r.epoch)
			}
		}
		if strings.Join(names, ",") != "kubectl-jeton,kubectl_complete-jeton,LICENSE" {
			t.Errorf("%s holds %v", archive, names)
		}
		if !bytes.Equal(tarFile(t, entries, "LICENSE"), license) {
			t.Errorf("%s: LICENSE is not the repository's", archive)
		}
		if platform != runtime.GOOS+"/"+runtime.GOARCH {
			continue
		}
		bin := filepath.Join(t.TempDir(), "kubectl-jeton")
		if err := os.WriteFile(bin, tarFile(t, entries, "kubectl-jeton"), 0o755); err != nil {
			t.Fatal(err)
		}
		var got struct{ Version, Commit, BuildDate, GoVersion, Platform string }
		decodeJSON(t, []byte(must(t, nil, nil, bin, "version", "-o", "json").stdout), &got)
		if got.Version != r.version || got.Commit != r.commit || got.BuildDate != r.buildDate || got.Platform != platform || !strings.HasPrefix(got.GoVersion, "go1.") {
			t.Errorf("kubectl-jeton version -o json from %s: %+v, want version %s commit %s buildDate %s", archive, got, r.version, r.commit, r.buildDate)
		}
		if out := must(t, nil, nil, bin, "--version").stdout; !strings.HasPrefix(out, "kubectl-jeton "+r.version+" (commit "+r.commit) {
			t.Errorf("kubectl-jeton --version: %q", out)
		}
	}
	for _, p := range pluginPlatforms {
		if !seen[p] {
			t.Errorf("plugin.yaml has no platform %s", p)
		}
	}
}

// checkReleaseChart: the packaged chart says the version and the license, and installs from
// its archive, as a GitOps tool pinning it would, on a fresh API server.
func checkReleaseChart(t *testing.T, dir string, r release) {
	t.Helper()
	pkg := filepath.Join(dir, "jeton-"+r.chartVersion+".tgz")
	var meta struct {
		Version, AppVersion string
		Annotations         map[string]string
	}
	if err := yaml.Unmarshal(tarFile(t, readTarGz(t, mustRead(t, pkg)), "jeton/Chart.yaml"), &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Version != r.chartVersion || meta.AppVersion != r.version || meta.Annotations["artifacthub.io/license"] != "Apache-2.0" {
		t.Errorf("the packaged Chart.yaml: version %s appVersion %s annotations %v; want %s, %s and license Apache-2.0",
			meta.Version, meta.AppVersion, meta.Annotations, r.chartVersion, r.version)
	}

	c := startBareCluster(t)
	c.kubectl(t, nil, "create", "namespace", operatorNamespace)
	c.helm(t, "install", "jeton", pkg, "--namespace", operatorNamespace)
	c.kubectl(t, nil, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/publicclients.jeton.dev", "crd/habilitations.jeton.dev", "crd/technicaltokens.jeton.dev")
	var releases []struct {
		Chart      string `json:"chart"`
		AppVersion string `json:"app_version"`
	}
	if err := json.Unmarshal([]byte(c.helm(t, "list", "--namespace", operatorNamespace, "-o", "json").stdout), &releases); err != nil {
		t.Fatal(err)
	}
	if len(releases) != 1 || releases[0].Chart != "jeton-"+r.chartVersion || releases[0].AppVersion != r.version {
		t.Errorf("helm list: %+v, want chart jeton-%s, app version %s", releases, r.chartVersion, r.version)
	}
	manifest := c.helm(t, "get", "manifest", "jeton", "--namespace", operatorNamespace).stdout
	d := parseManifests(t, manifest).get(t, "Deployment", operatorNamespace, "jeton-controller-manager")
	if img := container(t, d)["image"]; img != releaseImageRepo+":"+r.version {
		t.Errorf("the packaged chart runs image %v, want %s:%s", img, releaseImageRepo, r.version)
	}
	c.kubectl(t, nil, "-n", operatorNamespace, "get", "deployment/jeton-controller-manager")
}

// TestChartFollowsVERSION: make check-generated (hack/sync-chart.sh --check) fails when the
// chart's version or appVersion disagrees with VERSION, and make manifests (hack/sync-chart.sh)
// brings them back in line. On a copy of the repository's files, not the working tree.
func TestChartFollowsVERSION(t *testing.T) {
	tmp := t.TempDir()
	for _, p := range []string{"hack", "config", "dist", "VERSION"} {
		must(t, nil, nil, "cp", "-r", repoPath(p), filepath.Join(tmp, p))
	}
	sync := func(args ...string) (result, error) {
		return runCmd(t, nil, nil, "bash", append([]string{filepath.Join(tmp, "hack", "sync-chart.sh")}, args...)...)
	}
	if _, err := sync("--check"); err != nil {
		t.Fatalf("the repository's chart disagrees with VERSION: %v", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "VERSION"), []byte("v9.9.9-rc.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := sync("--check")
	if err == nil || !strings.Contains(r.stderr, `does not say 'version: 9.9.9-rc.1'`) || !strings.Contains(r.stderr, `does not say 'appVersion: "v9.9.9-rc.1"'`) {
		t.Fatalf("sync-chart.sh --check with VERSION v9.9.9-rc.1 and the chart at 0.x: %v\n%s", err, r.stderr)
	}
	if _, err := sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := sync("--check"); err != nil {
		t.Fatalf("after sync-chart.sh: %v", err)
	}
	chart := string(mustRead(t, filepath.Join(tmp, "dist", "chart", "Chart.yaml")))
	if !strings.Contains(chart, "\nversion: 9.9.9-rc.1\n") || !strings.Contains(chart, "\nappVersion: \"v9.9.9-rc.1\"\n") {
		t.Errorf("sync-chart.sh did not write VERSION into Chart.yaml:\n%s", chart)
	}
	if err := os.WriteFile(filepath.Join(tmp, "VERSION"), []byte("0.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r, err := sync("--check"); err == nil || !strings.Contains(r.stderr, "not vMAJOR.MINOR.PATCH") {
		t.Errorf("sync-chart.sh --check with VERSION 0.2: %v\n%s", err, r.stderr)
	}
}
