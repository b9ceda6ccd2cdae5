package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/jeton-dev/jeton/internal/cli"
	"github.com/jeton-dev/jeton/internal/version"
)

// newVersionCommand prints the plugin's build, as `jeton --version` prints the manager's:
// a bug report says which plugin and which manager ran. It reads no cluster.
func newVersionCommand(o *options) *cobra.Command {
	format := cli.FormatTable
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the plugin's version, commit, build date and Go version",
		Long: `Print the plugin's version, commit, build date and Go version (also: kubectl jeton --version).
The manager prints its own with --version and logs it at start ("jeton build").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := version.Get()
			switch format {
			case cli.FormatJSON:
				b, err := json.MarshalIndent(info, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(o.streams.Out, "%s\n", b)
				return err
			case cli.FormatTable:
				_, err := fmt.Fprintln(o.streams.Out, info.String("kubectl-jeton"))
				return err
			}
			return fmt.Errorf("unknown output format %q: use table or json", format)
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", format, "output format: table or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{cli.FormatTable, cli.FormatJSON}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
