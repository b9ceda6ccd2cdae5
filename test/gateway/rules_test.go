package gateway

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/testenv"
)

// TestGatewayEnforcesTheVendorsRules calls the gateway as client applications (and as an
// attacker in a client namespace) would, and checks what reaches the API: the caller is
// identified by its credential only, its recipient is its own SIRET, its token is the one
// jeton holds for it, and nothing a client sends can change that.
func TestGatewayEnforcesTheVendorsRules(t *testing.T) {
	w := newWorld(t, "gw-rules", worldOptions{})
	a := w.addClient("gw-rules-a", jetonv1alpha1.APIEntreprise)
	b := w.addClient("gw-rules-b", jetonv1alpha1.APIEntreprise)

	// upstream returns what the emulator saw for a client's token since mark.
	upstream := func(c *tenant, mark int) []emulatorRequest { return w.requestsSince(c.tokenID, mark) }

	t.Run("a client's call reaches the API with its own token and SIRET as recipient", func(t *testing.T) {
		mark := len(upstream(a, 0))
		resp, _ := w.call(0, "GET", aePath(a, ""), a.credential, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
		got := upstream(a, mark)
		if len(got) != 1 || got[0].Recipient != a.siret {
			t.Fatalf("the API saw %+v with a's token, want one request with recipient %s", got, a.siret)
		}
	})

	t.Run("identity", func(t *testing.T) {
		forged := a.credential[:len(a.credential)-4] + "0000"
		if forged == a.credential {
			forged = a.credential[:len(a.credential)-4] + "1111"
		}
		markA, markB := len(upstream(a, 0)), len(upstream(b, 0))
		for _, tc := range []struct {
			name, credential string
			headers          []string
		}{
			{"missing", "", nil},
			{"forged", forged, nil},
			{"an API token instead of a credential", "", []string{"Authorization", "Bearer " + a.token}},
			{"a's credential under b's UID", strings.Replace(a.credential, string(hab(t, a).UID), string(hab(t, b).UID), 1), nil},
		} {
			resp, body := w.call(0, "GET", aePath(a, ""), tc.credential, nil, tc.headers...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s: status %d, want 401", tc.name, resp.StatusCode)
			}
			if !strings.Contains(string(body), `"errors"`) || !strings.Contains(string(body), "JETON_") {
				t.Errorf("%s: body %.200q is not a JSON:API error with a jeton code", tc.name, body)
			}
		}
		// b's credential reaches b's token and b's SIRET, never a's.
		resp, _ := w.call(0, "GET", aePath(b, ""), b.credential, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("b's call: status %d", resp.StatusCode)
		}
		if got := upstream(a, markA); len(got) != 0 {
			t.Errorf("a's token was used %d times by refused or other clients' calls", len(got))
		}
		if got := upstream(b, markB); len(got) != 1 || got[0].Recipient != b.siret {
			t.Errorf("b's token saw %+v, want one call with recipient %s", got, b.siret)
		}
	})

	t.Run("recipient", func(t *testing.T) {
		mark := len(upstream(a, 0))
		for _, tc := range []struct {
			name, query string
			want        int
		}{
			{"its own SIRET, kept", "recipient=" + a.siret, http.StatusOK},
			{"another client's SIRET", "recipient=" + b.siret, http.StatusForbidden},
			{"repeated", "recipient=" + a.siret + "&recipient=" + a.siret, http.StatusForbidden},
			{"repeated with another", "recipient=" + a.siret + "&recipient=" + b.siret, http.StatusForbidden},
		} {
			resp, body := w.call(0, "GET", aePath(a, tc.query), a.credential, nil)
			if resp.StatusCode != tc.want {
				t.Errorf("%s: status %d, want %d (%.200s)", tc.name, resp.StatusCode, tc.want, body)
			}
		}
		got := upstream(a, mark)
		if len(got) != 1 || got[0].Recipient != a.siret {
			t.Errorf("the API saw %+v, want only the call with a's own SIRET", got)
		}
	})

	t.Run("header smuggling cannot remove or replace the token", func(t *testing.T) {
		mark := len(upstream(a, 0))
		resp, _ := w.call(0, "GET", aePath(a, ""), a.credential, nil,
			"Connection", "Authorization, X-Api-Key, Proxy-Authorization", "Proxy-Authorization", "Bearer "+b.token,
			"Cookie", "session=x", "X-Forwarded-For", "203.0.113.9", "Forwarded", "for=203.0.113.9")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200: hop-by-hop games must not break a call", resp.StatusCode)
		}
		if got := upstream(a, mark); len(got) != 1 || !got[0].Authorization {
			t.Errorf("the API saw %+v, want one call carrying a's token", got)
		}
		// A header with both credentials conflicting is refused, not guessed.
		resp, _ = w.call(0, "GET", aePath(a, ""), a.credential, nil, "X-Api-Key", b.credential)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("two different credentials: status %d, want 401", resp.StatusCode)
		}
	})

	t.Run("Upgrade, h2c, CONNECT and absolute-form are refused", func(t *testing.T) {
		mark := len(upstream(a, 0))
		for _, tc := range []struct{ name, raw string }{
			{"websocket upgrade", "GET " + aePath(a, "") + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + a.credential + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"},
			{"h2c upgrade", "GET " + aePath(a, "") + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + a.credential + "\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"},
			{"CONNECT", "CONNECT " + strings.TrimPrefix(w.emuURL, "http://") + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + a.credential + "\r\n\r\n"},
			{"absolute-form", "GET " + w.emuURL + aePath(a, "") + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + a.credential + "\r\n\r\n"},
		} {
			status := rawStatus(t, w.gws[0].Addr, tc.raw)
			if status < 400 {
				t.Errorf("%s: status %d, want a refusal", tc.name, status)
			}
		}
		if got := upstream(a, mark); len(got) != 0 {
			t.Errorf("the API saw %d calls from refused framings", len(got))
		}
	})

	t.Run("a rotated credential is refused at once, the new one works", func(t *testing.T) {
		old := a.credential
		patch := client.MergeFrom(hab(t, a))
		h := hab(t, a)
		if h.Annotations == nil {
			h.Annotations = map[string]string{}
		}
		h.Annotations[jetonv1alpha1.AnnotationGatewayCredentialRotation] = time.Now().UTC().Format(time.RFC3339Nano)
		if err := env.Client.Patch(t.Context(), h, patch); err != nil {
			t.Fatal(err)
		}
		a.credential = w.waitCredential(a, old)
		testenv.WaitFor(t, 30*time.Second, "the old credential refused", func(context.Context) error {
			if resp, _ := w.call(0, "GET", aePath(a, ""), old, nil); resp.StatusCode != http.StatusUnauthorized {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
		testenv.WaitFor(t, 30*time.Second, "the new credential served", func(context.Context) error {
			if resp, _ := w.call(0, "GET", aePath(a, ""), a.credential, nil); resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
	})

	t.Run("a Habilitation that is not Ready gets 503 with its reason", func(t *testing.T) {
		// Its token Secret deleted: the Habilitation goes not Ready (SecretNotFound), and
		// the gateway stops using the token at once, saying why.
		srcA := hab(t, a).Spec.TokenSecretRef.Name
		if err := env.Client.Delete(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: srcA, Namespace: w.credNS}}); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, time.Minute, "a's calls refused with 503", func(context.Context) error {
			resp, body := w.call(0, "GET", aePath(a, ""), a.credential, nil)
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "SecretNotFound") {
				return fmt.Errorf("status %d, body %.300s", resp.StatusCode, body)
			}
			return nil
		})
	})
}

// rawStatus writes raw on a new connection to addr and returns the answer's status (0 when
// the connection was closed without one, which is a refusal too).
func rawStatus(t *testing.T, addr, raw string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(raw)); err != nil {
		return 0
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 999
	}
	resp.Body.Close()
	return resp.StatusCode
}

// hab reads c's Habilitation as it is now.
func hab(t *testing.T, c *tenant) *jetonv1alpha1.Habilitation {
	t.Helper()
	h := &jetonv1alpha1.Habilitation{}
	if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(c.hab), h); err != nil {
		t.Fatal(err)
	}
	return h
}
