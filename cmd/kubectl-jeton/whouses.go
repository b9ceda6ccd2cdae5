package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spf13/cobra"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/cli"
)

// workloadUse is one workload reading the Secret.
type workloadUse struct {
	Kind       string          `json:"kind"`
	Name       string          `json:"name"`
	References []cli.Reference `json:"references"`
	// Restarted says whether jeton restarts it when the token rotates.
	Restarted bool `json:"restartedOnRotation"`
}

// secretOrigin is where an injected Secret comes from, as jeton's own records say.
type secretOrigin struct {
	Habilitation      string `json:"habilitation"`
	Client            string `json:"client"`
	ClientDisplayName string `json:"clientDisplayName,omitempty"`
	SIRET             string `json:"siret,omitempty"`
	API               string `json:"api,omitempty"`
	Environment       string `json:"environment,omitempty"`
	Fingerprint       string `json:"fingerprint,omitempty"`
	Ready             string `json:"ready,omitempty"`
	Reason            string `json:"reason,omitempty"`
	// Verified: the Habilitation's status records this very Secret as the one it injected.
	// Labels alone prove nothing: anyone who can create a Secret can copy them.
	Verified bool   `json:"verified"`
	Note     string `json:"note,omitempty"`
	// restarts: the Habilitation restarts workloads on rotation (spec.restartWorkloads).
	restarts bool
}

type whoUses struct {
	Secret    string        `json:"secret"`
	ManagedBy bool          `json:"managedByJeton"`
	Origin    *secretOrigin `json:"origin,omitempty"`
	Workloads []workloadUse `json:"workloads"`
	// Incomplete lists what could not be read (no access): the answer may miss workloads.
	Incomplete []string `json:"incomplete,omitempty"`
}

