package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTargzIsReproducible(t *testing.T) {
	mtime := time.Unix(1796601600, 0)
	files := []entry{{"kubectl-jeton", 0o755, []byte("binary")}, {"LICENSE", 0o644, []byte("license")}}
	a, err := targz(mtime, files)
	if err != nil {
		t.Fatal(err)
	}
	b, err := targz(mtime, files)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("two archives of the same files differ (%v)", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	if !zr.ModTime.IsZero() || zr.Name != "" {
		t.Errorf("gzip header has time %s and name %q, want neither", zr.ModTime, zr.Name)
	}
	tr := tar.NewReader(zr)
	for _, f := range files {
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != f.name || h.Mode != f.mode || h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(mtime) {
			t.Errorf("header %+v, want %s mode %o owner 0:0 time %s", h, f.name, f.mode, mtime)
		}
	}
}

// helm package stamps the wall clock: normalizeTarGz makes two packages of one chart equal.
func TestNormalizeTarGz(t *testing.T) {
	dir := t.TempDir()
	mtime := time.Unix(1796601600, 0)
	var paths []string
	for i, now := range []time.Time{time.Unix(1, 0), time.Unix(2, 0)} {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.ModTime = now
		tw := tar.NewWriter(zw)
		for _, name := range []string{"jeton/Chart.yaml", "jeton/values.yaml"} {
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 1, ModTime: now, Uname: "someone", Uid: 1000}); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, strings.Repeat("c", i+1)+".tgz")
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := normalizeTarGz(p, mtime); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	a, _ := os.ReadFile(paths[0])
	b, _ := os.ReadFile(paths[1])
	if !bytes.Equal(a, b) {
		t.Error("two packages of the same files at different times differ after normalizeTarGz")
	}
}

func TestChecksums(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"b.txt": "b", "image/blobs/sha256/x": "x", "SHA256SUMS": "old"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := checksums(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256hex([]byte("b")) + "  b.txt\n" + sha256hex([]byte("x")) + "  image/blobs/sha256/x\n"
	if got != want {
		t.Errorf("checksums:\n%s\nwant (sorted, sha256sum's form, without SHA256SUMS):\n%s", got, want)
	}
}
