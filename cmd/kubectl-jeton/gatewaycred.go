package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/cli"
)

func newRotateGatewayCredentialCommand(o *options) *cobra.Command {
	ro := &requestOptions{}
	cmd := &cobra.Command{
		Use:   "rotate-gateway-credential HABILITATION",
		Short: "Mint a new gateway credential for a Habilitation delivered through the gateway; the old one stops working",
		Long: `Rotate the gateway credential of a Habilitation whose delivery is Gateway (status.delivery):
the plugin sets the annotation jeton.dev/gateway-credential-rotation to the current time
(RFC 3339, UTC, nanoseconds) with a merge patch. The credential is bound to that value, so
the gateway refuses the old credential at once; the operator writes the new one into the
client's Secret (TOKEN) and restarts the workloads using it (unless spec.restartWorkloads
is false). The API token is not touched: rotate it by putting a new one in the token
Secret, which in Gateway delivery changes nothing in the client namespace.

Refused for a Habilitation delivered Direct: its Secret holds the token itself. Without
-n, the Habilitation is looked for in every namespace. Needs the RBAC verb patch on
habilitations (ClusterRole jeton-editor-role).`,
		Example: `  kubectl jeton rotate-gateway-credential trifouilly-api-entreprise
  kubectl jeton rotate-gateway-credential -n jeton-system trifouilly-api-particulier --wait=false`,
		Args: cobra.ExactArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return o.completeNames(cmd.Context(), jetonKinds[0])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.rotateGatewayCredential(cmd.Context(), args[0], ro)
		},
	}
	cmd.Flags().BoolVar(&ro.wait, "wait", true, "wait until the operator has delivered the new credential")
	cmd.Flags().DurationVar(&ro.timeout, "timeout", time.Minute, "how long to wait")
	return cmd
}

// rotateGatewayCredential sets the rotation annotation of Habilitation name and, with
// --wait, waits until status records a new delivered fingerprint for it.
func (o *options) rotateGatewayCredential(ctx context.Context, name string, ro *requestOptions) error {
	s, err := o.session()
	if err != nil {
		return err
	}
	obj, err := s.find(ctx, jetonKinds[0], name)
	if err != nil {
		return err
	}
	h := obj.(*jetonv1alpha1.Habilitation)
	if err := cli.GatewayRotationRefused(h); err != nil {
		return err
	}
	before := h.Status.DeliveredFingerprint
	// The wall clock, not o.now: every rotation must be a new value.
	stamp := cli.GatewayRotationStamp(time.Now())
	if err := s.Patch(ctx, h, client.RawPatch(types.MergePatchType, cli.GatewayRotationPatch(stamp))); err != nil {
		return s.explain(err, jetonAccess("patch", "habilitations", h.Namespace))
	}
	ref := cli.Ref(h)
	fmt.Fprintf(o.streams.Out, "%s: gateway credential rotation requested at %s (annotation %s); the previous credential no longer works.\n",
		ref, stamp, jetonv1alpha1.AnnotationGatewayCredentialRotation)
	if !ro.wait {
		return nil
	}
	got, err := s.waitDelivered(ctx, h, before, ro.timeout, newSpinner(o.streams.ErrOut, "waiting for the operator to deliver the new credential of "+ref))
	if err != nil {
		return err
	}
	target := "its Secret"
	if t := got.Status.TargetSecret; t != nil {
		target = "Secret " + t.Namespace + "/" + t.Name
	}
	fmt.Fprintf(o.streams.Out, "%s: new gateway credential (fingerprint %s) delivered to %s; the workloads using it restart (unless spec.restartWorkloads is false).\n",
		ref, got.Status.DeliveredFingerprint, target)
	return nil
}

// waitDelivered polls h until its status records a delivered fingerprint other than
// before, for the current generation, it goes away, or timeout passes.
func (s *session) waitDelivered(ctx context.Context, h *jetonv1alpha1.Habilitation, before string, timeout time.Duration, sp *spinner) (*jetonv1alpha1.Habilitation, error) {
	defer sp.stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	key := client.ObjectKeyFromObject(h)
	ref := cli.Ref(h)
	got := &jetonv1alpha1.Habilitation{}
	for {
		getCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.Get(getCtx, key, got)
		cancel()
		switch {
		case apierrors.IsNotFound(err):
			return nil, fmt.Errorf("%s was deleted while waiting", ref)
		case err != nil && ctx.Err() == nil:
			return nil, s.explain(err, jetonAccess("get", "habilitations", key.Namespace))
		case err == nil && got.Status.DeliveredFingerprint != "" && got.Status.DeliveredFingerprint != before:
			return got, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("interrupted: the rotation of %s stays recorded and the operator delivers the new credential anyway", ref)
		case <-deadline.C:
			return nil, fmt.Errorf("the operator did not deliver the new gateway credential of %s within %s (its restarts wait for the client's other rotations, up to a minute): see `kubectl describe` of it and the operator's logs. The rotation stays: the old credential already no longer works", ref, timeout)
		case <-tick.C:
			sp.tick()
		}
	}
}
