package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/cli"
)

// jetonKind is a kind the plugin can ask the operator to act on.
type jetonKind struct {
	kind, resource string
	aliases        []string
	namespaced     bool
	newObject      func() client.Object
	newList        func() client.ObjectList
}

var jetonKinds = []jetonKind{
	{cli.KindHabilitation, "habilitations", []string{"hab", "habilitation", "habilitations"}, true,
		func() client.Object { return &jetonv1alpha1.Habilitation{} }, func() client.ObjectList { return &jetonv1alpha1.HabilitationList{} }},
	{cli.KindTechnicalToken, "technicaltokens", []string{"tt", "technicaltoken", "technicaltokens"}, true,
		func() client.Object { return &jetonv1alpha1.TechnicalToken{} }, func() client.ObjectList { return &jetonv1alpha1.TechnicalTokenList{} }},
	{cli.KindPublicClient, "publicclients", []string{"pcl", "publicclient", "publicclients"}, false,
		func() client.Object { return &jetonv1alpha1.PublicClient{} }, func() client.ObjectList { return &jetonv1alpha1.PublicClientList{} }},
}

func kindNamed(s string) (jetonKind, error) {
	for _, k := range jetonKinds {
		if slices.Contains(k.aliases, strings.ToLower(s)) {
			return k, nil
		}
	}
	return jetonKind{}, fmt.Errorf("unknown kind %q: use hab (Habilitation), tt (TechnicalToken) or pcl (PublicClient)", s)
}

// requestOptions are the flags of reconcile and probe.
type requestOptions struct {
	wait    bool
	timeout time.Duration
}

func (r *requestOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&r.wait, "wait", true, "wait until the operator has handled the request, and print the outcome")
	cmd.Flags().DurationVar(&r.timeout, "timeout", time.Minute, "how long to wait")
}

func newReconcileCommand(o *options) *cobra.Command {
	ro := &requestOptions{}
	cmd := &cobra.Command{
		Use:   "reconcile (hab|tt|pcl) NAME",
		Short: "Ask the operator to reconcile a resource now, wait and print the outcome",
		Long: `Ask the operator to reconcile a resource now rather than at its next event or interval:
the plugin sets the annotation jeton.dev/requested-at to the current time (Flux's
reconcile.fluxcd.io/requestedAt convention), waits until the resource's status records it
in lastHandledRequestedAt, and prints the outcome. For a TechnicalToken this is a probe,
which still obeys the probe gate (one request in flight, Retry-After, host backoff).

Without -n, a Habilitation or TechnicalToken is looked for in every namespace. Needs the
RBAC verb patch on the resource (ClusterRole jeton-editor-role).`,
		Example: `  kubectl jeton reconcile hab trifouilly-api-entreprise
  kubectl jeton reconcile pcl trifouilly
  kubectl jeton reconcile tt -n jeton-system api-entreprise --timeout 2m`,
		Args: cobra.ExactArgs(2),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			switch len(args) {
			case 0:
				return []string{"hab\tHabilitation", "tt\tTechnicalToken", "pcl\tPublicClient"}, cobra.ShellCompDirectiveNoFileComp
			case 1:
				k, err := kindNamed(args[0])
				if err != nil {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				return o.completeNames(cmd.Context(), k)
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := kindNamed(args[0])
			if err != nil {
				return err
			}
			return o.request(cmd.Context(), k, args[1], ro)
		},
	}
	ro.addFlags(cmd)
	return cmd
}

func newProbeCommand(o *options) *cobra.Command {
	ro := &requestOptions{}
	cmd := &cobra.Command{
		Use:   "probe NAME",
		Short: "Probe a TechnicalToken now (through the probe gate), wait and print the result",
		Long: `Probe a TechnicalToken now rather than at its next interval: the same as
"kubectl jeton reconcile tt NAME". The probe goes through the operator's probe gate like
any other: never two requests in flight for one token, Retry-After and the host-wide
backoff after a 429 are honoured (a request made while the API asked to back off is
probed when the wait is over, which may be after --timeout), and a token probed less than
30s ago is probed 30s after that probe (requests made meanwhile share that probe). A suspended or Stalled
TechnicalToken is not probed: the outcome says why.`,
		Example: `  kubectl jeton probe api-entreprise
  kubectl jeton probe -n jeton-system api-particulier --timeout 2m`,
		Args: cobra.ExactArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return o.completeNames(cmd.Context(), jetonKinds[1])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.request(cmd.Context(), jetonKinds[1], args[0], ro)
		},
	}
	ro.addFlags(cmd)
	return cmd
}

