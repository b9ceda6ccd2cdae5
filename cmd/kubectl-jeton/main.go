// Command kubectl-jeton is jeton's kubectl plugin (`kubectl jeton ...`): the vendor's
// register of tokens and the platform team's day-2 commands. It reads jeton's resources and
// their status; it never prints a token (inspect-token prints a fingerprint).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

func main() {
	// controller-runtime's client logs through its global logger; unset, it complains on
	// stderr after 30 s (a long wait). The plugin reports errors itself.
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}, time.Now)
	stop()
	os.Exit(code)
}
