package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jeton-dev/jeton/internal/testenv"
)

// kubectl runs the real kubectl against the test control plane.
func kubectl(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var in []byte
	if stdin != "" {
		in = []byte(stdin)
	}
	return env.Kubectl(ctx, in, args...)
}

func TestSamplesApplyAndPrintColumns(t *testing.T) {
	samples := filepath.Join(env.Root, "config", "samples")
	if _, stderr, err := kubectl(t, "", "apply", "-k", samples); err != nil {
		t.Fatalf("kubectl apply -k config/samples: %v\n%s", err, stderr)
	}

	out, stderr, err := kubectl(t, "", "get", "publicclients,habilitations,technicaltokens", "-n", operatorNamespace)
	if err != nil {
		t.Fatalf("kubectl get: %v\n%s", err, stderr)
	}
	// One table per kind, each with its printer columns in order.
	headers := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^NAME +DISPLAY NAME +SIRET +NAMESPACE +HABILITATIONS +READY +REASON +AGE$`),
		regexp.MustCompile(`(?m)^NAME +CLIENT +API +ENV +READY +REASON +EXPIRES +AGE$`),
		regexp.MustCompile(`(?m)^NAME +API +ENV +READY +REASON +LAST RESULT +LAST SUCCESS +EXPIRES +AGE$`),
	}
	for _, h := range headers {
		if !h.MatchString(out) {
			t.Errorf("kubectl get output has no header matching %s:\n%s", h, out)
		}
	}
	// Spec columns are filled in without any controller.
	rows := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^publicclient.jeton.dev/trifouilly +Commune de Trifouilly-les-Oies +21310001600012 `),
		regexp.MustCompile(`(?m)^habilitation.jeton.dev/trifouilly-api-entreprise +trifouilly +APIEntreprise +production `),
		regexp.MustCompile(`(?m)^habilitation.jeton.dev/bordeciel-demarches-numeriques +bordeciel +DemarchesNumeriques +production `),
		regexp.MustCompile(`(?m)^technicaltoken.jeton.dev/demarches-numeriques +DemarchesNumeriques +production `),
	}
	for _, r := range rows {
		if !r.MatchString(out) {
			t.Errorf("kubectl get output has no row matching %s:\n%s", r, out)
		}
	}
	// The short names and the category work too.
	for _, resource := range []string{"pcl", "hab", "tt", "jeton"} {
		if _, stderr, err := kubectl(t, "", "get", resource, "-n", operatorNamespace); err != nil {
			t.Errorf("kubectl get %s: %v\n%s", resource, err, stderr)
		}
	}
}

func publicClient(name, siret, namespace string) string {
	m := fmt.Sprintf(`apiVersion: jeton.dev/v1alpha1
kind: PublicClient
metadata:
  name: %s
spec:
  displayName: Test client
  siret: "%s"
`, name, siret)
	if namespace != "" {
		m += "  namespace: " + namespace + "\n"
	}
	return m
}

func habilitation(name, client, api string) string {
	return fmt.Sprintf(`apiVersion: jeton.dev/v1alpha1
kind: Habilitation
metadata:
  name: %s
  namespace: jeton-system
spec:
  clientRef:
    name: %s
  api: %s
  tokenSecretRef:
    name: %s-token
`, name, client, api, name)
}

func technicalToken(name, api, extra string) string {
	return fmt.Sprintf(`apiVersion: jeton.dev/v1alpha1
kind: TechnicalToken
metadata:
  name: %s
  namespace: jeton-system
spec:
  api: %s
  tokenSecretRef:
    name: %s-token
%s`, name, api, name, extra)
}