// find reads the resource k/name: in -n's namespace when given, else the only one of that
// name across namespaces.
func (s *session) find(ctx context.Context, k jetonKind, name string) (client.Object, error) {
	obj := k.newObject()
	if !k.namespaced || s.explicit {
		ns := ""
		if k.namespaced {
			ns = s.namespace
		}
		err := s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, obj)
		if apierrors.IsNotFound(err) {
			where := ""
			if k.namespaced {
				where = " in namespace " + ns
			}
			return nil, fmt.Errorf("%s %q not found%s: `kubectl jeton inventory` lists them%s", k.kind, name, where, s.suggest(ctx, k, ns))
		}
		return obj, s.explain(err, jetonAccess("get", k.resource, ns))
	}
	list := k.newList()
	err := s.List(ctx, list, client.MatchingFields{"metadata.name": name})
	if apierrors.IsForbidden(err) {
		// No cluster-wide list: try the context's namespace, as kubectl would.
		s.explicit = true
		return s.find(ctx, k, name)
	}
	if err != nil {
		return nil, s.explain(err, jetonAccess("list", k.resource, allNamespaces))
	}
	var found []client.Object
	_ = forEachItem(list, func(o client.Object) { found = append(found, o) })
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%s %q not found in any namespace: `kubectl jeton inventory` lists them%s", k.kind, name, s.suggest(ctx, k, ""))
	case 1:
		return found[0], nil
	}
	var nss []string
	for _, o := range found {
		nss = append(nss, o.GetNamespace())
	}
	return nil, fmt.Errorf("%s %q exists in several namespaces (%s): choose one with -n", k.kind, name, strings.Join(nss, ", "))
}

// suggest lists a few names of kind k in namespace ns ("" for all), for a not-found error.
func (s *session) suggest(ctx context.Context, k jetonKind, ns string) string {
	list := k.newList()
	if err := s.List(ctx, list, client.InNamespace(ns), client.Limit(10)); err != nil {
		return ""
	}
	var names []string
	_ = forEachItem(list, func(o client.Object) { names = append(names, o.GetName()) })
	if len(names) == 0 {
		return ""
	}
	return "; there are: " + strings.Join(names, ", ")
}

func forEachItem(list client.ObjectList, f func(client.Object)) error {
	switch l := list.(type) {
	case *jetonv1alpha1.HabilitationList:
		for i := range l.Items {
			f(&l.Items[i])
		}
	case *jetonv1alpha1.TechnicalTokenList:
		for i := range l.Items {
			f(&l.Items[i])
		}
	case *jetonv1alpha1.PublicClientList:
		for i := range l.Items {
			f(&l.Items[i])
		}
	default:
		return fmt.Errorf("unexpected list %T", list)
	}
	return nil
}

