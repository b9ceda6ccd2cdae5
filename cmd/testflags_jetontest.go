//go:build jetontest

package main

import (
	"flag"
	"fmt"
	"time"
)

// registerTestFlags registers the flags of binaries built for tests (go build -tags
// jetontest, as internal/testenv does): the CRD forbids intervals under 30s, which would
// make the tests that run this binary (test/fault, test/attack, test/e2e) wait minutes.
func registerTestFlags(fs *flag.FlagSet, c *config) {
	fs.Func("test-probe-interval",
		"TESTS ONLY (this binary was built with -tags jetontest): probe every TechnicalToken at this interval, overriding spec.interval and its 30s minimum.",
		func(s string) error {
			d, err := time.ParseDuration(s)
			if err != nil {
				return err
			}
			if d < 0 {
				return fmt.Errorf("must not be negative, got %s", d)
			}
			c.testProbeInterval = d
			return nil
		})
}
