package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/jeton-dev/jeton/internal/version"
)

// Exit statuses, as documented in the README and in --help.
const (
	exitOK = 0
	// exitNeedsAction: the command worked and found something that needs action (status),
	// or a resource that is not Ready (reconcile, probe), or an expired token (inspect-token).
	exitNeedsAction = 1
	// exitError: the command could not do its job (no cluster, no CRDs, no access, unknown
	// name, bad usage, timeout), or its answer is incomplete.
	exitError = 2
)

// exitStatus ends a command with a status and no further message: what it found is
// already printed.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// options are shared by every command.
type options struct {
	streams genericiooptions.IOStreams
	// now is the clock of reports (days left, generation time); tests fix it. Requests
	// are stamped with the wall clock, whatever now says: each must be new.
	now    func() time.Time
	config *genericclioptions.ConfigFlags
}

const rootLong = `kubectl jeton: the register of tokens that jeton injects for each public client, and
the day-2 commands of the platform team. Nothing it prints ever contains a token.

Commands that read the cluster use your kubeconfig (--kubeconfig, --context, -n as kubectl
does). status and inventory cover every namespace unless -n is given.

Exit status: 0 all is well; 1 the command found something that needs action (status), a
resource that is not Ready (reconcile, probe) or an expired token (inspect-token); 2 the
command failed (no cluster, CRDs not installed, no access, unknown name, timeout).`

func newRootCommand(o *options) *cobra.Command {
	root := &cobra.Command{
		Use:           "kubectl-jeton",
		Short:         "The register of jeton's tokens and day-2 commands",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Shown by kubectl as `kubectl jeton`.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl jeton"},
		// --version prints what the version command prints.
		Version: version.Get().String("kubectl-jeton"),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetIn(o.streams.In)
	root.SetOut(o.streams.Out)
	root.SetErr(o.streams.ErrOut)
	o.config.AddFlags(root.PersistentFlags())
	_ = root.RegisterFlagCompletionFunc("namespace", o.completeNamespaces)
	root.AddCommand(
		newStatusCommand(o),
		newInventoryCommand(o),
		newWhoUsesCommand(o),
		newReconcileCommand(o),
		newProbeCommand(o),
		newRotateGatewayCredentialCommand(o),
		newInspectTokenCommand(o),
		newVersionCommand(o),
	)
	return root
}

// execute runs the plugin with args and returns its exit status.
func execute(ctx context.Context, args []string, streams genericiooptions.IOStreams, now func() time.Time) int {
	o := &options{streams: streams, now: now, config: genericclioptions.NewConfigFlags(true)}
	root := newRootCommand(o)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var status exitStatus
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &status):
		return int(status)
	}
	fmt.Fprintf(streams.ErrOut, "error: %v\n", err)
	return exitError
}