// request sets the requested-at annotation of k/name and, with --wait, waits until the
// status records it and prints the outcome.
func (o *options) request(ctx context.Context, k jetonKind, name string, ro *requestOptions) error {
	s, err := o.session()
	if err != nil {
		return err
	}
	obj, err := s.find(ctx, k, name)
	if err != nil {
		return err
	}
	ref := cli.Ref(obj)
	if obj.GetDeletionTimestamp() != nil {
		return fmt.Errorf("%s is being deleted: the operator handles no request for it", ref)
	}
	// The wall clock, not o.now: every request must be a new value. Nanoseconds, so two
	// requests in a row differ.
	stamp := time.Now().UTC().Format(time.RFC3339Nano)
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, jetonv1alpha1.AnnotationRequestedAt, stamp)
	if err := s.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return s.explain(err, jetonAccess("patch", k.resource, obj.GetNamespace()))
	}
	if !ro.wait {
		fmt.Fprintf(o.streams.Out, "%s: requested at %s (annotation %s); `kubectl get` it to see status.lastHandledRequestedAt.\n",
			ref, stamp, jetonv1alpha1.AnnotationRequestedAt)
		return nil
	}
	start := time.Now()
	got, err := s.waitHandled(ctx, obj, stamp, ro.timeout, newSpinner(o.streams.ErrOut, "waiting for the operator to handle the request for "+ref))
	if err != nil {
		return err
	}
	cli.WriteOutcome(o.streams.Out, got, time.Since(start), o.now())
	if cli.OutcomeNeedsAction(got) {
		return exitStatus(exitNeedsAction)
	}
	return nil
}

// waitHandled polls obj until its status records request, it goes away, or timeout passes.
func (s *session) waitHandled(ctx context.Context, obj client.Object, request string, timeout time.Duration, sp *spinner) (client.Object, error) {
	defer sp.stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	key := client.ObjectKeyFromObject(obj)
	ref := cli.Ref(obj)
	for {
		// Each read has its own deadline: the wait's would fail the last read with a
		// client-side error instead of the timeout it is.
		getCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.Get(getCtx, key, obj)
		cancel()
		switch {
		case apierrors.IsNotFound(err):
			return nil, fmt.Errorf("%s was deleted while waiting", ref)
		case err != nil && ctx.Err() == nil:
			return nil, s.explain(err, jetonAccess("get", resourceOf(obj), key.Namespace))
		case err == nil && cli.Handled(obj) == request:
			return obj, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("interrupted: the request for %s stays recorded and the operator handles it anyway", ref)
		case <-deadline.C:
			return nil, notHandled(obj, ref, timeout)
		case <-tick.C:
			sp.tick()
		}
	}
}

func resourceOf(obj client.Object) string {
	for _, k := range jetonKinds {
		if k.kind == cli.KindOf(obj) {
			return k.resource
		}
	}
	return "objects"
}

// notHandled explains a timeout: a probe held back by the gate, or an operator not running.
func notHandled(obj client.Object, ref string, timeout time.Duration) error {
	if tt, ok := obj.(*jetonv1alpha1.TechnicalToken); ok && tt.Status.NextProbeTime != nil && tt.Status.NextProbeTime.After(time.Now()) {
		return fmt.Errorf("%s was not probed within %s: the probe gate holds it until %s (the API asked to back off: Retry-After, or a backoff after a 429; or the token was probed less than 30s before the request). The request stays: the probe is sent then",
			ref, timeout, tt.Status.NextProbeTime.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("the operator did not handle the request for %s within %s: is it running (`kubectl get pods -n jeton-system`; `make dev` runs it locally)? If it is, it may be failing on this resource: see `kubectl describe` of it and the operator's logs. The request stays: it is handled when the operator gets to it", ref, timeout)
}

// spinner shows that the plugin is waiting, on a terminal only (not in CI logs).
type spinner struct {
	w     io.Writer
	msg   string
	frame int
	on    bool
}

func newSpinner(w io.Writer, msg string) *spinner {
	f, ok := w.(*os.File)
	return &spinner{w: w, msg: msg, on: ok && term.IsTerminal(int(f.Fd()))}
}

func (s *spinner) tick() {
	if !s.on {
		return
	}
	const frames = `|/-\`
	fmt.Fprintf(s.w, "\r%c %s", frames[s.frame%len(frames)], s.msg)
	s.frame++
}

func (s *spinner) stop() {
	if s.on && s.frame > 0 {
		fmt.Fprint(s.w, "\r\033[K")
	}
}