func TestAdmissionValidation(t *testing.T) {
	longName := strings.Repeat("a", 64)
	tests := []struct {
		name string
		// before is applied first and must be accepted (for immutability checks).
		before string
		apply  string
		// wantErr is a fragment of kubectl's error message; empty means accepted.
		wantErr string
	}{
		{name: "valid SIRET accepted",
			apply: publicClient("valid-siret", "73282932000074", "")},
		{name: "bad SIRET checksum",
			apply:   publicClient("bad-checksum", "73282932000075", ""),
			wantErr: `spec.siret: Invalid value: "73282932000075": siret has an invalid checksum: check the 14 digits against the INSEE SIRENE register`},
		{name: "SIRET with letters",
			apply:   publicClient("letters", "7328293200007A", ""),
			wantErr: `spec.siret: Invalid value: "7328293200007A": spec.siret in body should match '^[0-9]{14}$'`},
		{name: "La Poste SIRET with a digit sum multiple of 5 accepted, though not Luhn-valid",
			apply: publicClient("la-poste", "35600000049837", "")},
		{name: "La Poste SIRET with a bad digit sum rejected",
			apply:   publicClient("la-poste-bad", "35600000049838", ""),
			wantErr: "siret has an invalid checksum"},
		{name: "PublicClient name longer than 63 characters",
			apply:   publicClient(longName, "73282932000074", "client-long"),
			wantErr: "a PublicClient name is at most 63 characters"},
		{name: "PublicClient namespace is immutable",
			before:  publicClient("moving", "73282932000074", "moving-a"),
			apply:   publicClient("moving", "73282932000074", "moving-b"),
			wantErr: "namespace is immutable: moving a client's credentials to another namespace would leave them behind"},
		{name: "unknown api",
			apply:   habilitation("bad-api", "trifouilly", "APIFoo"),
			wantErr: `spec.api: Unsupported value: "APIFoo": supported values: "APIEntreprise", "APIParticulier", "DemarchesNumeriques"`},
		{name: "Habilitation name longer than 63 characters",
			apply:   habilitation(longName, "trifouilly", "APIEntreprise"),
			wantErr: "a Habilitation name is at most 63 characters"},
		{name: "Habilitation clientRef is immutable",
			before:  habilitation("rebind", "trifouilly", "APIEntreprise"),
			apply:   habilitation("rebind", "bordeciel", "APIEntreprise"),
			wantErr: "clientRef is immutable: a token belongs to one client for life"},
		{name: "Habilitation api is immutable",
			before:  habilitation("switch-api", "trifouilly", "APIEntreprise"),
			apply:   habilitation("switch-api", "trifouilly", "APIParticulier"),
			wantErr: "api is immutable; create a new Habilitation instead"},
		{name: "TechnicalToken interval of 10s",
			apply:   technicalToken("too-fast", "APIEntreprise", "  interval: 10s\n  timeout: 5s\n"),
			wantErr: "interval must be at least 30s: probing faster risks the API's rate limits and a 12-hour IP ban"},
		{name: "TechnicalToken timeout equal to interval",
			apply:   technicalToken("slow-probe", "APIEntreprise", "  interval: 30s\n  timeout: 30s\n"),
			wantErr: "timeout must be shorter than interval"},
		{name: "TechnicalToken defaults accepted",
			apply: technicalToken("defaults", "APIParticulier", "")},
		{name: "Démarches Numériques TechnicalToken without demarcheNumber",
			apply:   technicalToken("dn-no-demarche", "DemarchesNumeriques", ""),
			wantErr: "demarcheNumber is required for DemarchesNumeriques"},
		{name: "Démarches Numériques TechnicalToken with demarcheNumber accepted",
			apply: technicalToken("dn-demarche", "DemarchesNumeriques", "  demarcheNumber: 42\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != "" {
				if _, stderr, err := kubectl(t, tt.before, "apply", "-f", "-"); err != nil {
					t.Fatalf("applying the initial object: %v\n%s", err, stderr)
				}
			}
			_, stderr, err := kubectl(t, tt.apply, "apply", "-f", "-")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("kubectl apply rejected a valid object: %v\n%s", err, stderr)
				}
				return
			}
			if err == nil {
				t.Fatalf("kubectl apply accepted an invalid object; want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("kubectl error:\n%s\nwant it to contain:\n%s", stderr, tt.wantErr)
			}
		})
	}
}

func TestExplainShowsFieldDocs(t *testing.T) {
	// The OpenAPI of a new CRD is published a moment after it is established.
	testenv.WaitFor(t, time.Minute, "kubectl explain to show the Habilitation's field docs", func(context.Context) error {
		out, stderr, err := kubectl(t, "", "explain", "habilitation.spec.tokenSecretRef")
		if err != nil {
			return fmt.Errorf("kubectl explain: %v: %s", err, stderr)
		}
		for _, want := range []string{
			"GROUP:      jeton.dev",
			"tokenSecretRef points at the Secret holding this habilitation's token",
			"name\t<string> -required-",
			"key\t<string>",
			"key in the Secret's data that holds the token.",
		} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		return nil
	})
}
