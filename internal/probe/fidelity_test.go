package probe

import (
	"strings"
	"testing"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/fidelity"
)

// TestClassifyPublishedAnswers feeds the classification the exact bytes and headers of
// every answer the published backends give to jeton's token checks (internal/fidelity, one
// row each in docs/api-fidelity.md), and checks what users read.
func TestClassifyPublishedAnswers(t *testing.T) {
	for _, a := range fidelity.Answers {
		t.Run(a.Name, func(t *testing.T) {
			body := fidelity.WithTokenID(a.Body, "2c3e4f5a-0000-4000-8000-000000000001")
			r := ClassifyAt(a.API, a.Status, a.Header, []byte(body), fidelity.Now)
			if r.Reason != a.Reason || r.Code != a.Code {
				t.Fatalf("Classify = %s (code %q): %s; want %s (code %q)", r.Reason, r.Code, r.Message, a.Reason, a.Code)
			}
			switch r.Reason {
			case jetonv1alpha1.ReasonNetworkNotAllowed:
				// Not a token problem: never send users to regenerate a good token.
				if !strings.Contains(r.Message, "do not regenerate it") || !strings.Contains(r.Message, "egress address") {
					t.Errorf("message %q does not say the token is fine and what to allow", r.Message)
				}
				if a.API == jetonv1alpha1.DemarchesNumeriques && !strings.Contains(r.Message, "add "+fidelity.RemoteAddr+"/32 ") {
					t.Errorf("message %q does not name the address the API gave", r.Message)
				}
			case jetonv1alpha1.ReasonRateLimited:
				if !strings.Contains(r.Message, "asked to wait 32s") {
					t.Errorf("message %q does not say how long the API asked to wait", r.Message)
				}
				if at := RetryAt(a.Header, fidelity.Now); at.Sub(fidelity.Now).Seconds() != fidelity.RetryAfter {
					t.Errorf("RetryAt = %s after now, want %ds", at.Sub(fidelity.Now), fidelity.RetryAfter)
				}
			case jetonv1alpha1.ReasonProbeSucceeded:
				if a.API != jetonv1alpha1.DemarchesNumeriques && len(r.Privileges) == 0 {
					t.Errorf("no privileges read from %s", body)
				}
			}
			// Nothing of the answer but parsed, bounded values reaches the message.
			for _, phrase := range []string{"Votre", "Calme", "persisted", "hidden"} {
				if strings.Contains(r.Message, phrase) {
					t.Errorf("message %q copies the answer's text (%q)", r.Message, phrase)
				}
			}
		})
	}
}

// The address of Démarches Numériques' refusal reaches the message only when it parses as
// an IP prefix: whoever controls a base URL controls the text around it.
func TestForbiddenNetworkAddressIsParsed(t *testing.T) {
	for _, tc := range []struct{ msg, want string }{
		{"Request issued from a forbidden network. Add 192.0.2.1/32 to your allowed adresses in your /profil", "192.0.2.1/32"},
		{"Request issued from a forbidden network. Add 2001:0db8:0000:0000:0000:0000:0000:0001/128 to your allowed adresses in your /profil", "2001:db8::1/128"},
		{"Request issued from a forbidden network. Add eyJhbGciOiJIUzI1NiJ9.secret/32 to your allowed adresses", ""},
		{"Request issued from a forbidden network. Add 999.1.1.1/32 to your allowed", ""},
		{"Request issued from a forbidden network.", ""},
	} {
		ok, got := forbiddenNetwork(tc.msg)
		if !ok || got != tc.want {
			t.Errorf("forbiddenNetwork(%q) = %v, %q; want true, %q", tc.msg, ok, got, tc.want)
		}
	}
	if ok, _ := forbiddenNetwork("Without a token, only persisted queries are allowed"); ok {
		t.Error("an invalid token was read as a refused network")
	}
}
