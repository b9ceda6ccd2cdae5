package main

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(*testing.T, *config)
	}{
		{name: "defaults: the operator namespace holds the credentials", check: func(t *testing.T, c *config) {
			if !slices.Equal(c.credentialsNS, []string{"ops"}) || c.replicas != 2 || c.addressBudget != 850 || c.proberShare != 60 {
				t.Errorf("got %+v", c)
			}
		}},
		{name: "credentials namespaces trimmed and deduplicated", args: []string{"--credentials-namespaces", " a, b,a"}, check: func(t *testing.T, c *config) {
			if !slices.Equal(c.credentialsNS, []string{"a", "b"}) {
				t.Errorf("credentials namespaces %q", c.credentialsNS)
			}
		}},
		{name: "a namespace that is not one", args: []string{"--credentials-namespaces", "A_B"}, wantErr: "--credentials-namespaces"},
		{name: "no replica", args: []string{"--replicas", "0"}, wantErr: "--replicas must be at least 1"},
		{name: "the prober's share takes the whole budget", args: []string{"--address-budget-per-minute", "60"}, wantErr: "must be above --prober-share-per-minute"},
		{name: "a budget above the APIs' per-address limit", args: []string{"--address-budget-per-minute", "1001"}, wantErr: "above the APIs' 1000 requests/min"},
		{name: "a tiny body limit", args: []string{"--max-body-bytes", "10"}, wantErr: "--max-body-bytes"},
		{name: "an upstream host that is not allowed plain HTTP", args: []string{"--allowed-api-hosts", "http://x"}, wantErr: "--allowed-api-hosts"},
		{name: "arguments", args: []string{"extra"}, wantErr: "flags only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("jeton-gateway", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			c, err := parseFlags(fs, tt.args, "ops")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}
