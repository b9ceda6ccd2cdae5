//go:build jetontest

package main

import (
	"flag"
	"io"
	"testing"
	"time"
)

// TestTestBinaryTakesTestProbeInterval: binaries built for tests keep the flag, and refuse
// a negative interval.
func TestTestBinaryTakesTestProbeInterval(t *testing.T) {
	fs := flag.NewFlagSet("jeton", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg, err := parseFlags(fs, []string{"--test-probe-interval=1s"}, "ops")
	if err != nil || cfg.testProbeInterval != time.Second {
		t.Fatalf("parseFlags(--test-probe-interval=1s) = %+v, %v", cfg, err)
	}
	fs = flag.NewFlagSet("jeton", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := parseFlags(fs, []string{"--test-probe-interval=-1s"}, "ops"); err == nil {
		t.Fatal("a negative --test-probe-interval was accepted")
	}
}
