// Package controllers holds jeton's reconcilers, one per kind. They stay thin: the domain
// logic (token decoding, SIRET, desired objects, probe classification) lives in plain
// packages under internal/.
package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/metrics"
)

// Options configure every reconciler.
type Options struct {
	// CredentialsNamespaces are the namespaces where Habilitations and TechnicalTokens are
	// honoured. Elsewhere they are Stalled with NamespaceNotAllowed.
	CredentialsNamespaces []string
	// MaxConcurrentReconciles bounds the workers of each controller.
	MaxConcurrentReconciles int
	// ProbeInterval, when set, replaces the spec.interval of every TechnicalToken. Tests use
	// it to probe faster than the CRD's 30s minimum; leave it zero in production.
	ProbeInterval time.Duration
}

// IsCredentialsNamespace reports whether ns is one of the credentials namespaces.
func (o Options) IsCredentialsNamespace(ns string) bool {
	return slices.Contains(o.CredentialsNamespaces, ns)
}

// CacheOptions restrict what the manager's cache holds, so that memory grows with the
// objects jeton manages and not with the rest of the cluster:
//   - Secrets: every Secret of the credentials namespaces (the token sources), and elsewhere
//     only the Secrets jeton manages (labelled app.kubernetes.io/managed-by=jeton);
//   - Namespaces: only client namespaces (labelled jeton.dev/client); others are read
//     straight from the API server when a client claims them;
//   - NetworkPolicies: only those jeton manages.
//
// Workloads (Deployments, StatefulSets, DaemonSets) are not cached at all: they are listed
// from the API server, in one client namespace, only when a token rotates.
func CacheOptions(opts Options) cache.Options {
	managed := labels.SelectorFromSet(labels.Set{jetonv1alpha1.LabelManagedBy: jetonv1alpha1.ManagedByValue})
	clientNamespaces, _ := labels.NewRequirement(jetonv1alpha1.LabelClient, selection.Exists, nil)

	secretNamespaces := map[string]cache.Config{cache.AllNamespaces: {LabelSelector: managed}}
	for _, ns := range opts.CredentialsNamespaces {
		secretNamespaces[ns] = cache.Config{}
	}
	return cache.Options{
		// Managed fields are often larger than the objects themselves and jeton never reads them.
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:              {Namespaces: secretNamespaces},
			&corev1.Namespace{}:           {Label: labels.NewSelector().Add(*clientNamespaces)},
			&networkingv1.NetworkPolicy{}: {Label: managed},
		},
	}
}

// Setup registers the field indexes, every reconciler and the metrics collector with the manager.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if opts.MaxConcurrentReconciles < 1 {
		opts.MaxConcurrentReconciles = 1
	}
	if err := registerIndexes(ctx, mgr.GetFieldIndexer(), opts); err != nil {
		return err
	}
	if err := metrics.Register(ctrlmetrics.Registry, mgr.GetCache()); err != nil {
		return err
	}
	// Reconcilers and the metrics collector are registered below as they land.
	if err := setupPublicClientReconciler(ctx, mgr, opts); err != nil {
		return fmt.Errorf("setting up the PublicClient reconciler: %w", err)
	}
	if err := setupHabilitationReconciler(mgr, opts); err != nil {
		return fmt.Errorf("setting up the Habilitation reconciler: %w", err)
	}
	if err := setupTechnicalTokenReconciler(mgr, opts); err != nil {
		return fmt.Errorf("setting up the TechnicalToken reconciler: %w", err)
	}
	return nil
}
