// Command jeton-image builds jeton's image without a container daemon and without pulling
// any base image: the image holds only what the manager and the gateway need, assembled here with
// go-containerregistry (the library under crane and ko), one image per platform in one OCI
// index, written as an OCI image layout.
//
// Each image has a single layer:
//
//	/manager                           the static manager binary (CGO off), owned by root, 0755
//	/jeton-gateway                     the static gateway binary (same build flags), root, 0755
//	/etc/passwd, /etc/group            root and nonroot (65532), as distroless/static has them
//	/etc/ssl/certs/ca-certificates.crt the build machine's CA bundle (-ca-bundle)
//	/home/nonroot                      nonroot's home, 0700
//
// and runs as 65532:65532 with entrypoint ["/manager"] (the gateway's Deployment sets command
// ["/jeton-gateway"]: one image to pull, sign and scan): no shell, no package manager, nothing
// writable, so it runs with readOnlyRootFilesystem. Timestamps are fixed (-created, default
// SOURCE_DATE_EPOCH or the Unix epoch) so that a rebuild of the same sources gives the same
// layer.
//
// Usage (from the repository root; `make image` passes these):
//
//	jeton-image -out dist/image -ref ghcr.io/jeton-dev/jeton:v0.1.0 -version v0.1.0 \
//	  -revision $(git rev-parse HEAD) -licenses Apache-2.0 -platforms linux/amd64,linux/arm64 \
//	  -ldflags "-X github.com/jeton-dev/jeton/internal/version.version=v0.1.0 ..."
//
// Push the layout with any OCI tool, e.g. `crane push --index dist/image REF` or
// `skopeo copy --all oci:dist/image docker://REF`.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The unprivileged user of distroless images, which config/manager and the chart run as.
const nonroot = 65532

type options struct {
	out, ref, pkg, gatewayPkg, caBundle string
	version, revision, licenses, source string
	// ldflags are added to both binaries' link flags: the Makefile stamps the version
	// package (internal/version) with them, so that /manager --version and
	// /jeton-gateway --version say what the labels say.
	ldflags   string
	platforms []string
	created   time.Time
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "jeton-image:", err)
		os.Exit(2)
	}
	if err := build(o); err != nil {
		fmt.Fprintln(os.Stderr, "jeton-image:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("jeton-image", flag.ContinueOnError)
	var o options
	var platforms, created string
	fs.StringVar(&o.out, "out", "dist/image", "directory of the OCI image layout to write (replaced)")
	fs.StringVar(&o.ref, "ref", "", "the image's name, recorded as org.opencontainers.image.ref.name in the layout (e.g. ghcr.io/jeton-dev/jeton:v0.1.0)")
	fs.StringVar(&o.pkg, "pkg", "./cmd", "the manager's main package, built with the go command from the working directory")
	fs.StringVar(&o.gatewayPkg, "gateway-pkg", "./cmd/gateway", "the gateway's main package (binary /jeton-gateway), built like the manager")
	fs.StringVar(&o.caBundle, "ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA certificates to ship (Debian package ca-certificates)")
	fs.StringVar(&o.version, "version", "", "org.opencontainers.image.version (required)")
	fs.StringVar(&o.revision, "revision", "", "org.opencontainers.image.revision: the source's commit (required)")
	fs.StringVar(&o.licenses, "licenses", "", "org.opencontainers.image.licenses, an SPDX expression (required)")
	fs.StringVar(&o.source, "source", "https://github.com/jeton-dev/jeton", "org.opencontainers.image.source")
	fs.StringVar(&o.ldflags, "ldflags", "", "extra go build -ldflags for both binaries (e.g. -X flags stamping their version), after -s -w -buildid=")
	fs.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "comma-separated os/arch to build")
	fs.StringVar(&created, "created", "", "creation time (RFC 3339) in the image; default SOURCE_DATE_EPOCH, else the Unix epoch, for reproducible builds")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for name, v := range map[string]string{"-version": o.version, "-revision": o.revision, "-licenses": o.licenses, "-out": o.out,
		"-pkg": o.pkg, "-gateway-pkg": o.gatewayPkg} {
		if strings.TrimSpace(v) == "" {
			return o, fmt.Errorf("%s is required", name)
		}
	}
	for _, p := range strings.Split(platforms, ",") {
		if os, arch, ok := strings.Cut(strings.TrimSpace(p), "/"); !ok || os != "linux" || arch == "" {
			return o, fmt.Errorf("-platforms: %q is not linux/<arch>", p)
		}
		o.platforms = append(o.platforms, strings.TrimSpace(p))
	}
	switch {
	case created != "":
		t, err := time.Parse(time.RFC3339, created)
		if err != nil {
			return o, fmt.Errorf("-created: %w", err)
		}
		o.created = t
	case os.Getenv("SOURCE_DATE_EPOCH") != "":
		sec, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64)
		if err != nil {
			return o, fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
		}
		o.created = time.Unix(sec, 0)
	default:
		o.created = time.Unix(0, 0)
	}
	o.created = o.created.UTC()
	return o, nil
}

