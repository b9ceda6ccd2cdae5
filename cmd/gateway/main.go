// Command jeton-gateway is jeton's egress gateway (docs/gateway.md). It runs apart from the
// manager, with its own least-privilege identity: it takes the client workloads' untrusted
// traffic, so it holds no write permission at all.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/jeton-dev/jeton/internal/version"
)

func main() {
	ns := strings.TrimSpace(os.Getenv("POD_NAMESPACE"))
	if ns == "" {
		ns = "jeton-system"
	}
	cfg, err := parseFlags(flag.CommandLine, os.Args[1:], ns)
	if err != nil {
		fmt.Fprintln(os.Stderr, "jeton-gateway:", err)
		os.Exit(2)
	}
	if cfg.printVersion {
		fmt.Println(version.Get().String("jeton-gateway"))
		return
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "jeton-gateway:", err)
		os.Exit(1)
	}
}
