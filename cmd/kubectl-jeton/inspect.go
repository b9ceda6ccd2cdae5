package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/cli"
	"github.com/jeton-dev/jeton/internal/token"
)

var apis = []string{string(jetonv1alpha1.APIEntreprise), string(jetonv1alpha1.APIParticulier), string(jetonv1alpha1.DemarchesNumeriques)}

func newInspectTokenCommand(o *options) *cobra.Command {
	var api string
	format := cli.FormatTable
	cmd := &cobra.Command{
		Use:   "inspect-token [-n NAMESPACE SECRET [KEY]]",
		Short: "Decode a token offline: kind, id, scopes, issued, expires, fingerprint; never the token",
		Long: `Decode a token offline (no call to any API, no signature check: only the issuer can):
its kind, token id, scopes, issue and expiry dates, and its fingerprint (the first 16 hex
characters of the SHA-256 of its canonical form, as jeton records it in status). The token
itself is never printed.

The token comes from standard input (on a terminal, typed input is hidden), or from key
KEY of Secret SECRET (-n for its namespace). Without KEY: the Secret's only key, else
"token" (source Secrets) or "TOKEN" (injected Secrets).

A JWT is decoded as API Entreprise and API Particulier tokens are alike; anything else as a
Démarches Numériques token (whose expiry only the API knows). --api decodes as that API.
Exit status 1 when the token has expired.`,
		Example: `  kubectl jeton inspect-token -n jeton-system trifouilly-api-entreprise-token token
  kubectl jeton inspect-token -n trifouilly api-entreprise
  pbpaste | kubectl jeton inspect-token`,
		Args: cobra.MaximumNArgs(2),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return o.completeSecrets(cmd.Context())
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if api != "" && !slices.Contains(apis, api) {
				return fmt.Errorf("unknown API %q: use one of %s", api, strings.Join(apis, ", "))
			}
			var raw []byte
			var err error
			if len(args) == 0 {
				raw, err = readToken(o.streams.In, o.streams.ErrOut)
			} else {
				raw, err = o.secretValue(cmd, args)
			}
			if err != nil {
				return err
			}
			now := o.now()
			in, err := cli.Inspect(raw, jetonv1alpha1.API(api), now)
			if err != nil {
				// The token package's errors never quote the token.
				return err
			}
			if err := cli.WriteInspection(o.streams.Out, in, format, now); err != nil {
				return err
			}
			if in.Expired(now) {
				return exitStatus(exitNeedsAction)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&api, "api", "", "decode as a token of this API: "+strings.Join(apis, ", "))
	cmd.Flags().StringVarP(&format, "output", "o", format, "output format: table or json")
	_ = cmd.RegisterFlagCompletionFunc("api", cobra.FixedCompletions(apis, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{cli.FormatTable, cli.FormatJSON}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// readToken reads a token from in; on a terminal, without echo (a token typed or pasted
// is not left on the screen).
func readToken(in io.Reader, prompt io.Writer) ([]byte, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "Paste the token and press Enter (input hidden): ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		return b, err
	}
	b, err := io.ReadAll(io.LimitReader(in, token.MaxSize+1024))
	if err != nil {
		return nil, fmt.Errorf("reading the token from standard input: %w", err)
	}
	return b, nil
}

// secretValue reads the token from a Secret key.
func (o *options) secretValue(cmd *cobra.Command, args []string) ([]byte, error) {
	s, err := o.session()
	if err != nil {
		return nil, err
	}
	secret := &corev1.Secret{}
	if err := s.Get(cmd.Context(), client.ObjectKey{Namespace: s.namespace, Name: args[0]}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("there is no Secret %s/%s (use -n for its namespace)", s.namespace, args[0])
		}
		return nil, s.explain(err, access{verb: "get", resource: "secrets", namespace: s.namespace})
	}
	keys := slices.Sorted(maps.Keys(secret.Data))
	key := ""
	switch {
	case len(args) == 2:
		key = args[1]
	case len(keys) == 1:
		key = keys[0]
	case slices.Contains(keys, "token"):
		key = "token"
	case slices.Contains(keys, "TOKEN"):
		key = "TOKEN"
	default:
		return nil, fmt.Errorf("the Secret %s/%s has several keys (%s): name the one holding the token", s.namespace, args[0], strings.Join(keys, ", "))
	}
	v, ok := secret.Data[key]
	if !ok {
		return nil, fmt.Errorf("the Secret %s/%s has no key %q (keys: %s)", s.namespace, args[0], key, strings.Join(keys, ", "))
	}
	return v, nil
}
