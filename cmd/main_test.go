package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jeton-dev/jeton/internal/memlimit"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantNS    []string
		wantLease string
		wantErr   string
	}{
		{name: "defaults to the operator namespace", wantNS: []string{"ops"}, wantLease: "ops"},
		{name: "comma-separated list, trimmed, deduplicated",
			args:   []string{"--credentials-namespaces", " jeton-system, vendor-creds ,jeton-system,"},
			wantNS: []string{"jeton-system", "vendor-creds"}, wantLease: "ops"},
		{name: "upper case namespace rejected",
			args: []string{"--credentials-namespaces=Jeton"}, wantErr: `--credentials-namespaces: "Jeton" is not a valid namespace name`},
		{name: "underscore rejected",
			args: []string{"--credentials-namespaces=a,b_c"}, wantErr: `"b_c" is not a valid namespace name`},
		{name: "empty list rejected",
			args: []string{"--credentials-namespaces= , "}, wantErr: "at least one namespace is required"},
		{name: "bad lease namespace rejected when electing",
			args: []string{"--leader-elect", "--leader-election-namespace=No"}, wantErr: `--leader-election-namespace "No" is not a valid namespace name`},
		{name: "zero workers rejected",
			args: []string{"--max-concurrent-reconciles=0"}, wantErr: "--max-concurrent-reconciles must be at least 1"},
		{name: "zero API QPS rejected",
			args: []string{"--kube-api-qps=0"}, wantErr: "--kube-api-qps must be above 0"},
		{name: "zero API host budget rejected",
			args: []string{"--api-host-budget-per-minute=0"}, wantErr: "--api-host-budget-per-minute must be at least 1"},
		{name: "positional arguments rejected",
			args: []string{"run"}, wantErr: "unexpected arguments"},
		{name: "plain HTTP metrics accepted",
			args: []string{"--metrics-secure=false", "--metrics-bind-address=127.0.0.1:8080"}, wantNS: []string{"ops"}, wantLease: "ops"},
		{name: "metrics certificate directory without its files rejected",
			args: []string{"--metrics-cert-path=/nonexistent/jeton-certs"}, wantErr: `--metrics-cert-name: /nonexistent/jeton-certs/tls.crt is not a readable file`},
		{name: "metrics certificate with plain HTTP rejected",
			args: []string{"--metrics-secure=false", "--metrics-cert-path=/etc"}, wantErr: "--metrics-cert-path needs --metrics-secure"},
		{name: "metrics key name that is a path rejected",
			args: []string{"--metrics-cert-path=/etc", "--metrics-cert-key=../tls.key"}, wantErr: `--metrics-cert-key must be a file name in --metrics-cert-path, got "../tls.key"`},
		{name: "empty metrics certificate name rejected",
			args: []string{"--metrics-cert-path=/etc", "--metrics-cert-name="}, wantErr: `--metrics-cert-name must be a file name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("jeton", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg, err := parseFlags(fs, tt.args, "ops")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.credentialsNamespaces, tt.wantNS) {
				t.Errorf("credentials namespaces = %q, want %q", cfg.credentialsNamespaces, tt.wantNS)
			}
			if cfg.leaderElectionNamespace != tt.wantLease {
				t.Errorf("lease namespace = %q, want %q", cfg.leaderElectionNamespace, tt.wantLease)
			}
		})
	}
}

func TestOperatorNamespace(t *testing.T) {
	noFile := func(string) ([]byte, error) { return nil, fs.ErrNotExist }
	saFile := func(p string) ([]byte, error) {
		if p != serviceAccountNamespaceFile {
			return nil, errors.New("unexpected path " + p)
		}
		return []byte("from-sa\n"), nil
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "POD_NAMESPACE" {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		name     string
		getenv   func(string) string
		readFile func(string) ([]byte, error)
		want     string
	}{
		{"POD_NAMESPACE wins", env("from-env"), saFile, "from-env"},
		{"service-account file next", env(""), saFile, "from-sa"},
		{"fallback out of cluster", env(""), noFile, "jeton-system"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := operatorNamespace(tt.getenv, tt.readFile); got != tt.want {
				t.Errorf("operatorNamespace() = %q, want %q", got, tt.want)
			}
		})
	}
}

// The metrics server is HTTPS with authentication and authorization unless told otherwise,
// and uses the given certificate directory when there is one.
func TestMetricsOptions(t *testing.T) {
	certDir := t.TempDir()
	for _, f := range []string{"server.crt", "server.key"} {
		if err := os.WriteFile(filepath.Join(certDir, f), []byte("placeholder"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name       string
		args       []string
		wantAddr   string
		wantSecure bool
		wantCert   [3]string // CertDir, CertName, KeyName
	}{
		{name: "secure by default on :8443", wantAddr: ":8443", wantSecure: true},
		{name: "plain HTTP on loopback",
			args:     []string{"--metrics-secure=false", "--metrics-bind-address=127.0.0.1:8080"},
			wantAddr: "127.0.0.1:8080"},
		{name: "certificate from a directory",
			args:     []string{"--metrics-cert-path", certDir, "--metrics-cert-name=server.crt", "--metrics-cert-key=server.key"},
			wantAddr: ":8443", wantSecure: true,
			wantCert: [3]string{certDir, "server.crt", "server.key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("jeton", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg, err := parseFlags(fs, tt.args, "ops")
			if err != nil {
				t.Fatal(err)
			}
			o := cfg.metricsOptions()
			if o.BindAddress != tt.wantAddr || o.SecureServing != tt.wantSecure {
				t.Errorf("bind address %q, secure %v; want %q, %v", o.BindAddress, o.SecureServing, tt.wantAddr, tt.wantSecure)
			}
			if got := o.FilterProvider != nil; got != tt.wantSecure {
				t.Errorf("authentication and authorization filter set: %v, want %v", got, tt.wantSecure)
			}
			if got := [3]string{o.CertDir, o.CertName, o.KeyName}; got != tt.wantCert {
				t.Errorf("certificate (dir, cert, key) = %q, want %q", got, tt.wantCert)
			}
			if tt.wantSecure {
				tc := &tls.Config{}
				for _, f := range o.TLSOpts {
					f(tc)
				}
				if !slices.Equal(tc.NextProtos, []string{"http/1.1"}) {
					t.Errorf("TLS NextProtos = %q, want HTTP/1.1 only", tc.NextProtos)
				}
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:8080": true,
		":8080": false, "0.0.0.0:8080": false, "10.0.0.1:8080": false, "0": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestSoftMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    int64
		wantErr bool
	}{
		{"no limit given", nil, 0, false},
		{"512Mi limit from the downward API", map[string]string{memlimit.Env: "536870912"}, 429496728, false},
		{"GOMEMLIMIT wins: the runtime applies it itself", map[string]string{memlimit.Env: "268435456", "GOMEMLIMIT": "100MiB"}, 0, false},
		{"not a byte count", map[string]string{memlimit.Env: "256Mi"}, 0, true},
		{"zero", map[string]string{memlimit.Env: "0"}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := memlimit.Soft(func(k string) string { return tc.env[k] })
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("memlimit.Soft = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestGatewayFlags: --default-delivery and --gateway-url, validated before anything runs:
// a Gateway default without a URL, or a URL that would put a credential, a query or a
// fragment into every client namespace's BASE_URL, stops the manager at start.
func TestGatewayFlags(t *testing.T) {
	tests := []struct {
		name         string
		args         []string
		wantDelivery string
		wantURL      string
		wantErr      string
	}{
		{name: "defaults: Direct, no gateway", wantDelivery: "Direct"},
		{name: "Gateway default with its URL",
			args:         []string{"--default-delivery=Gateway", "--gateway-url=http://jeton-gateway.jeton-system.svc:8080"},
			wantDelivery: "Gateway", wantURL: "http://jeton-gateway.jeton-system.svc:8080"},
		{name: "URL alone keeps Direct as the default",
			args: []string{"--gateway-url=https://gw.example:8443/base"}, wantDelivery: "Direct", wantURL: "https://gw.example:8443/base"},
		{name: "Gateway default without URL rejected",
			args: []string{"--default-delivery=Gateway"}, wantErr: "--default-delivery=Gateway needs --gateway-url"},
		{name: "unknown delivery rejected",
			args: []string{"--default-delivery=gateway"}, wantErr: `--default-delivery: "gateway" is neither Direct nor Gateway`},
		{name: "other scheme rejected",
			args: []string{"--gateway-url=ftp://gw:21"}, wantErr: `--gateway-url: scheme "ftp"`},
		{name: "relative URL rejected",
			args: []string{"--gateway-url=jeton-gateway:8080"}, wantErr: "--gateway-url: scheme"},
		{name: "no host rejected",
			args: []string{"--gateway-url=http:///path"}, wantErr: "--gateway-url: no host"},
		{name: "user info rejected",
			args: []string{"--gateway-url=http://user:pw@gw:8080"}, wantErr: "--gateway-url: user info is not allowed"},
		{name: "query rejected",
			args: []string{"--gateway-url=http://gw:8080/?recipient=1"}, wantErr: "--gateway-url: a query or fragment is not allowed"},
		{name: "empty query rejected",
			args: []string{"--gateway-url=http://gw:8080/?"}, wantErr: "--gateway-url: a query or fragment is not allowed"},
		{name: "fragment rejected",
			args: []string{"--gateway-url=http://gw:8080/#x"}, wantErr: "--gateway-url: a query or fragment is not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("jeton", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg, err := parseFlags(fs, tt.args, "ops")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "pw") {
					t.Errorf("the error quotes the URL's password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(cfg.defaultDelivery) != tt.wantDelivery || cfg.gatewayURL != tt.wantURL {
				t.Errorf("delivery %q, URL %q; want %q, %q", cfg.defaultDelivery, cfg.gatewayURL, tt.wantDelivery, tt.wantURL)
			}
		})
	}
}
