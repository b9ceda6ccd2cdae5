package main

import (
	"context"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// Completion lists names from the cluster; any error just means no suggestion. Secrets
// are listed as metadata only: completing a name never fetches a token.

const noFiles = cobra.ShellCompDirectiveNoFileComp

func (o *options) completeNamespaces(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	s, err := o.session()
	if err != nil {
		return nil, noFiles
	}
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
	if err := s.List(cmd.Context(), list); err != nil {
		return nil, noFiles
	}
	return names(list.Items, false), noFiles
}

// completeNames completes the names of kind k: in -n's namespace, or namespace-qualified
// hints across namespaces.
func (o *options) completeNames(ctx context.Context, k jetonKind) ([]string, cobra.ShellCompDirective) {
	s, err := o.session()
	if err != nil {
		return nil, noFiles
	}
	ns := ""
	if k.namespaced && s.explicit {
		ns = s.namespace
	}
	list := k.newList()
	if err := s.List(ctx, list, client.InNamespace(ns)); err != nil {
		return nil, noFiles
	}
	var out []string
	_ = forEachItem(list, func(obj client.Object) {
		c := obj.GetName()
		if obj.GetNamespace() != "" {
			c += "\tnamespace " + obj.GetNamespace()
		}
		out = append(out, c)
	})
	return out, noFiles
}

// completeInjectedSecrets completes the Secrets jeton injected in the namespace.
func (o *options) completeInjectedSecrets(ctx context.Context) ([]string, cobra.ShellCompDirective) {
	return o.secretNames(ctx, client.MatchingLabels{jetonv1alpha1.LabelManagedBy: jetonv1alpha1.ManagedByValue})
}

func (o *options) completeSecrets(ctx context.Context) ([]string, cobra.ShellCompDirective) {
	return o.secretNames(ctx)
}

func (o *options) secretNames(ctx context.Context, opts ...client.ListOption) ([]string, cobra.ShellCompDirective) {
	s, err := o.session()
	if err != nil {
		return nil, noFiles
	}
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
	if err := s.List(ctx, list, append(opts, client.InNamespace(s.namespace))...); err != nil {
		return nil, noFiles
	}
	return names(list.Items, false), noFiles
}

func names(items []metav1.PartialObjectMetadata, qualified bool) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		if qualified && it.Namespace != "" {
			out = append(out, it.Namespace+"/"+it.Name)
			continue
		}
		out = append(out, it.Name)
	}
	return out
}
