// Package publicapi knows where the public APIs live.
package publicapi

import (
	"strings"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

var baseURLs = map[jetonv1alpha1.API]map[jetonv1alpha1.Environment]string{
	jetonv1alpha1.APIEntreprise: {
		jetonv1alpha1.EnvironmentProduction: "https://entreprise.api.gouv.fr",
		jetonv1alpha1.EnvironmentStaging:    "https://staging.entreprise.api.gouv.fr",
	},
	jetonv1alpha1.APIParticulier: {
		jetonv1alpha1.EnvironmentProduction: "https://particulier.api.gouv.fr",
		jetonv1alpha1.EnvironmentStaging:    "https://staging.particulier.api.gouv.fr",
	},
	// Démarches Numériques has no public staging instance: staging tokens are tokens of the
	// production instance (on a test démarche), so staging resolves to the production host.
	jetonv1alpha1.DemarchesNumeriques: {
		jetonv1alpha1.EnvironmentProduction: "https://demarche.numerique.gouv.fr",
		jetonv1alpha1.EnvironmentStaging:    "https://demarche.numerique.gouv.fr",
	},
}

// BaseURL is the API base URL for an environment, without a trailing slash:
//
//	APIEntreprise       production https://entreprise.api.gouv.fr, staging https://staging.entreprise.api.gouv.fr
//	APIParticulier      production https://particulier.api.gouv.fr, staging https://staging.particulier.api.gouv.fr
//	DemarchesNumeriques https://demarche.numerique.gouv.fr (no public staging: staging gives the same host)
//
// An empty environment means production (the API default). override, when non-empty, wins,
// with trailing slashes trimmed. An unknown API or environment gives "", which callers must
// treat as a configuration error (the CRD enums normally prevent it).
func BaseURL(api jetonv1alpha1.API, env jetonv1alpha1.Environment, override string) string {
	if override != "" {
		return strings.TrimRight(override, "/")
	}
	if env == "" {
		env = jetonv1alpha1.EnvironmentProduction
	}
	return baseURLs[api][env]
}
