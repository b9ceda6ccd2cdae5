package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/isolation"
)

// claimNamespace decides who owns the client namespace, and creates it when it is free and
// this client is its first claimant. Create, not apply: should someone create the namespace
// meanwhile, it fails instead of labelling their namespace as ours. A client namespace is
// read from the cache; a namespace the cache does not hold is first tried with Create, so a
// new client costs one request, and read from the API server only if it exists.
func (r *PublicClientReconciler) claimNamespace(ctx context.Context, pc *jetonv1alpha1.PublicClient, claimants []jetonv1alpha1.PublicClient, key []byte) (namespaceClaim, error) {
	target := pc.TargetNamespace()
	ns := &corev1.Namespace{}
	err := r.Get(ctx, client.ObjectKey{Name: target}, ns)
	if err == nil {
		return namespaceClaim{ns: ns, decision: isolation.Decide(pc, ns, claimants, key)}, nil
	}
	if !apierrors.IsNotFound(err) {
		return namespaceClaim{}, err
	}
	if d := isolation.Decide(pc, nil, claimants, key); d.Verdict == isolation.Create {
		created := &corev1.Namespace{}
		created.Name = target
		created.Labels = isolation.NamespaceLabels(pc.Name, pc.Spec.Isolation.PodSecurity)
		// The proof that jeton created it for this client: should this pass's status write
		// be lost, the next pass still knows the namespace is this client's.
		created.Annotations = map[string]string{jetonv1alpha1.AnnotationOwnerProof: isolation.CreatedProof(key, target, pc.Name, pc.UID, pc.Status.NamespaceUID)}
		err := r.Create(ctx, created, publicClientFieldOwner)
		if err == nil {
			d.Origin = jetonv1alpha1.NamespaceCreated
			return namespaceClaim{ns: created, decision: d, created: true}, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return namespaceClaim{}, fmt.Errorf("creating namespace %s: %w", target, err)
		}
	}
	existing, err := r.getNamespace(ctx, target)
	if err != nil {
		return namespaceClaim{}, err
	}
	return namespaceClaim{ns: existing, decision: isolation.Decide(pc, existing, claimants, key)}, nil
}

// getNamespace reads a namespace; nil when it does not exist. Client namespaces come from
// the cache; any other namespace (the cache holds only those labelled jeton.dev/client) is
// read from the API server, so an unlabelled namespace is never mistaken for a free name.
func (r *PublicClientReconciler) getNamespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{}
	if err := r.Get(ctx, client.ObjectKey{Name: name}, ns); err == nil {
		return ns, nil
	}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return ns, nil
}

// labelNamespace applies jeton's labels to the client's namespace ns, with server-side
// apply of jeton's labels only: labels others set are left alone. Only when one differs: a
// no-op apply is still a write request, and a resync sends none.
func (r *PublicClientReconciler) labelNamespace(ctx context.Context, pc *jetonv1alpha1.PublicClient, ns *corev1.Namespace) error {
	level := pc.Spec.Isolation.PodSecurity
	if isolation.UpToDate(ns, pc.Name, level) {
		return nil
	}
	return r.Apply(ctx, isolation.Namespace(ns.Name, pc.Name, level), publicClientFieldOwner, client.ForceOwnership)
}

// syncNetworkPolicy applies the isolation policy, or removes it when isolation is disabled.
func (r *PublicClientReconciler) syncNetworkPolicy(ctx context.Context, pc *jetonv1alpha1.PublicClient) error {
	target := pc.TargetNamespace()
	if isolation.NetworkPolicyEnabled(pc.Spec.Isolation.NetworkPolicy) {
		// The cache holds jeton's policies: apply only when the policy is missing or differs.
		np := &networkingv1.NetworkPolicy{}
		err := r.Get(ctx, client.ObjectKey{Namespace: target, Name: isolation.NetworkPolicyName}, np)
		if err == nil && isolation.NetworkPolicyUpToDate(np, pc.Name) {
			return nil
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		return r.Apply(ctx, isolation.NetworkPolicy(target, pc.Name), publicClientFieldOwner, client.ForceOwnership)
	}
	// The cache holds jeton's policies, so a disabled client costs no API call per reconcile.
	return r.deleteNetworkPolicy(ctx, r.Client, pc)
}

// deleteNetworkPolicy deletes the isolation policy of pc's namespace if it is pc's.
func (r *PublicClientReconciler) deleteNetworkPolicy(ctx context.Context, reader client.Reader, pc *jetonv1alpha1.PublicClient) error {
	np := &networkingv1.NetworkPolicy{}
	err := reader.Get(ctx, client.ObjectKey{Namespace: pc.TargetNamespace(), Name: isolation.NetworkPolicyName}, np)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if np.Labels[jetonv1alpha1.LabelClient] != pc.Name {
		return nil // another client's, or not jeton's at all
	}
	return client.IgnoreNotFound(r.Delete(ctx, np, client.Preconditions{UID: &np.UID}))
}
