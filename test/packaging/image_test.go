package packaging

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"crypto/tls"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jeton-dev/jeton/internal/testenv"
)

// OCI image layout and image-spec structures, read with the standard library only: the test
// does not trust the library that wrote them.
type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
	Platform    *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform"`
}

type ociIndex struct {
	MediaType string          `json:"mediaType"`
	Manifests []ociDescriptor `json:"manifests"`
}

type ociManifest struct {
	MediaType string          `json:"mediaType"`
	Config    ociDescriptor   `json:"config"`
	Layers    []ociDescriptor `json:"layers"`
}

type ociConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Config       struct {
		User       string            `json:"User"`
		Entrypoint []string          `json:"Entrypoint"`
		Cmd        []string          `json:"Cmd"`
		Env        []string          `json:"Env"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
}

// layoutBlob reads a blob of the layout and checks it against its digest and size.
func layoutBlob(t *testing.T, dir string, d ociDescriptor) []byte {
	t.Helper()
	algo, hexDigest, _ := strings.Cut(d.Digest, ":")
	b, err := os.ReadFile(filepath.Join(dir, "blobs", algo, hexDigest))
	if err != nil {
		t.Fatalf("blob %s: %v", d.Digest, err)
	}
	sum := sha256.Sum256(b)
	if algo != "sha256" || hex.EncodeToString(sum[:]) != hexDigest || int64(len(b)) != d.Size {
		t.Fatalf("blob %s does not match its descriptor (size %d, want %d)", d.Digest, len(b), d.Size)
	}
	return b
}

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// TestImage builds the image as `make image` does, checks what users and scanners read
// (one index for amd64 and arm64, user 65532, entrypoint, OCI labels, two static binaries
// (the manager and the gateway), CA certificates, no shell), then runs its entrypoint from the
// unpacked root filesystem as UID 65532 on a read-only root, with the bundle's arguments and
// an in-cluster configuration, until /readyz answers, and the bundle's gateway command there
// too (--version: the gateway's serving loop is tested by its own end-to-end tests).
func TestImage(t *testing.T) {
	builder := tool(t, "jeton-image", "packaging-tools")
	const version, revision, ref = "v9.9.9-test", "0123456789abcdef0123456789abcdef01234567", "ghcr.io/jeton-dev/jeton:v9.9.9-test"
	dir := filepath.Join(t.TempDir(), "image")
	// Two builds of the manager and of the gateway, one of each cross-compiled: minutes with a
	// cold Go build cache.
	if _, err := runCmdTimeout(t, 15*time.Minute, nil, nil, builder, "-out", dir, "-ref", ref, "-version", version,
		"-revision", revision, "-licenses", "NOASSERTION", "-platforms", "linux/amd64,linux/arm64"); err != nil {
		t.Fatal(err)
	}

	var top ociIndex
	decodeJSON(t, mustRead(t, filepath.Join(dir, "index.json")), &top)
	if layout := string(mustRead(t, filepath.Join(dir, "oci-layout"))); !strings.Contains(layout, `"imageLayoutVersion"`) {
		t.Fatalf("oci-layout: %s", layout)
	}
	if len(top.Manifests) != 1 || top.Manifests[0].MediaType != "application/vnd.oci.image.index.v1+json" ||
		top.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != ref {
		t.Fatalf("index.json should name one OCI image index %s: %+v", ref, top.Manifests)
	}
	var idx ociIndex
	decodeJSON(t, layoutBlob(t, dir, top.Manifests[0]), &idx)

	rootfs := map[string]string{}
	var archs []string
	for _, m := range idx.Manifests {
		if m.Platform == nil || m.Platform.OS != "linux" {
			t.Fatalf("index entry without a linux platform: %+v", m)
		}
		arch := m.Platform.Architecture
		archs = append(archs, arch)
		var man ociManifest
		decodeJSON(t, layoutBlob(t, dir, m), &man)
		if man.MediaType != "application/vnd.oci.image.manifest.v1+json" || man.Config.MediaType != "application/vnd.oci.image.config.v1+json" {
			t.Errorf("%s: manifest %s, config %s: want OCI media types", arch, man.MediaType, man.Config.MediaType)
		}
		var cfg ociConfig
		decodeJSON(t, layoutBlob(t, dir, man.Config), &cfg)
		if cfg.OS != "linux" || cfg.Architecture != arch {
			t.Errorf("%s: config says %s/%s", arch, cfg.OS, cfg.Architecture)
		}
		if cfg.Config.User != "65532:65532" {
			t.Errorf("%s: user %q, want 65532:65532 (non-root)", arch, cfg.Config.User)
		}
		if !slices.Equal(cfg.Config.Entrypoint, []string{"/manager"}) || len(cfg.Config.Cmd) > 0 {
			t.Errorf("%s: entrypoint %q cmd %q, want [/manager] and no cmd (config/manager runs command /manager)", arch, cfg.Config.Entrypoint, cfg.Config.Cmd)
		}
		for k, want := range map[string]string{
			"org.opencontainers.image.source":   "https://github.com/jeton-dev/jeton",
			"org.opencontainers.image.version":  version,
			"org.opencontainers.image.revision": revision,
			"org.opencontainers.image.licenses": "NOASSERTION",
		} {
			if got := cfg.Config.Labels[k]; got != want {
				t.Errorf("%s: label %s = %q, want %q", arch, k, got, want)
			}
		}
		if len(man.Layers) != 1 || man.Layers[0].MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
			t.Fatalf("%s: layers %+v, want one gzip OCI layer", arch, man.Layers)
		}
		root := filepath.Join(t.TempDir(), "rootfs-"+arch)
		unpack(t, layoutBlob(t, dir, man.Layers[0]), root)
		checkRootfs(t, arch, root)
		rootfs[arch] = root
		if arch == runtime.GOARCH {
			runImage(t, root, cfg)
		}
	}
	slices.Sort(archs)
	if !slices.Equal(archs, []string{"amd64", "arm64"}) {
		t.Errorf("the index holds %v, want amd64 and arm64", archs)
	}
	if rootfs[runtime.GOARCH] == "" {
		t.Errorf("no image for this machine's architecture %s: its entrypoint was not run", runtime.GOARCH)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unpack extracts a gzipped layer as a container runtime does, owners and modes included.
func unpack(t *testing.T, layer []byte, root string) {
	t.Helper()
	gz, err := gzip.NewReader(strings.NewReader(string(layer)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("layer entry %s of type %c: the image should hold only directories and files", h.Name, h.Typeflag)
		}
		if err := os.Chmod(p, os.FileMode(h.Mode).Perm()); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkRootfs: static binaries for arch (the manager and the gateway), the nonroot user, CA
// certificates, and nothing else to run (no shell, no package manager).
func checkRootfs(t *testing.T, arch, root string) {
	t.Helper()
	for _, bin := range []string{"manager", "jeton-gateway"} {
		checkStaticBinary(t, arch, root, bin)
	}
	var files []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if !d.IsDir() {
			files = append(files, "/"+rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	if want := []string{"/etc/group", "/etc/passwd", "/etc/ssl/certs/ca-certificates.crt", "/jeton-gateway", "/manager"}; !slices.Equal(files, want) {
		t.Errorf("%s: the image holds %v, want only %v (no shell, no package manager)", arch, files, want)
	}
	for _, shell := range []string{"bin/sh", "bin/bash", "bin/busybox", "usr/bin/env"} {
		if _, err := os.Stat(filepath.Join(root, shell)); err == nil {
			t.Errorf("%s: the image has /%s", arch, shell)
		}
	}
	if !strings.Contains(string(mustRead(t, filepath.Join(root, "etc/passwd"))), "nonroot:x:65532:65532:") {
		t.Errorf("%s: /etc/passwd has no nonroot user 65532", arch)
	}
	if n := strings.Count(string(mustRead(t, filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"))), "BEGIN CERTIFICATE"); n < 50 {
		t.Errorf("%s: the CA bundle holds %d certificates: the public APIs' HTTPS would not verify", arch, n)
	}
}

// checkStaticBinary: /<bin> is an executable for arch that needs no loader.
func checkStaticBinary(t *testing.T, arch, root, bin string) {
	t.Helper()
	f, err := elf.Open(filepath.Join(root, bin))
	if err != nil {
		t.Errorf("%s: /%s: %v", arch, bin, err)
		return
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != want {
		t.Errorf("%s: /%s is built for %v", arch, bin, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: /%s is dynamically linked: it needs a loader the image does not have", arch, bin)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, bin)); err != nil {
		t.Errorf("%s: /%s: %v", arch, bin, err)
	} else if fi.Mode().Perm() != 0o755 {
		t.Errorf("%s: /%s mode %v, want 0755", arch, bin, fi.Mode())
	}
}

// runImage runs the image's entrypoint as a kubelet would run the bundle's Deployment: as
// UID 65532, on the root filesystem mounted read-only, with the ServiceAccount token and CA
// mounted at the usual path and KUBERNETES_SERVICE_HOST/PORT set (in-cluster configuration),
// and the Deployment's arguments. It must become ready and stop cleanly on SIGTERM.
func runImage(t *testing.T, root string, cfg ociConfig) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("running the image needs root (a mount namespace, chroot and setuid to 65532); run make test as root, as CI does")
	}
	for _, tool := range []string{"unshare", "mount", "chroot"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (Debian packages util-linux, mount and coreutils): %v", tool, err)
		}
	}
	bundle, _ := applyInstaller(t)
	ctr := container(t, bundle.get(t, "Deployment", operatorNamespace, "jeton-controller-manager"))

	// The kubelet's ServiceAccount volume: a bound token for the bundle's ServiceAccount.
	tok, stderr, err := env.Kubectl(t.Context(), nil, "create", "token", "jeton-controller-manager", "-n", operatorNamespace, "--duration", "1h")
	if err != nil {
		t.Fatalf("kubectl create token: %v: %s", err, stderr)
	}
	sa := filepath.Join(root, "var/run/secrets/kubernetes.io/serviceaccount")
	if err := os.MkdirAll(sa, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"token": []byte(strings.TrimSpace(tok)), "ca.crt": env.Config.CAData, "namespace": []byte(operatorNamespace)} {
		if err := os.WriteFile(filepath.Join(sa, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	api, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}

	probeAddr, metricsAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	var args []string
	for _, a := range stringList(ctr["args"]) {
		switch {
		case strings.HasPrefix(a, "--metrics-bind-address="):
			a = "--metrics-bind-address=" + metricsAddr
		case strings.HasPrefix(a, "--health-probe-bind-address="):
			a = "--health-probe-bind-address=" + probeAddr
		}
		args = append(args, a)
	}
	// A private mount namespace (it goes away with the process): the root filesystem bound
	// read-only, then chroot into it as 65532:65532 and exec the entrypoint. No shell of the
	// image is involved: sh, mount and chroot are the host's.
	script := `set -e; mount --bind "$1" "$1"; mount -o remount,bind,ro "$1"; root=$1; shift; exec chroot --userspec=65532:65532 "$root" "$@"`
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", root},
		append(cfg.Config.Entrypoint, args...)...)...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"KUBERNETES_SERVICE_HOST=" + api.Hostname(), "KUBERNETES_SERVICE_PORT=" + api.Port(),
		"POD_NAMESPACE=" + operatorNamespace, "JETON_MEMORY_LIMIT=268435456"}, cfg.Config.Env...)
	p := startProcess(t, cmd, metricsAddr, probeAddr)
	p.ready(t)

	// What runs is the manager, as 65532, on a read-only root.
	status := string(mustRead(t, fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)))
	if !strings.Contains(status, "\nUid:\t65532\t65532\t65532\t65532\n") {
		t.Errorf("the entrypoint does not run as 65532:\n%s", status)
	}
	if !rootReadOnly(t, cmd.Process.Pid) {
		t.Errorf("the entrypoint's root filesystem is not read-only")
	}
	// The secure metrics endpoint serves HTTPS (a certificate generated in memory: nothing
	// written to the root) and answers 401 to a caller without a token.
	hc := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Get("https://" + metricsAddr + "/metrics")
	if err != nil {
		t.Errorf("metrics endpoint: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("metrics endpoint without a token answered %s, want 401", resp.Status)
		}
	}
	p.stop(t)
	p.noForbidden(t, "the bundle's ServiceAccount, from the image")

	// The bundle's gateway Deployment runs this image with its own command: the binary is
	// there, runs as 65532 on the read-only root, and is the gateway.
	gw := gatewayContainer(t, bundle.get(t, "Deployment", operatorNamespace, "jeton-gateway"))
	command := stringList(gw["command"])
	if !slices.Equal(command, []string{"/jeton-gateway"}) {
		t.Fatalf("the bundle's gateway runs command %q, want [/jeton-gateway]", command)
	}
	out, err := runCmdTimeout(t, time.Minute, nil, nil, "unshare", append([]string{"--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", root},
		append(command, "--version")...)...)
	if err != nil {
		t.Fatalf("the image's %v --version: %v", command, err)
	}
	if !strings.HasPrefix(out.stdout, "jeton-gateway ") {
		t.Errorf("the image's %v --version printed %q, want the gateway's version line", command, out.stdout)
	}
}

// rootReadOnly reads the mount flags of the process's root from its mountinfo.
func rootReadOnly(t *testing.T, pid int) bool {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ...
		fields := strings.Fields(sc.Text())
		if len(fields) > 5 && fields[4] == "/" {
			return slices.Contains(strings.Split(fields[5], ","), "ro")
		}
	}
	t.Fatalf("no root mount in /proc/%d/mountinfo", pid)
	return false
}
