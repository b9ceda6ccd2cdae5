package gateway

import (
	"net/http"
	"testing"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

func TestRouteGroupOf(t *testing.T) {
	tests := []struct {
		api   jetonv1alpha1.API
		path  string
		group string
		limit int
	}{
		{jetonv1alpha1.APIEntreprise, "/v3/dgfip/unites_legales/130025265/attestation_fiscale", "dgfip_attestations_fiscales", 5},
		{jetonv1alpha1.APIEntreprise, "/v4/dgfip/unites_legales/130025265/attestation_fiscale", "dgfip_attestations_fiscales", 5},
		{jetonv1alpha1.APIEntreprise, "/v3/inpi/rne/unites_legales/open_data/130025265/actes_bilans", "inpi_rne_actes_bilans", 15},
		{jetonv1alpha1.APIEntreprise, "/v3/qualibat/etablissements/13002526500013/certification_batiment", "low_latency_documents", 50},
		{jetonv1alpha1.APIEntreprise, "/proxy/files/7c1f", "proxied_files", 50},
		{jetonv1alpha1.APIEntreprise, "/v3/urssaf/unites_legales/130025265/attestation_vigilance", "urssaf_attestation_vigilance", 100},
		{jetonv1alpha1.APIEntreprise, "/v3/insee/sirene/etablissements/13002526500013", "", 0},
		{jetonv1alpha1.APIEntreprise, "/v3/dgfip/unites_legales/130025265/attestation_fiscale/x", "", 0},
		{jetonv1alpha1.APIParticulier, "/v3/dgfip/unites_legales/130025265/attestation_fiscale", "", 0},
	}
	for _, tt := range tests {
		g := RouteGroupOf(tt.api, tt.path)
		if g.Name != tt.group || g.Limit.Requests != tt.limit {
			t.Errorf("RouteGroupOf(%s, %s) = %+v, want %q %d", tt.api, tt.path, g, tt.group, tt.limit)
		}
	}
}

// TestRouteLimitKeepsUnderTheRouteAndHoldsOnlyIt: a client asking a fiscal certificate
// every second for three minutes, through 1 or 2 replicas: no 60 s window holds more than
// the route's 5; a 429 there holds that token on that route only, not its other routes nor
// another client's.
func TestRouteLimitKeepsUnderTheRouteAndHoldsOnlyIt(t *testing.T) {
	const doc = "/v3/dgfip/unites_legales/130025265/attestation_fiscale"
	const host = "entreprise.api.gouv.fr"
	docGroup := RouteGroupOf(jetonv1alpha1.APIEntreprise, doc)
	general := RouteGroupOf(jetonv1alpha1.APIEntreprise, "/v3/insee/sirene/etablissements/13002526500013")
	for _, n := range []int{1, 2} {
		replicas := make([]*Limits, n)
		for i := range replicas {
			replicas[i] = NewLimits(LimitsOptions{Replicas: n})
		}
		start := time.Unix(1_700_000_000, 0)
		var sent []time.Time
		for s := range 180 {
			now := start.Add(time.Duration(s) * time.Second)
			if ok, _, _ := replicas[s%n].AdmitRoute(jetonv1alpha1.APIEntreprise, host, "fp-a", docGroup, now); ok {
				sent = append(sent, now)
			}
		}
		if got := maxInWindow(sent, time.Minute); got > 5 || got == 0 {
			t.Errorf("%d replica(s): %d fiscal certificates in a 60 s window, want 1..5", n, got)
		}
	}

	l := NewLimits(LimitsOptions{Replicas: 1})
	now := time.Unix(1_700_000_000, 0)
	if ok, _, _ := l.AdmitRoute(jetonv1alpha1.APIEntreprise, host, "fp-a", docGroup, now); !ok {
		t.Fatal("first certificate refused")
	}
	l.ObserveRoute(host, "fp-a", docGroup, http.StatusTooManyRequests, http.Header{"Retry-After": {"60"}}, now)
	later := now.Add(20 * time.Second)
	if ok, wait, reason := l.AdmitRoute(jetonv1alpha1.APIEntreprise, host, "fp-a", docGroup, later); ok || reason != ReasonUpstreamHeld || wait != 40*time.Second {
		t.Errorf("after the route's 429: ok=%v wait=%v reason=%s, want held 40s", ok, wait, reason)
	}
	if ok, _, _ := l.AdmitRoute(jetonv1alpha1.APIEntreprise, host, "fp-a", general, later); !ok {
		t.Error("the token's other routes are held by a 429 on a document route")
	}
	if ok, _, _ := l.AdmitRoute(jetonv1alpha1.APIEntreprise, host, "fp-b", docGroup, later); !ok {
		t.Error("another client's token is held by a 429 on a's document route")
	}
}
