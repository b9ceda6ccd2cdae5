package main

import (
	"errors"
	"flag"
	"io"
	"io/fs"
	"slices"
	"strings"
	"testing"
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
		{name: "positional arguments rejected",
			args: []string{"run"}, wantErr: "unexpected arguments"},
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
