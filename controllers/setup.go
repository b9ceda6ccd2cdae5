// Package controllers holds jeton's reconcilers, one per kind. They stay thin: the domain
// logic (token decoding, SIRET, desired objects, probe classification) lives in plain
// packages under internal/.
package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/isolation"
	"github.com/jeton-dev/jeton/internal/metrics"
	"github.com/jeton-dev/jeton/internal/publicapi"
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
	// RequestFloor, when set, replaces probe.RequestFloor, the least time between a probe
	// and an on-demand one. In-process tests lower it; leave it zero in production.
	RequestFloor time.Duration
	// APIHostBudgetPerMinute is the rate budget per API host (requests per minute, all of
	// jeton's requests to that host together, whatever its spelling); 0 takes
	// budget.DefaultPerHostPerMinute (--api-host-budget-per-minute).
	APIHostBudgetPerMinute int
	// APIHosts says where tokens may go: the official hosts, and those of --allowed-api-hosts.
	APIHosts publicapi.HostPolicy
	// OperatorNamespace is the namespace jeton runs in; it is never a client namespace.
	OperatorNamespace string
	// ReservedNamespaces are namespaces that are never client namespaces, besides the
	// credentials namespaces, the operator's, default and kube-* (--reserved-namespaces).
	ReservedNamespaces []string
	// PodSecurityFloor is the most permissive Pod Security level a PublicClient may ask for
	// (--pod-security-floor); empty: none. Below it the client is Stalled
	// (PodSecurityBelowFloor) and its namespace's labels are left as they are.
	PodSecurityFloor jetonv1alpha1.PodSecurityLevel
	// DefaultDelivery is the delivery of Habilitations whose spec.delivery is empty
	// (--default-delivery); empty: Direct. A vendor moves every client to the gateway at once.
	DefaultDelivery jetonv1alpha1.Delivery
	// GatewayURL is what BASE_URL holds in Gateway delivery: the gateway's Service URL
	// (--gateway-url). Empty: no gateway, and Gateway delivery is GatewayNotConfigured.
	GatewayURL string
}

// IsCredentialsNamespace reports whether ns is one of the credentials namespaces.
func (o Options) IsCredentialsNamespace(ns string) bool {
	return slices.Contains(o.CredentialsNamespaces, ns)
}

// reservedBecause says why ns may never be a client namespace, or "" when it may: a
// client namespace receives tokens and is fenced, labelled and maybe deleted by jeton, so
// none of the cluster's own namespaces may ever be claimed as one.
func (o Options) reservedBecause(ns string) string {
	switch {
	case o.IsCredentialsNamespace(ns):
		return "it is a credentials namespace, where token Secrets are kept"
	case ns == o.OperatorNamespace:
		return "it is the operator's own namespace"
	case ns == "default" || strings.HasPrefix(ns, "kube-"):
		return "it is a namespace of Kubernetes itself"
	case slices.Contains(o.ReservedNamespaces, ns):
		return "it is listed in the operator's --reserved-namespaces flag"
	}
	return ""
}

// ownerKeyNamespace is where the owner-proof key Secret lives: the first credentials
// namespace, whose admins can already read every token.
func (o Options) ownerKeyNamespace() string {
	if len(o.CredentialsNamespaces) > 0 {
		return o.CredentialsNamespaces[0]
	}
	return o.OperatorNamespace
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
		DefaultTransform: stripUnread,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:              {Namespaces: secretNamespaces, Transform: slimSecrets(opts)},
			&corev1.Namespace{}:           {Label: labels.NewSelector().Add(*clientNamespaces), Transform: slimNamespaces},
			&networkingv1.NetworkPolicy{}: {Label: managed, Transform: slimNetworkPolicies},
		},
	}
}

// stripUnread drops from every cached object what jeton never reads and what often weighs
// more than the object: managed fields, and the copy of the whole object that client-side
// `kubectl apply` (and GitOps tools using it) keeps in an annotation.
func stripUnread(obj any) (any, error) {
	if o, ok := obj.(client.Object); ok {
		o.SetManagedFields(nil)
		if a := o.GetAnnotations(); a[corev1.LastAppliedConfigAnnotation] != "" {
			delete(a, corev1.LastAppliedConfigAnnotation)
		}
	}
	return obj, nil
}

// slimNamespaces keeps client namespaces in the slim form of isolation.SlimNamespace: one
// per client, so what others put on them must not weigh on jeton's memory.
func slimNamespaces(obj any) (any, error) {
	if ns, ok := obj.(*corev1.Namespace); ok {
		return isolation.SlimNamespace(ns), nil
	}
	return obj, nil
}

// slimNetworkPolicies keeps jeton's policies with their spec as a digest
// (isolation.SlimNetworkPolicy): jeton only compares it with the policy it applies.
func slimNetworkPolicies(obj any) (any, error) {
	if np, ok := obj.(*networkingv1.NetworkPolicy); ok {
		return isolation.SlimNetworkPolicy(np), nil
	}
	return obj, nil
}

// slimSecrets keeps the Secrets of the credentials namespaces whole (the token sources) and
// every other Secret in the digest form of injection.Slim. Anyone who can create a Secret
// anywhere can label it managed-by=jeton and so have the cache hold it: with this, such a
// Secret costs jeton a few hundred bytes whatever its size, not its data.
func slimSecrets(opts Options) toolscache.TransformFunc {
	return func(obj any) (any, error) {
		s, ok := obj.(*corev1.Secret)
		if !ok {
			return obj, nil
		}
		if opts.IsCredentialsNamespace(s.Namespace) {
			return stripUnread(s)
		}
		return injection.Slim(s), nil
	}
}

// Setup registers with the manager the field indexes (registerIndexes), the metrics
// collector, then the three reconcilers.
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
	key := &ownerKey{reader: mgr.GetAPIReader(), writer: mgr.GetClient(), namespace: opts.ownerKeyNamespace()}
	if opts.IsCredentialsNamespace(key.namespace) {
		// The cache watches every Secret of the credentials namespaces, the key's included.
		key.cache = mgr.GetClient()
	}
	writes := newOwnWrites()
	if err := setupPublicClientReconciler(mgr, opts, key, writes); err != nil {
		return fmt.Errorf("setting up the PublicClient reconciler: %w", err)
	}
	if err := setupHabilitationReconciler(mgr, opts, key, writes); err != nil {
		return fmt.Errorf("setting up the Habilitation reconciler: %w", err)
	}
	if err := setupTechnicalTokenReconciler(mgr, opts, writes); err != nil {
		return fmt.Errorf("setting up the TechnicalToken reconciler: %w", err)
	}
	return nil
}
