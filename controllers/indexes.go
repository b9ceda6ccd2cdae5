package controllers

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/token"
)

// Field indexes shared by the reconcilers. They are registered once, in Setup.
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

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}
