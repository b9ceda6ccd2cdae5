package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jeton-dev/jeton/internal/cli"
)

func newStatusCommand(o *options) *cobra.Command {
	var all bool
	failWithin := 30
	gatewayNamespace := defaultGatewayNamespace
	cmd := &cobra.Command{
		Use:   "status",
		Short: "The fleet in one screen, most urgent first; exit status 1 when something needs action",
		Long: `The fleet in one screen, sorted by urgency: expired tokens, conflicts, Stalled resources,
failing probes, resources not Ready or not reconciled yet, tokens expiring within 7, 30
and 90 days; then counts of what is fine. Every namespace unless -n is given (with -n,
the PublicClients are those its Habilitations name).

Then the gateway, read from the metrics of its pods (label
app.kubernetes.io/name=jeton-gateway in --gateway-namespace) through the API server's pod
proxy (RBAC: list pods, get pods/proxy there): replicas reached, requests by code class,
refusals by reason, the clients it throttles most, and the 429s the APIs sent it. Counts
are since each replica started. With -n, only that namespace's Habilitations are counted,
but the APIs' 429s always show: a ban of the vendor's address stops every client. Without
a gateway, or without the right to read its pods, one line says so.

Exit status 1 when something needs action: anything listed, except tokens that expire in
--fail-within-days days or more (default 30, when the shipped alerts start to warn); and
any 429 the APIs sent the gateway (the JetonGatewayUpstreamThrottled alert pages on it).`,
		Example: `  kubectl jeton status
  kubectl jeton status -n jeton-system --fail-within-days 7`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := o.session()
			if err != nil {
				return err
			}
			ns, scope := s.scope()
			if all {
				ns, scope = "", "all namespaces"
			}
			f, err := s.fleet(cmd.Context(), ns)
			if err != nil {
				return err
			}
			rep := cli.Status(f, o.now())
			cli.WriteStatus(o.streams.Out, rep, scope, failWithin)
			gw := cli.GatewayStatus(o.scrapeGateway(cmd.Context(), gatewayNamespace), ns, o.now())
			cli.WriteGatewayStatus(o.streams.Out, gw)
			if rep.NeedsAction(failWithin) > 0 || gw.NeedsAction() {
				return exitStatus(exitNeedsAction)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "every namespace (the default unless -n is given)")
	cmd.Flags().IntVar(&failWithin, "fail-within-days", failWithin, "tokens expiring within this many days make the exit status 1 (0: never)")
	cmd.Flags().StringVar(&gatewayNamespace, "gateway-namespace", gatewayNamespace, "namespace of the gateway's pods (the operator's)")
	_ = cmd.RegisterFlagCompletionFunc("gateway-namespace", o.completeNamespaces)
	return cmd
}

func newInventoryCommand(o *options) *cobra.Command {
	var all bool
	format := cli.FormatTable
	cmd := &cobra.Command{
		Use:   "inventory",
		Short: "The vendor's register of tokens: one line per Habilitation and TechnicalToken",
		Long: `The vendor's register of tokens, for an auditor: one line per Habilitation (client,
SIRET, API, environment, DataPass id, token id, fingerprint, issued, expires, days left,
Ready and reason, injected Secret) and per TechnicalToken. Sorted by client, API,
environment and name; technical tokens last. Never a token: tokens are identified by their
fingerprint (first 16 hex characters of the SHA-256 of the token) and their id.

Every namespace unless -n is given. JSON adds each client's display name and the scopes.`,
		Example: `  kubectl jeton inventory
  kubectl jeton inventory -o csv > register.csv
  kubectl jeton inventory -o markdown > register.md`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(cli.Formats, format) {
				return fmt.Errorf("unknown output format %q: use one of %s", format, strings.Join(cli.Formats, ", "))
			}
			s, err := o.session()
			if err != nil {
				return err
			}
			ns, _ := s.scope()
			if all {
				ns = ""
			}
			f, err := s.fleet(cmd.Context(), ns)
			if err != nil {
				return err
			}
			now := o.now()
			return cli.WriteInventory(o.streams.Out, format, cli.Inventory(f, now), now)
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "every namespace (the default unless -n is given)")
	cmd.Flags().StringVarP(&format, "output", "o", format, "output format: "+strings.Join(cli.Formats, ", "))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(cli.Formats, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
