package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jeton-dev/jeton/internal/testenv"
)

// TestGatewayServesTLSFromACertificateSecret runs the gateway with --tls-cert-dir, as the
// Deployment mounts a cert-manager Certificate's Secret (tls.crt, tls.key), and replaces
// the files as cert-manager renews them: the gateway serves HTTPS with the new certificate
// without a restart.
func TestGatewayServesTLSFromACertificateSecret(t *testing.T) {
	dir := t.TempDir()
	first := writeCert(t, dir, "first")
	if err := env.Client.Create(t.Context(), namespace("gw-tls")); err != nil {
		t.Fatal(err)
	}
	g := env.StartTestGateway(t, "gateway", env.Kubeconfig, []string{"POD_NAMESPACE=gw-tls"},
		"--credentials-namespaces", "gw-tls", "--tls-cert-dir", dir)
	testenv.WaitFor(t, time.Minute, "the gateway ready", g.Ready)

	// served returns the serial of the certificate the gateway presents.
	served := func() (string, error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", g.Addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test reads which certificate is served
		if err != nil {
			return "", err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
	}
	if got, err := served(); err != nil || got != first {
		t.Fatalf("served certificate %q (%v), want the mounted one %q", got, err, first)
	}
	// A call over HTTPS, trusting the mounted certificate: the gateway answers (401: no credential).
	pool := x509.NewCertPool()
	crt, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(crt)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "jeton-gateway.jeton-system.svc"}}}
	resp, err := c.Get("https://" + g.Addr + "/v3/insee/sirene/etablissements/21750001600019")
	if err != nil {
		t.Fatalf("HTTPS call: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("HTTPS call without a credential: status %d, want 401", resp.StatusCode)
	}

	// Renewal: cert-manager rewrites the files; the gateway picks them up on its own.
	second := writeCert(t, dir, "second")
	testenv.WaitFor(t, 30*time.Second, "the renewed certificate served", func(context.Context) error {
		if got, err := served(); err != nil || got != second {
			return fmt.Errorf("serving %q (%v)", got, err)
		}
		return nil
	})
}

// writeCert writes a new self-signed certificate for the gateway's Service name into
// dir/tls.crt and dir/tls.key, and returns its serial.
func writeCert(t *testing.T, dir, name string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		DNSNames:  []string{"jeton-gateway.jeton-system.svc"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Key first, then the certificate, each by rename, as the kubelet swaps a Secret volume.
	for _, f := range []struct {
		name string
		pem  *pem.Block
	}{{"tls.key", &pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}}, {"tls.crt", &pem.Block{Type: "CERTIFICATE", Bytes: der}}} {
		tmp := filepath.Join(dir, "."+f.name+".tmp")
		if err := os.WriteFile(tmp, pem.EncodeToMemory(f.pem), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, f.name)); err != nil {
			t.Fatal(err)
		}
	}
	return serial.String()
}
