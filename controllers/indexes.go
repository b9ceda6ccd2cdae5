package controllers

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/token"
)

// Field indexes of the reconcilers, registered by registerIndexes, which Setup calls before
// it sets up any reconciler.
const (
	// IndexHabilitationClient indexes Habilitations by spec.clientRef.name.
	IndexHabilitationClient = "spec.clientRef.name"
	// IndexTokenSecret indexes Habilitations and TechnicalTokens by spec.tokenSecretRef.name,
	// so a change of a source Secret finds the resources that read it.
	IndexTokenSecret = "spec.tokenSecretRef.name"
	// IndexTokenFingerprint indexes Habilitations and TechnicalTokens by status.tokenFingerprint,
	// so "one token, one client" is checked without listing everything.
	IndexTokenFingerprint = "status.tokenFingerprint"
	// IndexSecretTokenFingerprints indexes the Secrets of the credentials namespaces by the
	// fingerprints of the tokens their keys hold, so "one token, one client" finds the
	// Secrets holding a token with one lookup instead of reading every source Secret.
	IndexSecretTokenFingerprints = "jeton.dev/token-fingerprints"
	// IndexInjectedFor indexes the Secrets labelled as injected by jeton by the Habilitation
	// they name ("namespace/name"), so a Habilitation finds its injected Secrets with one
	// lookup: a label selector over the cache scans every managed Secret, which made each
	// pass O(N) and a fleet's convergence O(N²).
	IndexInjectedFor = "jeton.dev/injected-for"
	// IndexPublicClientNamespace indexes PublicClients by target namespace, so that the clients
	// claiming one namespace are found without listing them all.
	IndexPublicClientNamespace = "publicclient.targetNamespace"
)

func registerIndexes(ctx context.Context, indexer client.FieldIndexer, opts Options) error {
	indexes := []struct {
		obj     client.Object
		field   string
		extract client.IndexerFunc
	}{
		{&jetonv1alpha1.Habilitation{}, IndexHabilitationClient, func(o client.Object) []string {
			return []string{o.(*jetonv1alpha1.Habilitation).Spec.ClientRef.Name}
		}},
		{&jetonv1alpha1.Habilitation{}, IndexTokenSecret, func(o client.Object) []string {
			return []string{o.(*jetonv1alpha1.Habilitation).Spec.TokenSecretRef.Name}
		}},
		{&jetonv1alpha1.TechnicalToken{}, IndexTokenSecret, func(o client.Object) []string {
			return []string{o.(*jetonv1alpha1.TechnicalToken).Spec.TokenSecretRef.Name}
		}},
		{&jetonv1alpha1.Habilitation{}, IndexTokenFingerprint, func(o client.Object) []string {
			return nonEmpty(o.(*jetonv1alpha1.Habilitation).Status.TokenFingerprint)
		}},
		{&jetonv1alpha1.TechnicalToken{}, IndexTokenFingerprint, func(o client.Object) []string {
			return nonEmpty(o.(*jetonv1alpha1.TechnicalToken).Status.TokenFingerprint)
		}},
		{&corev1.Secret{}, IndexSecretTokenFingerprints, func(o client.Object) []string {
			if !opts.IsCredentialsNamespace(o.GetNamespace()) {
				return nil // injected copies in client namespaces are not bindings
			}
			return secretTokenFingerprints(o.(*corev1.Secret))
		}},
		{&corev1.Secret{}, IndexInjectedFor, func(o client.Object) []string {
			return nonEmpty(injectedFor(o))
		}},
		{&jetonv1alpha1.PublicClient{}, IndexPublicClientNamespace, func(o client.Object) []string {
			return []string{o.(*jetonv1alpha1.PublicClient).TargetNamespace()}
		}},
	}
	for _, ix := range indexes {
		if err := indexer.IndexField(ctx, ix.obj, ix.field, ix.extract); err != nil {
			return err
		}
	}
	return nil
}

// secretTokenFingerprints fingerprints every value of the Secret that normalizes to a token.
// Token-sized values only: Normalize rejects larger ones (certificates, kubeconfigs) before
// hashing.
func secretTokenFingerprints(s *corev1.Secret) []string {
	var fps []string
	for _, v := range s.Data {
		if tok, err := token.Normalize(v); err == nil {
			fps = append(fps, token.Fingerprint(tok))
		}
	}
	slices.Sort(fps)
	return slices.Compact(fps)
}

// injectedFor is the "namespace/name" of the Habilitation an injected Secret's labels
// name, or "" for a Secret not labelled as injected by jeton.
func injectedFor(o client.Object) string {
	l := o.GetLabels()
	ns, name := l[jetonv1alpha1.LabelHabilitationNamespace], l[jetonv1alpha1.LabelHabilitation]
	if l[jetonv1alpha1.LabelManagedBy] != jetonv1alpha1.ManagedByValue || ns == "" || name == "" {
		return ""
	}
	return ns + "/" + name
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}