func build(o options) error {
	ca, err := os.ReadFile(o.caBundle)
	if err != nil {
		return fmt.Errorf("reading the CA bundle (install the Debian package ca-certificates, or pass -ca-bundle): %w", err)
	}
	if !bytes.Contains(ca, []byte("BEGIN CERTIFICATE")) {
		return fmt.Errorf("%s holds no PEM certificate", o.caBundle)
	}
	work, err := os.MkdirTemp("", "jeton-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range o.platforms {
		_, arch, _ := strings.Cut(p, "/")
		manager, gateway := filepath.Join(work, "manager-"+arch), filepath.Join(work, "jeton-gateway-"+arch)
		if err := goBuild(o.pkg, arch, o.ldflags, manager); err != nil {
			return err
		}
		if err := goBuild(o.gatewayPkg, arch, o.ldflags, gateway); err != nil {
			return err
		}
		img, err := image(o, arch, manager, gateway, ca)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}

	if err := os.RemoveAll(o.out); err != nil {
		return err
	}
	lp, err := layout.Write(o.out, empty.Index)
	if err != nil {
		return err
	}
	var opts []layout.Option
	if o.ref != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": o.ref}))
	}
	if err := lp.AppendIndex(idx, opts...); err != nil {
		return fmt.Errorf("writing %s: %w", o.out, err)
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s: OCI image index %s (%s), version %s, revision %s\n", o.out, digest, strings.Join(o.platforms, ", "), o.version, o.revision)
	return nil
}

// goBuild builds a binary static, with trimmed paths, no symbol table and an empty build
// ID, so that a commit always gives the same binary.
func goBuild(pkg, arch, ldflags, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid= "+ldflags, "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for linux/%s: %w", pkg, arch, err)
	}
	return nil
}

func image(o options, arch, managerBin, gatewayBin string, ca []byte) (v1.Image, error) {
	manager, err := os.ReadFile(managerBin)
	if err != nil {
		return nil, err
	}
	gateway, err := os.ReadFile(gatewayBin)
	if err != nil {
		return nil, err
	}
	rootfs, err := rootfsTar(o.created, manager, gateway, ca)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(rootfs)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: o.created}, CreatedBy: "jeton-image (hack/image): /manager, /jeton-gateway, /etc/passwd, /etc/group, CA certificates",
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: o.created}
	cf.Config.User = fmt.Sprintf("%d:%d", nonroot, nonroot)
	cf.Config.Entrypoint = []string{"/manager"}
	cf.Config.Cmd = nil
	cf.Config.WorkingDir = "/"
	// Go finds the CA bundle at this path by itself; the variable makes it explicit for
	// anything else reading it.
	cf.Config.Env = []string{"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":       "jeton",
		"org.opencontainers.image.description": "jeton operator (/manager) and egress gateway (/jeton-gateway): French public-API tokens injected as Secrets into each public client's namespace",
		"org.opencontainers.image.source":      o.source,
		"org.opencontainers.image.url":         o.source,
		"org.opencontainers.image.version":     o.version,
		"org.opencontainers.image.revision":    o.revision,
		"org.opencontainers.image.licenses":    o.licenses,
		"org.opencontainers.image.created":     o.created.Format(time.RFC3339),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	// Registries and runtimes read the labels from the manifest's annotations too.
	return mutate.Annotations(img, cf.Config.Labels).(v1.Image), nil
}

// rootfsTar is the image's only layer, with fixed owners, modes and times.
func rootfsTar(mtime time.Time, manager, gateway, ca []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: mtime, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", nonroot, nonroot)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", nonroot)
	steps := []error{
		dir("etc", 0o755, 0),
		file("etc/passwd", 0o644, []byte(passwd)),
		file("etc/group", 0o644, []byte(group)),
		dir("etc/ssl", 0o755, 0),
		dir("etc/ssl/certs", 0o755, 0),
		file("etc/ssl/certs/ca-certificates.crt", 0o644, ca),
		dir("home", 0o755, 0),
		dir("home/nonroot", 0o700, nonroot),
		file("jeton-gateway", 0o755, gateway),
		file("manager", 0o755, manager),
		tw.Close(),
	}
	if err := errors.Join(steps...); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