func newWhoUsesCommand(o *options) *cobra.Command {
	format := cli.FormatTable
	cmd := &cobra.Command{
		Use:   "who-uses SECRET",
		Short: "For an injected Secret: its Habilitation and client, and the workloads that read it",
		Long: `For a Secret of a client namespace: the Habilitation and client jeton injected it for
(checked against the Habilitation's status, not only the labels), and the workloads of the
namespace that read it through env, envFrom, secret volumes or projected volumes:
Deployments, StatefulSets, DaemonSets (jeton restarts these on rotation), CronJobs, Jobs
and bare Pods. Only the Secret's metadata is read, never its data.`,
		Example: `  kubectl jeton who-uses -n trifouilly api-entreprise`,
		Args:    cobra.ExactArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return o.completeInjectedSecrets(cmd.Context())
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != cli.FormatTable && format != cli.FormatJSON {
				return fmt.Errorf("unknown output format %q: use table or json", format)
			}
			s, err := o.session()
			if err != nil {
				return err
			}
			res, err := s.whoUses(cmd.Context(), s.namespace, args[0])
			if err != nil {
				return err
			}
			if format == cli.FormatJSON {
				enc := json.NewEncoder(o.streams.Out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else {
				writeWhoUses(o.streams.Out, res, s.namespace)
			}
			if len(res.Incomplete) > 0 {
				for _, w := range res.Incomplete {
					fmt.Fprintf(o.streams.ErrOut, "warning: %s\n", w)
				}
				return exitStatus(exitError)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", format, "output format: table or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{cli.FormatTable, cli.FormatJSON}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (s *session) whoUses(ctx context.Context, namespace, name string) (*whoUses, error) {
	// Metadata only: the plugin never even receives the token.
	md := &metav1.PartialObjectMetadata{}
	md.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, md); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("there is no Secret %s/%s: the injected Secrets are listed by `kubectl get secrets -A -l %s=%s` (their namespace is the client's)",
				namespace, name, jetonv1alpha1.LabelManagedBy, jetonv1alpha1.ManagedByValue)
		}
		return nil, s.explain(err, access{verb: "get", resource: "secrets", namespace: namespace})
	}
	res := &whoUses{Secret: namespace + "/" + name, Workloads: []workloadUse{}}
	l := md.Labels
	res.ManagedBy = l[jetonv1alpha1.LabelManagedBy] == jetonv1alpha1.ManagedByValue && l[jetonv1alpha1.LabelHabilitation] != ""
	if res.ManagedBy {
		res.Origin = s.origin(ctx, namespace, name, l)
	}
	uses, incomplete := s.workloadsReading(ctx, namespace, name)
	for i := range uses {
		// Only jeton's own Secret, for a Habilitation that restarts: the others, nobody restarts.
		uses[i].Restarted = uses[i].Restarted && res.Origin != nil && res.Origin.Verified && res.Origin.restarts
	}
	res.Workloads = append(res.Workloads, uses...)
	res.Incomplete = incomplete
	return res, nil
}

// origin reads the Habilitation and client the Secret's labels name, and checks that the
// Habilitation's status records this Secret.
func (s *session) origin(ctx context.Context, namespace, name string, l map[string]string) *secretOrigin {
	key := client.ObjectKey{Namespace: l[jetonv1alpha1.LabelHabilitationNamespace], Name: l[jetonv1alpha1.LabelHabilitation]}
	o := &secretOrigin{Habilitation: key.Namespace + "/" + key.Name, Client: l[jetonv1alpha1.LabelClient]}
	h := &jetonv1alpha1.Habilitation{}
	if err := s.Get(ctx, key, h); err != nil {
		if apierrors.IsNotFound(err) {
			o.Note = fmt.Sprintf("its labels name Habilitation %s, which does not exist: not a Secret jeton keeps (jeton removes the Secrets of deleted Habilitations)", o.Habilitation)
		} else {
			o.Note = "cannot read its Habilitation: " + s.explain(err, jetonAccess("get", "habilitations", key.Namespace)).Error()
		}
		return o
	}
	o.Client, o.API, o.Environment, o.Fingerprint = h.Spec.ClientRef.Name, string(h.Spec.API), string(h.Spec.Environment), h.Status.TokenFingerprint
	o.restarts = h.Spec.RestartWorkloads == nil || *h.Spec.RestartWorkloads
	if c := meta.FindStatusCondition(h.Status.Conditions, jetonv1alpha1.ConditionReady); c != nil {
		o.Ready, o.Reason = string(c.Status), c.Reason
	}
	ts := h.Status.TargetSecret
	o.Verified = ts != nil && ts.Namespace == namespace && ts.Name == name
	if !o.Verified {
		recorded := "none"
		if ts != nil {
			recorded = ts.Namespace + "/" + ts.Name
		}
		o.Note = fmt.Sprintf("Habilitation %s records Secret %s as the one it injected, not this one: this Secret carries jeton's labels but is not (or no longer) jeton's", o.Habilitation, recorded)
	}
	pc := &jetonv1alpha1.PublicClient{}
	if err := s.Get(ctx, client.ObjectKey{Name: h.Spec.ClientRef.Name}, pc); err == nil {
		o.ClientDisplayName, o.SIRET = pc.Spec.DisplayName, pc.Spec.SIRET
	}
	return o
}

// workloadsReading lists the workloads of namespace whose pod spec reads Secret name. A
// kind it may not list is reported in incomplete, and the others still listed.
func (s *session) workloadsReading(ctx context.Context, namespace, name string) (uses []workloadUse, incomplete []string) {
	type kind struct {
		name, resource, group string
		restarted             bool
		newList               func() client.ObjectList
		specs                 func(client.ObjectList) []namedSpec
	}
	kinds := []kind{
		{"Deployment", "deployments", "apps", true, func() client.ObjectList { return &appsv1.DeploymentList{} }, func(l client.ObjectList) (out []namedSpec) {
			for i := range l.(*appsv1.DeploymentList).Items {
				d := &l.(*appsv1.DeploymentList).Items[i]
				out = append(out, namedSpec{d.Name, &d.Spec.Template.Spec})
			}
			return out
		}},
		{"StatefulSet", "statefulsets", "apps", true, func() client.ObjectList { return &appsv1.StatefulSetList{} }, func(l client.ObjectList) (out []namedSpec) {
			for i := range l.(*appsv1.StatefulSetList).Items {
				d := &l.(*appsv1.StatefulSetList).Items[i]
				out = append(out, namedSpec{d.Name, &d.Spec.Template.Spec})
			}
			return out
		}},
		{"DaemonSet", "daemonsets", "apps", true, func() client.ObjectList { return &appsv1.DaemonSetList{} }, func(l client.ObjectList) (out []namedSpec) {
			for i := range l.(*appsv1.DaemonSetList).Items {
				d := &l.(*appsv1.DaemonSetList).Items[i]
				out = append(out, namedSpec{d.Name, &d.Spec.Template.Spec})
			}
			return out
		}},
		{"CronJob", "cronjobs", "batch", false, func() client.ObjectList { return &batchv1.CronJobList{} }, func(l client.ObjectList) (out []namedSpec) {
			for i := range l.(*batchv1.CronJobList).Items {
				d := &l.(*batchv1.CronJobList).Items[i]
				out = append(out, namedSpec{d.Name, &d.Spec.JobTemplate.Spec.Template.Spec})
			}
			return out
		}},
		{"Job", "jobs", "batch", false, func() client.ObjectList { return &batchv1.JobList{} }, func(l client.ObjectList) (out []namedSpec) {
			for i := range l.(*batchv1.JobList).Items {
				d := &l.(*batchv1.JobList).Items[i]
				if len(d.OwnerReferences) == 0 { // a CronJob's runs are its CronJob's
					out = append(out, namedSpec{d.Name, &d.Spec.Template.Spec})
				}
			}
			return out
		}},
		{"Pod", "pods", "", false, func() client.ObjectList { return &corev1.PodList{} }, func(l client.ObjectList) (out []namedSpec) {
			for i := range l.(*corev1.PodList).Items {
				d := &l.(*corev1.PodList).Items[i]
				if len(d.OwnerReferences) == 0 { // the others are their controller's
					out = append(out, namedSpec{d.Name, &d.Spec})
				}
			}
			return out
		}},
	}
	for _, k := range kinds {
		for cont := ""; ; {
			list := k.newList()
			if err := s.List(ctx, list, client.InNamespace(namespace), client.Limit(500), client.Continue(cont)); err != nil {
				incomplete = append(incomplete, fmt.Sprintf("%ss not checked: %v", k.name,
					s.explain(err, access{verb: "list", resource: k.resource, group: k.group, namespace: namespace})))
				break
			}
			for _, ns := range k.specs(list) {
				if refs := cli.SecretReferences(ns.spec, name); len(refs) > 0 {
					uses = append(uses, workloadUse{Kind: k.name, Name: ns.name, References: refs, Restarted: k.restarted})
				}
			}
			if cont = list.(metav1.ListInterface).GetContinue(); cont == "" {
				break
			}
		}
	}
	return uses, incomplete
}

type namedSpec struct {
	name string
	spec *corev1.PodSpec
}

func writeWhoUses(w io.Writer, r *whoUses, namespace string) {
	if o := r.Origin; o == nil {
		fmt.Fprintf(w, "Secret %s is not injected by jeton (no %s=%s and %s labels).\n", r.Secret,
			jetonv1alpha1.LabelManagedBy, jetonv1alpha1.ManagedByValue, jetonv1alpha1.LabelHabilitation)
	} else {
		if o.Verified {
			fmt.Fprintf(w, "Secret %s is injected by jeton:\n", r.Secret)
		} else {
			fmt.Fprintf(w, "Secret %s carries jeton's labels, but jeton's records do not name it:\n", r.Secret)
		}
		row := func(label, value string) {
			if value != "" {
				fmt.Fprintf(w, "  %-14s %s\n", label+":", value)
			}
		}
		hab := o.Habilitation
		if o.Ready != "" {
			hab += fmt.Sprintf(" (Ready %s, %s)", o.Ready, o.Reason)
		}
		row("Habilitation", hab)
		client := o.Client
		if o.ClientDisplayName != "" {
			client += fmt.Sprintf(" (%s, SIRET %s)", o.ClientDisplayName, o.SIRET)
		}
		row("Client", client)
		if o.API != "" {
			row("API", o.API+", "+o.Environment)
		}
		row("Fingerprint", o.Fingerprint)
		if o.Note != "" {
			row("WARNING", o.Note)
		}
	}
	fmt.Fprintln(w)
	if len(r.Workloads) == 0 {
		fmt.Fprintf(w, "No workload in namespace %s reads it.\n", namespace)
		return
	}
	fmt.Fprintf(w, "%d workload(s) in namespace %s read it:\n", len(r.Workloads), namespace)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tCONTAINER\tVIA\tHOW\tRESTARTED ON ROTATION")
	for _, u := range r.Workloads {
		restarted := "no: it reads a new value when it next starts"
		if u.Restarted {
			restarted = "yes"
		}
		for _, ref := range u.References {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Kind, u.Name, orDash(ref.Container), ref.Via, ref.Detail, restarted)
		}
	}
	_ = tw.Flush()
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
