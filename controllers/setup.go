// Package controllers holds jeton's reconcilers, one per kind. They stay thin: the domain
// logic (token decoding, SIRET, desired objects, probe classification) lives in plain
// packages under internal/.
package controllers

import (
	ctrl "sigs.k8s.io/controller-runtime"
)

// Options configure every reconciler.
type Options struct {
	// CredentialsNamespaces are the namespaces where Habilitations and TechnicalTokens are
	// honoured. Elsewhere they are Stalled with NamespaceNotAllowed.
	CredentialsNamespaces []string
	// MaxConcurrentReconciles bounds the workers of each controller.
	MaxConcurrentReconciles int
}

// IsCredentialsNamespace reports whether ns is one of the credentials namespaces.
func (o Options) IsCredentialsNamespace(ns string) bool {
	for _, n := range o.CredentialsNamespaces {
		if n == ns {
			return true
		}
	}
	return false
}

// Setup registers every reconciler and the metrics collector with the manager.
func Setup(mgr ctrl.Manager, opts Options) error {
	if opts.MaxConcurrentReconciles < 1 {
		opts.MaxConcurrentReconciles = 1
	}
	// Reconcilers are registered here as they land (PublicClient, Habilitation, TechnicalToken).
	return nil
}
