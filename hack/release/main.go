// Command release writes the kubectl plugin's part of a release and seals it, for `make
// release` (which writes the image, the packaged chart and install.yaml first):
//
//   - kubectl-jeton_<version>_<os>_<arch>.tar.gz for linux and darwin, amd64 and arm64: the
//     plugin (static, -trimpath, empty build ID, stamped with -ldflags), its completion
//     script kubectl_complete-jeton and LICENSE;
//   - plugin.yaml, the krew manifest of these archives (URIs of the GitHub release, sha256);
//   - the packaged chart (jeton-*.tgz) rewritten with the commit's time in every header:
//     helm package stamps the wall clock, which would change the archive on every run;
//   - SHA256SUMS of every file of the release directory, in `sha256sum -c` form.
//
// Every archive has fixed owners (0:0), modes, times (SOURCE_DATE_EPOCH) and order, and its
// gzip header no name and no time: two runs on one commit write the same bytes.
//
//	go run ./hack/release -dir dist/release -version v0.1.0 -ldflags "-X ..."
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	plugin   = "kubectl-jeton"
	complete = "kubectl_complete-jeton"
	// download is where the GitHub release serves its assets: the krew manifest points there.
	download = "https://github.com/jeton-dev/jeton/releases/download"
	homepage = "https://github.com/jeton-dev/jeton"
)

type options struct {
	dir, version, ldflags, pkg, root string
	platforms                        []string
	mtime                            time.Time
}

func main() {
	var o options
	var platforms string
	flag.StringVar(&o.dir, "dir", "dist/release", "release directory (must exist; make release creates it)")
	flag.StringVar(&o.version, "version", "", "release version, e.g. v0.1.0 (required)")
	flag.StringVar(&o.ldflags, "ldflags", "", "extra go build -ldflags (the version stamps), after -s -w -buildid=")
	flag.StringVar(&o.pkg, "pkg", "./cmd/kubectl-jeton", "the plugin's main package")
	flag.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64,darwin/amd64,darwin/arm64", "os/arch of the plugin archives")
	flag.Parse()
	o.platforms = strings.Split(platforms, ",")
	o.root = "."
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.version == "" {
		return errors.New("-version is required")
	}
	sec, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64)
	if err != nil {
		return fmt.Errorf("SOURCE_DATE_EPOCH (the commit's time, git log -1 --format=%%ct) is required: %w", err)
	}
	o.mtime = time.Unix(sec, 0).UTC()

	license, err := os.ReadFile(filepath.Join(o.root, "LICENSE"))
	if err != nil {
		return err
	}
	completion, err := os.ReadFile(filepath.Join(o.root, "cmd", "kubectl-jeton", complete))
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "jeton-release-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	var krew []krewPlatform
	for _, p := range o.platforms {
		goos, goarch, ok := strings.Cut(p, "/")
		if !ok {
			return fmt.Errorf("-platforms: %q is not os/arch", p)
		}
		bin := filepath.Join(work, goos+"-"+goarch, plugin)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid= "+o.ldflags, "-o", bin, o.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s for %s: %w", o.pkg, p, err)
		}
		exe, err := os.ReadFile(bin)
		if err != nil {
			return err
		}
		archive := fmt.Sprintf("%s_%s_%s_%s.tar.gz", plugin, o.version, goos, goarch)
		b, err := targz(o.mtime, []entry{{plugin, 0o755, exe}, {complete, 0o755, completion}, {"LICENSE", 0o644, license}})
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(o.dir, archive), b, 0o644); err != nil {
			return err
		}
		krew = append(krew, krewPlatform{goos, goarch, archive, sha256hex(b)})
		fmt.Printf("wrote %s\n", filepath.Join(o.dir, archive))
	}
	if err := os.WriteFile(filepath.Join(o.dir, "plugin.yaml"), []byte(krewManifest(o.version, krew)), 0o644); err != nil {
		return err
	}

	charts, err := filepath.Glob(filepath.Join(o.dir, "jeton-*.tgz"))
	if err != nil {
		return err
	}
	if len(charts) != 1 {
		return fmt.Errorf("want one packaged chart jeton-*.tgz in %s (helm package), found %v", o.dir, charts)
	}
	if err := normalizeTarGz(charts[0], o.mtime); err != nil {
		return fmt.Errorf("%s: %w", charts[0], err)
	}

	sums, err := checksums(o.dir)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.dir, "SHA256SUMS"), []byte(sums), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s\n", filepath.Join(o.dir, "SHA256SUMS"))
	return nil
}

type entry struct {
	name string
	mode int64
	data []byte
}

// targz writes files in the given order with fixed owners and times; the gzip header has
// neither name nor time.
func targz(mtime time.Time, files []entry) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	for _, f := range files {
		if err := tw.WriteHeader(reproducible(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data))}, mtime)); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := errors.Join(tw.Close(), zw.Close()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// reproducible keeps what an archive means (name, type, mode, size, link) and fixes the rest.
func reproducible(h *tar.Header, mtime time.Time) *tar.Header {
	return &tar.Header{
		Typeflag: h.Typeflag, Name: h.Name, Linkname: h.Linkname, Size: h.Size, Mode: h.Mode & 0o7777,
		ModTime: mtime, Format: tar.FormatPAX,
	}
}

// normalizeTarGz rewrites a .tar.gz in place with reproducible headers, entries in their order.
func normalizeTarGz(path string, mtime time.Time) error {
	in, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	zr, err := gzip.NewReader(bytes.NewReader(in))
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	tr, tw := tar.NewReader(zr), tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(reproducible(h, mtime)); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	if err := errors.Join(tw.Close(), zw.Close()); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

type krewPlatform struct{ os, arch, archive, sha256 string }

// krewManifest is the plugin's krew manifest (krew-index's plugins/jeton.yaml), installable
// locally with `kubectl krew install --manifest=plugin.yaml --archive=<archive>`.
func krewManifest(version string, ps []krewPlatform) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: jeton
spec:
  version: %s
  homepage: %s
  shortDescription: Register of jeton's public-API tokens and day-2 commands
  description: |
    The kubectl plugin of jeton, the operator that injects French public-API tokens
    (API Entreprise, API Particulier, Démarches Numériques) into each public client's
    namespace: status, inventory, who-uses, reconcile, probe, inspect-token, version.
    It never prints a token.
  platforms:
`, version, homepage)
	for _, p := range ps {
		fmt.Fprintf(&b, `  - selector:
      matchLabels:
        os: %s
        arch: %s
    uri: %s/%s/%s
    sha256: %s
    bin: %s
    files:
    - from: %s
      to: .
    - from: %s
      to: .
    - from: LICENSE
      to: .
`, p.os, p.arch, download, version, p.archive, p.sha256, plugin, plugin, complete)
	}
	return b.String()
}

// checksums lists every regular file under dir but SHA256SUMS, sorted, as sha256sum does.
func checksums(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "SHA256SUMS" {
			return err
		}
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return "", err
	}
	slices.Sort(files)
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s  %s\n", sha256hex(data), f)
	}
	return b.String(), nil
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
