package publicapi

import (
	"testing"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

func TestBaseURL(t *testing.T) {
	const (
		ae   = jetonv1alpha1.APIEntreprise
		ap   = jetonv1alpha1.APIParticulier
		dn   = jetonv1alpha1.DemarchesNumeriques
		prod = jetonv1alpha1.EnvironmentProduction
		stag = jetonv1alpha1.EnvironmentStaging
	)
	tests := []struct {
		api      jetonv1alpha1.API
		env      jetonv1alpha1.Environment
		override string
		want     string
	}{
		{ae, prod, "", "https://entreprise.api.gouv.fr"},
		{ae, stag, "", "https://staging.entreprise.api.gouv.fr"},
		{ae, "", "", "https://entreprise.api.gouv.fr"},
		{ap, prod, "", "https://particulier.api.gouv.fr"},
		{ap, stag, "", "https://staging.particulier.api.gouv.fr"},
		{dn, prod, "", "https://demarche.numerique.gouv.fr"},
		{dn, stag, "", "https://demarche.numerique.gouv.fr"},
		{ae, prod, "http://emulator.jeton-system.svc:8080/", "http://emulator.jeton-system.svc:8080"},
		{dn, stag, "https://proxy.example.com/dn//", "https://proxy.example.com/dn"},
		{ap, stag, "http://127.0.0.1:4010", "http://127.0.0.1:4010"},
		{"APIImpots", prod, "", ""},
		{ae, "preprod", "", ""},
	}
	for _, tt := range tests {
		if got := BaseURL(tt.api, tt.env, tt.override); got != tt.want {
			t.Errorf("BaseURL(%q, %q, %q) = %q, want %q", tt.api, tt.env, tt.override, got, tt.want)
		}
	}
}
