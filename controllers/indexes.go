package controllers

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
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
)

func registerIndexes(ctx context.Context, indexer client.FieldIndexer) error {
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
	}
	for _, ix := range indexes {
		if err := indexer.IndexField(ctx, ix.obj, ix.field, ix.extract); err != nil {
			return err
		}
	}
	return nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}
