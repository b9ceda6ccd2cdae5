package publicapi

import (
	"errors"
	"strings"
	"testing"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

func TestHostPolicyCheck(t *testing.T) {
	const (
		ae = jetonv1alpha1.APIEntreprise
		ap = jetonv1alpha1.APIParticulier
		dn = jetonv1alpha1.DemarchesNumeriques
	)
	policy, err := NewHostPolicy([]string{"127.0.0.1:18080", "Proxy.Example.com:8443", "[::1]:9000", "10.0.0.5:80", "localhost:4010"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		api     jetonv1alpha1.API
		url     string
		wantErr string // "" when allowed
	}{
		{"official production", ae, "https://entreprise.api.gouv.fr", ""},
		{"official staging with a path", ae, "https://staging.entreprise.api.gouv.fr/v3/", ""},
		{"official with :443", ap, "https://particulier.api.gouv.fr:443", ""},
		{"official host, upper case", ap, "https://PARTICULIER.api.gouv.fr", ""},
		{"DN legacy host", dn, "https://www.demarches-simplifiees.fr", ""},
		{"listed loopback over HTTP (the emulator)", ae, "http://127.0.0.1:18080", ""},
		{"listed IPv6 loopback over HTTP", dn, "http://[::1]:9000", ""},
		{"listed localhost over HTTP", ap, "http://localhost:4010", ""},
		{"listed host over HTTPS", dn, "https://proxy.example.com:8443/dn", ""},

		{"another API's official host", ae, "https://particulier.api.gouv.fr", `host "particulier.api.gouv.fr" is not an official host of APIEntreprise`},
		{"official host over plain HTTP", ae, "http://entreprise.api.gouv.fr", "plain HTTP"},
		{"official host on another port", ae, "https://entreprise.api.gouv.fr:8443", "not an official host"},
		{"look-alike suffix", ae, "https://entreprise.api.gouv.fr.attacker.example", "not an official host"},
		{"look-alike user info", ae, "https://entreprise.api.gouv.fr@attacker.example", "user information"},
		{"anywhere", ae, "https://attacker.example", `add "attacker.example" to --allowed-api-hosts`},
		{"listed host without its port", dn, "https://proxy.example.com", "not an official host"},
		{"unlisted loopback over HTTP", ae, "http://127.0.0.1:9999", "not listed in --allowed-api-hosts"},
		{"listed non-loopback over HTTP", ae, "http://10.0.0.5:80", "not a loopback host"},
		{"query string", ae, "https://entreprise.api.gouv.fr/?x=1", "query"},
		{"other scheme", ae, "ftp://entreprise.api.gouv.fr", `scheme "ftp"`},
		{"relative", ae, "/privileges", "not an absolute"},
		{"garbage", ae, "http://%zz", "not an absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := policy.Check(tt.api, tt.url)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Check(%s, %q) = %v, want allowed", tt.api, tt.url, err)
				}
				return
			}
			var notAllowed *HostNotAllowedError
			if !errors.As(err, &notAllowed) {
				t.Fatalf("Check(%s, %q) = %v, want a HostNotAllowedError", tt.api, tt.url, err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Check(%s, %q) = %q, want it to contain %q", tt.api, tt.url, err, tt.wantErr)
			}
		})
	}
}

func TestHostPolicyWithoutFlag(t *testing.T) {
	var policy HostPolicy // no --allowed-api-hosts
	if err := policy.Check(jetonv1alpha1.APIEntreprise, "https://entreprise.api.gouv.fr"); err != nil {
		t.Errorf("official host refused: %v", err)
	}
	if err := policy.Check(jetonv1alpha1.APIEntreprise, "http://127.0.0.1:18080"); err == nil {
		t.Errorf("loopback allowed without being listed")
	}
}

func TestHostPolicyBoundsTheHostItRepeats(t *testing.T) {
	long := "https://" + strings.Repeat("a", 2000) + ".example"
	err := HostPolicy{}.Check(jetonv1alpha1.APIEntreprise, long)
	if err == nil || len(err.(*HostNotAllowedError).Host) > maxShownHost {
		t.Fatalf("want a refusal naming at most %d characters of the host, got %v", maxShownHost, err)
	}
}

func TestNewHostPolicy(t *testing.T) {
	for _, bad := range []string{"http://127.0.0.1:18080", "host/path", "user@host", "host:", "host:port", "a b"} {
		if _, err := NewHostPolicy([]string{bad}); err == nil {
			t.Errorf("NewHostPolicy(%q) accepted it", bad)
		}
	}
	p, err := NewHostPolicy([]string{" 127.0.0.1:18080 ", "", "EXAMPLE.com"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Allowed(), ","); got != "127.0.0.1:18080,example.com" {
		t.Errorf("Allowed() = %q", got)
	}
}

// Every spelling Check accepts of one host is one key of the per-address budget; other
// hosts, and other ports, stay apart.
func TestCanonicalHost(t *testing.T) {
	tests := []struct{ url, want string }{
		{"https://entreprise.api.gouv.fr", "entreprise.api.gouv.fr"},
		{"https://ENTREPRISE.api.gouv.fr/v3/", "entreprise.api.gouv.fr"},
		{"https://Entreprise.Api.Gouv.Fr:443", "entreprise.api.gouv.fr"},
		{"https://entreprise.api.gouv.fr.:443/", "entreprise.api.gouv.fr"},
		{"HTTPS://entreprise.api.gouv.fr", "entreprise.api.gouv.fr"},
		{"https://entreprise.api.gouv.fr:8443", "entreprise.api.gouv.fr:8443"},
		{"http://LocalHost:4010", "localhost:4010"},
		{"http://localhost:80", "localhost"},
		{"https://localhost:80", "localhost:80"},
		{"http://127.0.0.1:18080/x", "127.0.0.1:18080"},
		{"http://[::1]:9000", "[::1]:9000"},
		{"https://[::1]:443", "[::1]"},
		{"not a url", ""},
		{"", ""},
	}
	for _, tc := range tests {
		if got := CanonicalHost(tc.url); got != tc.want {
			t.Errorf("CanonicalHost(%q) = %q, want %q", tc.url, got, tc.want)
		}
	}
	// Whatever spelling the policy accepts for one host, one key.
	policy, err := NewHostPolicy([]string{"localhost:4010"})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, u := range []string{"https://entreprise.api.gouv.fr", "https://ENTREPRISE.api.gouv.fr", "https://entreprise.api.gouv.fr:443/v3", "https://Entreprise.API.gouv.fr:443"} {
		if err := policy.Check(jetonv1alpha1.APIEntreprise, u); err != nil {
			t.Fatalf("%s refused: %v", u, err)
		}
		keys[CanonicalHost(u)] = true
	}
	if len(keys) != 1 {
		t.Errorf("accepted spellings of one host give keys %v, want one", keys)
	}
}
