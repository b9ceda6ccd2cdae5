package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
)

// TestProbesAgainstThePublishedBackends runs the manager binary against the emulator in
// its default mode, which answers byte for byte as the APIs' published backends
// (docs/api-fidelity.md), and checks what a platform engineer reads on each
// TechnicalToken: a healthy API Entreprise token Ready on the data-wrapped /privileges
// (issue 20, point 1), a token whose allow-list excludes the cluster's address reported
// NetworkNotAllowed with the address to add (point 2), API Particulier's flat expiry error
// read as Expired (point 3), a prolonged token Ready (point 5), and a banned address
// reported once per host as HostUnreachable (point 6).
func TestProbesAgainstThePublishedBackends(t *testing.T) {
	ctx := context.Background()
	credNS := "fidelity-credentials"
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: credNS}}); err != nil {
		t.Fatal(err)
	}
	emu := emulator.New()
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	// A second API host, to be banned: its tokens share nothing with the first one's.
	banned := emulator.New()
	bannedSrv := httptest.NewServer(banned)
	t.Cleanup(bannedSrv.Close)

	mint := func(e *emulator.Server, api jetonv1alpha1.API, o emulator.MintOptions) (string, string) {
		t.Helper()
		tok, id, err := e.Mint(api, o)
		if err != nil {
			t.Fatal(err)
		}
		return tok, id
	}
	now := time.Now()
	type tech struct {
		name, baseURL, token string
		api                  jetonv1alpha1.API
	}
	aeToken, _ := mint(emu, jetonv1alpha1.APIEntreprise, emulator.MintOptions{Scopes: []string{"attestations_fiscales"}})
	dnToken, _ := mint(emu, jetonv1alpha1.DemarchesNumeriques, emulator.MintOptions{Scopes: []string{"42"}, AllowedNetworks: []string{"203.0.113.0/24"}})
	apToken, apID := mint(emu, jetonv1alpha1.APIParticulier, emulator.MintOptions{Scopes: []string{"cnaf_quotient_familial"}})
	if err := emu.SetBehaviour(apID, emulator.Expired); err != nil {
		t.Fatal(err)
	}
	// Its exp passed an hour ago, then it was prolonged on the portal: the old string works.
	prolongedToken, prolongedID := mint(emu, jetonv1alpha1.APIEntreprise, emulator.MintOptions{
		Scopes: []string{"attestations_fiscales"}, IssuedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)})
	if _, err := emu.Renew(prolongedID, now.AddDate(1, 0, 0)); err != nil {
		t.Fatal(err)
	}
	bannedA, _ := mint(banned, jetonv1alpha1.APIEntreprise, emulator.MintOptions{Scopes: []string{"attestations_fiscales"}})
	bannedB, _ := mint(banned, jetonv1alpha1.APIEntreprise, emulator.MintOptions{Scopes: []string{"attestations_sociales"}})
	banned.SetBanned(true)

	techs := []tech{
		{"entreprise", srv.URL, aeToken, jetonv1alpha1.APIEntreprise},
		{"dn-allow-list", srv.URL, dnToken, jetonv1alpha1.DemarchesNumeriques},
		{"particulier-expired", srv.URL, apToken, jetonv1alpha1.APIParticulier},
		{"entreprise-prolonged", srv.URL, prolongedToken, jetonv1alpha1.APIEntreprise},
		{"banned-a", bannedSrv.URL, bannedA, jetonv1alpha1.APIEntreprise},
		{"banned-b", bannedSrv.URL, bannedB, jetonv1alpha1.APIEntreprise},
	}
	for _, tc := range techs {
		var number *int64
		if tc.api == jetonv1alpha1.DemarchesNumeriques {
			n := int64(42)
			number = &n
		}
		for _, o := range []client.Object{
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: tc.name}, Data: map[string][]byte{"token": []byte(tc.token)}},
			&jetonv1alpha1.TechnicalToken{ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: tc.name},
				Spec: jetonv1alpha1.TechnicalTokenSpec{API: tc.api, BaseURL: tc.baseURL, DemarcheNumber: number,
					Timeout:        &metav1.Duration{Duration: 2 * time.Second},
					TokenSecretRef: jetonv1alpha1.SecretKeyReference{Name: tc.name, Key: "token"}}},
		} {
			if err := env.Client.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	readerToken := metricsReaderToken(t, credNS, "fidelity-prometheus")
	p := startManager(t, env.Kubeconfig, "--leader-elect=false", "--credentials-namespaces", credNS, "--test-probe-interval", "1s",
		"--allowed-api-hosts", strings.TrimPrefix(srv.URL, "http://")+","+strings.TrimPrefix(bannedSrv.URL, "http://"))

	// ready waits until the TechnicalToken's Ready condition has status and reason, and
	// returns it with the last probe's result.
	ready := func(name string, status metav1.ConditionStatus, reason string) (*metav1.Condition, *jetonv1alpha1.TechnicalToken) {
		t.Helper()
		var cond *metav1.Condition
		tt := &jetonv1alpha1.TechnicalToken{}
		p.eventually(t, fmt.Sprintf("TechnicalToken %s Ready=%s (%s)", name, status, reason), func() error {
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: credNS, Name: name}, tt); err != nil {
				return err
			}
			cond = meta.FindStatusCondition(tt.Status.Conditions, jetonv1alpha1.ConditionReady)
			if cond == nil || cond.Status != status || cond.Reason != reason {
				return fmt.Errorf("Ready is %+v", cond)
			}
			return nil
		})
		return cond, tt
	}

	t.Run("data-wrapped privileges: Ready", func(t *testing.T) {
		_, tt := ready("entreprise", metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded)
		if len(tt.Status.Privileges) != 1 || tt.Status.Privileges[0] != "attestations_fiscales" {
			t.Errorf("privileges = %v, want the API's [attestations_fiscales]", tt.Status.Privileges)
		}
	})
	t.Run("address outside the allow-list: NetworkNotAllowed naming the address", func(t *testing.T) {
		cond, _ := ready("dn-allow-list", metav1.ConditionFalse, jetonv1alpha1.ReasonNetworkNotAllowed)
		if !strings.Contains(cond.Message, "add 127.0.0.1/32 ") || !strings.Contains(cond.Message, "do not regenerate it") {
			t.Errorf("message %q does not name the address to allow, or suggests a new token", cond.Message)
		}
		if strings.Contains(cond.Message, "generate a new token") {
			t.Errorf("message %q sends users to regenerate a good token", cond.Message)
		}
	})
	t.Run("API Particulier's flat expiry error: Expired", func(t *testing.T) {
		_, tt := ready("particulier-expired", metav1.ConditionFalse, jetonv1alpha1.ReasonExpired)
		if tt.Status.LastResult == nil || tt.Status.LastResult.HTTPStatus != 401 {
			t.Errorf("last result %+v, want the API's 401", tt.Status.LastResult)
		}
	})
	t.Run("prolonged: the API's answer wins over exp", func(t *testing.T) {
		cond, _ := ready("entreprise-prolonged", metav1.ConditionTrue, jetonv1alpha1.ReasonTokenProlonged)
		if !strings.Contains(cond.Message, "Fetch the new token string") {
			t.Errorf("message %q does not say to fetch the prolonged string", cond.Message)
		}
	})
	t.Run("banned address: HostUnreachable once per host", func(t *testing.T) {
		host := strings.TrimPrefix(bannedSrv.URL, "http://")
		for _, name := range []string{"banned-a", "banned-b"} {
			cond, _ := ready(name, metav1.ConditionFalse, jetonv1alpha1.ReasonHostUnreachable)
			if !strings.Contains(cond.Message, host+" answers no probe of any of its 2 technical tokens") || !strings.Contains(cond.Message, "12 hours") {
				t.Errorf("message %q does not blame the host's address", cond.Message)
			}
			if strings.Contains(cond.Message, "spec.timeout") {
				t.Errorf("message %q advises raising spec.timeout for a host that answers nobody", cond.Message)
			}
		}
		prometheus := secureScraper(p.MetricsAddr, readerToken)
		p.eventually(t, "jeton_api_host_unreachable 1 for the banned host, 0 for the other", func() error {
			families, _, err := prometheus.scrape()
			if err != nil {
				return err
			}
			if v, ok := sample(families, "jeton_api_host_unreachable", map[string]string{"host": host}); !ok || v != 1 {
				return fmt.Errorf("banned host: %v (present %v)", v, ok)
			}
			if v, ok := sample(families, "jeton_api_host_unreachable", map[string]string{"host": strings.TrimPrefix(srv.URL, "http://")}); !ok || v != 0 {
				return fmt.Errorf("answering host: %v (present %v)", v, ok)
			}
			return nil
		})
	})
}
