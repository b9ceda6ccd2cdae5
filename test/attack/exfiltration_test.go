package attack

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/token"
)

// Finding 1. A jeton editor (CRs only, no Secret access) tries to exfiltrate a client's
// token through a TechnicalToken naming the client's token Secret: every host outside the
// official APIs and --allowed-api-hosts is refused before anything is sent, and an allowed
// host never sees a client's token either (TokenConflict). The client keeps being served.
func TestExfiltrationThroughTechnicalToken(t *testing.T) {
	ctx := context.Background()
	sfx := suffix()
	clientA := "exfil-a-" + sfx
	readyClient(t, clientA)
	tokA, _ := mint(t, jetonv1alpha1.APIEntreprise)
	hA := injectedHabilitation(t, "exfil-a-"+sfx, clientA, tokA, jetonv1alpha1.APIEntreprise)
	injected := waitInjected(t, clientA, hA.Name, tokA)
	source := hA.Spec.TokenSecretRef.Name
	probeCycles(t, 1) // the heartbeat runs before any TechnicalToken of the attack exists
	// The TechnicalTokens below are created later than the Habilitation, also as the API
	// server counts (creation timestamps have one-second precision). The same second is
	// TestTechnicalTokenInTheSameSecond.
	afterCreationSecond(t, hA)

	emuHost := servers["emulator"].host
	refused := map[string]string{
		"foreign-loopback":         "http://" + foreign.host,
		"foreign-loopback-https":   "https://" + foreign.host,
		"attacker-host":            "https://attacker.example",
		"official-lookalike":       "https://entreprise.api.gouv.fr.attacker.example",
		"official-userinfo":        "https://entreprise.api.gouv.fr@" + foreign.host,
		"official-port-userinfo":   "https://entreprise.api.gouv.fr:443@" + foreign.host,
		"official-userinfo-http":   "http://entreprise.api.gouv.fr@" + foreign.host,
		"official-backslash":       `https://entreprise.api.gouv.fr\@` + foreign.host,
		"official-in-path":         "https://" + foreign.host + "/entreprise.api.gouv.fr",
		"official-plain-http":      "http://entreprise.api.gouv.fr",
		"other-api-official-host":  "https://particulier.api.gouv.fr",
		"allowed-host-as-userinfo": "http://" + emuHost + "@" + foreign.host,
		"allowed-port-lookalike":   "http://" + emuHost + ".attacker.example",
		"allowed-host-alias":       "http://localhost:" + portOf(emuHost),
		"allowed-host-ipv6":        "http://[::1]:" + portOf(emuHost),
		"allowed-port-other-ip":    "http://127.0.0.2:" + portOf(emuHost),
	}
	var tts []*jetonv1alpha1.TechnicalToken
	for name, baseURL := range refused {
		t.Run("APIHostNotAllowed/"+name, func(t *testing.T) {
			tt := newTechnicalToken(t, "exfil-"+name+"-"+sfx, source, jetonv1alpha1.APIEntreprise, baseURL)
			tts = append(tts, tt)
			got := waitReady(t, tt, metav1.ConditionFalse, jetonv1alpha1.ReasonAPIHostNotAllowed, true).(*jetonv1alpha1.TechnicalToken)
			if got.Status.LastProbeTime != nil || got.Status.LastResult != nil {
				t.Errorf("TechnicalToken %s with baseURL %s was probed: lastProbeTime %v, lastResult %+v", tt.Name, baseURL, got.Status.LastProbeTime, got.Status.LastResult)
			}
			waitFor(t, waitTimeout, "an APIHostNotAllowed Warning event", func(ctx context.Context) error {
				reasons, _, err := eventReasons(ctx, "TechnicalToken", credNS, tt.Name)
				if err != nil {
					return err
				}
				if !strings.Contains(strings.Join(reasons, ","), jetonv1alpha1.ReasonAPIHostNotAllowed) {
					return fmt.Errorf("events %v", reasons)
				}
				return nil
			})
		})
	}

	t.Run("TokenConflict/allowed-emulator", func(t *testing.T) {
		before := servers["emulator"].requests.Load()
		tt := newTechnicalToken(t, "exfil-allowed-"+sfx, source, jetonv1alpha1.APIEntreprise, emuURL)
		tts = append(tts, tt)
		got := waitReady(t, tt, metav1.ConditionFalse, jetonv1alpha1.ReasonTokenConflict, true).(*jetonv1alpha1.TechnicalToken)
		if got.Status.LastProbeTime != nil || got.Status.LastResult != nil {
			t.Errorf("TechnicalToken %s holding client %s's token was probed: lastResult %+v", tt.Name, clientA, got.Status.LastResult)
		}
		if !strings.Contains(readyCond(got).Message, hA.Name) {
			t.Errorf("TokenConflict message does not name the Habilitation holding the token: %q", redact(readyCond(got).Message))
		}
		// The probe loop ran meanwhile (the heartbeat was probed), and still nothing reached
		// the allowed server with the client's token.
		probeCycles(t, 2)
		if n := servers["emulator"].received(tokA); n != 0 {
			t.Errorf("the allowed emulator received client %s's token (fingerprint %s) in %d request(s)", clientA, token.Fingerprint(tokA), n)
		}
		t.Logf("the emulator served %d requests meanwhile (heartbeat), none with the client's token", servers["emulator"].requests.Load()-before)
	})

	t.Run("nothing-reached-the-foreign-listener", func(t *testing.T) {
		probeCycles(t, 2)
		if c, r := foreign.conns.Load(), foreign.requests.Load(); c != 0 || r != 0 {
			t.Errorf("the listener not in --allowed-api-hosts got %d connection(s) and %d request(s), want none", c, r)
		}
		clientStillServed(t, hA, tokA, injected)
	})

	// An editor cannot re-point an existing TechnicalToken (or Habilitation) at a client's
	// token Secret: tokenSecretRef is immutable at admission.
	t.Run("tokenSecretRef-immutable", func(t *testing.T) {
		tt, _ := vendorTechnicalToken(t, "exfil-vendor-"+sfx, jetonv1alpha1.APIEntreprise, emuURL)
		tts = append(tts, tt)
		waitReady(t, tt, metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded, false)
		cur := &jetonv1alpha1.TechnicalToken{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tt), cur); err != nil {
			t.Fatal(err)
		}
		cur.Spec.TokenSecretRef.Name = source
		err := env.Client.Update(ctx, cur)
		if !apierrors.IsInvalid(err) {
			t.Errorf("re-pointing TechnicalToken %s at client %s's token Secret: %v, want Invalid (immutable)", tt.Name, clientA, err)
		}
		patch := []byte(fmt.Sprintf(`{"spec":{"tokenSecretRef":{"name":%q,"key":"token"}}}`, source))
		err = env.Client.Patch(ctx, tt.DeepCopy(), client.RawPatch("application/merge-patch+json", patch))
		if !apierrors.IsInvalid(err) {
			t.Errorf("merge-patching TechnicalToken %s's tokenSecretRef: %v, want Invalid (immutable)", tt.Name, err)
		}
		// Nor a Habilitation of another client at client A's Secret.
		clientB := "exfil-b-" + sfx
		readyClient(t, clientB)
		tokB, _ := mint(t, jetonv1alpha1.APIEntreprise)
		hB := injectedHabilitation(t, "exfil-b-"+sfx, clientB, tokB, jetonv1alpha1.APIEntreprise)
		curH := &jetonv1alpha1.Habilitation{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(hB), curH); err != nil {
			t.Fatal(err)
		}
		curH.Spec.TokenSecretRef.Name = source
		if err := env.Client.Update(ctx, curH); !apierrors.IsInvalid(err) {
			t.Errorf("re-pointing client %s's Habilitation at client %s's token Secret: %v, want Invalid (immutable)", clientB, clientA, err)
		}
		curH.Spec.TokenSecretRef.Name = hB.Spec.TokenSecretRef.Name
		curH.Spec.ClientRef.Name = clientA
		if err := env.Client.Update(ctx, curH); !apierrors.IsInvalid(err) {
			t.Errorf("moving client %s's Habilitation to client %s: %v, want Invalid (immutable)", clientB, clientA, err)
		}
	})

	clientStillServed(t, hA, tokA, injected)
	for _, tt := range tts {
		deleteAndWait(t, tt)
	}
	checkGlobal(t)
}

// Finding 2. A jeton editor points a client's Habilitation at a foreign host through
// spec.baseURL, so that the client's own workloads send the token there (BASE_URL): refused,
// nothing injected, and an injected Secret that existed before the edit is removed.
func TestHabilitationBaseURLForeignHost(t *testing.T) {
	ctx := context.Background()
	sfx := suffix()
	clientA := "hburl-a-" + sfx
	readyClient(t, clientA)

	foreignURLs := []string{
		"http://" + foreign.host,
		"https://attacker.example",
		"https://entreprise.api.gouv.fr.attacker.example",
		"https://entreprise.api.gouv.fr@" + foreign.host,
		"https://particulier.api.gouv.fr", // an official host, of another API
		"http://entreprise.api.gouv.fr",   // the official host, in clear text
	}

	// A Habilitation created with a foreign baseURL: never injected.
	for i, u := range foreignURLs {
		t.Run(fmt.Sprintf("created-with/%d", i), func(t *testing.T) {
			tok, _ := mint(t, jetonv1alpha1.APIEntreprise)
			name := fmt.Sprintf("hburl-new-%d-%s", i, sfx)
			h := newHabilitation(t, name, clientA, tok, habOptions{baseURL: u})
			got := waitReady(t, h, metav1.ConditionFalse, jetonv1alpha1.ReasonAPIHostNotAllowed, true).(*jetonv1alpha1.Habilitation)
			if got.Status.TargetSecret != nil {
				t.Errorf("Habilitation %s (baseURL %s) records target Secret %v", name, u, got.Status.TargetSecret)
			}
			neverInjected(t, h)
			err := env.Client.Get(ctx, client.ObjectKey{Namespace: clientA, Name: name}, &corev1.Secret{})
			if !apierrors.IsNotFound(err) {
				t.Errorf("Secret %s/%s for a Habilitation with baseURL %s: %v, want NotFound", clientA, name, u, err)
			}
		})
	}

	// A Ready Habilitation edited to a foreign baseURL: its Secret is removed.
	t.Run("edited-to", func(t *testing.T) {
		tok, _ := mint(t, jetonv1alpha1.APIEntreprise)
		h := injectedHabilitation(t, "hburl-edit-"+sfx, clientA, tok, jetonv1alpha1.APIEntreprise)
		cur := &jetonv1alpha1.Habilitation{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(h), cur); err != nil {
			t.Fatal(err)
		}
		cur.Spec.BaseURL = "http://" + foreign.host
		if err := env.Client.Update(ctx, cur); err != nil {
			t.Fatal(err)
		}
		disallow(tok, clientA+"/"+h.Name)
		waitReady(t, cur, metav1.ConditionFalse, jetonv1alpha1.ReasonAPIHostNotAllowed, true)
		waitSecretGone(t, clientA, h.Name)
		// Put back an allowed base URL: served again (the refusal was about the host only).
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(h), cur); err != nil {
			t.Fatal(err)
		}
		cur.Spec.BaseURL = "https://staging.entreprise.api.gouv.fr"
		if err := env.Client.Update(ctx, cur); err != nil {
			t.Fatal(err)
		}
		registerToken("", false, tok, clientA+"/"+h.Name)
		waitReady(t, cur, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected, false)
		waitInjected(t, clientA, h.Name, tok)
	})

	if c, r := foreign.conns.Load(), foreign.requests.Load(); c != 0 || r != 0 {
		t.Errorf("the listener not in --allowed-api-hosts got %d connection(s) and %d request(s), want none", c, r)
	}
	checkGlobal(t)
}

func portOf(hostport string) string {
	_, port, _ := strings.Cut(hostport, ":")
	return port
}

// readyCond returns the Ready condition of a TechnicalToken (zero when absent).
func readyCond(tt *jetonv1alpha1.TechnicalToken) metav1.Condition {
	for _, c := range tt.Status.Conditions {
		if c.Type == jetonv1alpha1.ConditionReady {
			return c
		}
	}
	return metav1.Condition{}
}

// Finding 1, the same second. The rule is "the oldest binding wins", and creation
// timestamps have one-second precision: a TechnicalToken created in the same second as a
// client's Habilitation holding the same token (a jeton editor watching Habilitations and
// naming the new one's token Secret at once) has no known order with it, so both are
// refused (fail closed). The TechnicalToken (TokenConflict) is never probed: a client's
// token is never used as a technical token. The Habilitation (TechnicalTokenReuse) injects
// nothing, and what it had injected is removed: a token that may be a technical one never
// reaches a workload. Deleting the TechnicalToken ends the tie, and the client is served
// again. The TechnicalToken points at an allowed API host (the emulator): if it were probed,
// the client's token would reach it. Two ways in: racing (the TechnicalToken created right
// after the Habilitation, before or while jeton handles it), and after the Habilitation's
// token was injected (still within its creation second). A strictly older TechnicalToken
// still wins over a Habilitation (TechnicalTokenReuse); a strictly older Habilitation over a
// TechnicalToken is TestExfiltrationThroughTechnicalToken.
func TestTechnicalTokenInTheSameSecond(t *testing.T) {
	ctx := context.Background()
	sfx := suffix()
	clientA := "same-sec-" + sfx
	readyClient(t, clientA)
	probeCycles(t, 1) // the heartbeat exists, and is probed, before the race

	// received counts the requests carrying tok that any loopback server saw.
	received := func(tok string) (n int, where []string) {
		for name, s := range servers {
			if m := s.received(tok); m > 0 {
				n += m
				where = append(where, name)
			}
		}
		return n, where
	}

	for _, mode := range []string{"racing", "after-injection"} {
		t.Run(mode, func(t *testing.T) {
			var h *jetonv1alpha1.Habilitation
			var tt *jetonv1alpha1.TechnicalToken
			var tok string
			for attempt := range 5 {
				tok, _ = mint(t, jetonv1alpha1.APIEntreprise)
				name := fmt.Sprintf("same-sec-%s-%d-%s", mode[:1], attempt, sfx)
				h = newHabilitation(t, name, clientA, tok, habOptions{injected: true})
				if mode == "after-injection" {
					waitReady(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected, false)
					waitInjected(t, clientA, h.Name, tok)
				}
				// Another name than the Habilitation's: jeton currently does not re-evaluate
				// a Habilitation on the events of a TechnicalToken of the same namespace and
				// name (holdersOf leaves out the key of the object that changed, whatever its
				// kind): with one name, the Habilitation stays Injected through a tie, or
				// refused after the TechnicalToken is gone.
				tt = newTechnicalToken(t, fmt.Sprintf("same-sec-tt-%s-%d-%s", mode[:1], attempt, sfx), h.Spec.TokenSecretRef.Name, jetonv1alpha1.APIEntreprise, emuURL)
				if h.CreationTimestamp.Equal(&tt.CreationTimestamp) {
					break
				}
				// A second boundary fell between the two creates: the Habilitation is
				// strictly older and keeps its token, the TechnicalToken is refused. Again.
				t.Logf("attempt %d: the TechnicalToken was created at %s, the Habilitation at %s; again", attempt,
					tt.CreationTimestamp.UTC().Format(time.RFC3339), h.CreationTimestamp.UTC().Format(time.RFC3339))
				waitReady(t, tt, metav1.ConditionFalse, jetonv1alpha1.ReasonTokenConflict, true)
				waitReady(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected, false)
				deleteAndWait(t, tt)
				disallow(tok, clientA+"/"+name)
				deleteAndWait(t, h)
				waitSecretGone(t, clientA, name)
				h = nil
			}
			if h == nil {
				t.Fatal("could not create a Habilitation and a TechnicalToken in the same second in 5 attempts")
			}

			// Positive signs: both were judged, and refused, each naming the other; the
			// Secret the Habilitation injected before the TechnicalToken existed is gone.
			ttGot := waitReady(t, tt, metav1.ConditionFalse, jetonv1alpha1.ReasonTokenConflict, true).(*jetonv1alpha1.TechnicalToken)
			if msg := readyCond(ttGot).Message; !strings.Contains(msg, h.Name) {
				t.Errorf("TechnicalToken %s's TokenConflict message does not name Habilitation %s: %q", tt.Name, h.Name, redact(msg))
			}
			hGot := waitReady(t, h, metav1.ConditionFalse, jetonv1alpha1.ReasonTechnicalTokenReuse, true).(*jetonv1alpha1.Habilitation)
			if c := meta.FindStatusCondition(hGot.Status.Conditions, jetonv1alpha1.ConditionReady); !strings.Contains(c.Message, tt.Name) {
				t.Errorf("Habilitation %s's TechnicalTokenReuse message does not name TechnicalToken %s: %q", h.Name, tt.Name, redact(c.Message))
			}
			if hGot.Status.TargetSecret != nil {
				t.Errorf("Habilitation %s, refused, still records target Secret %v", h.Name, hGot.Status.TargetSecret)
			}
			waitSecretGone(t, clientA, h.Name)

			// The tie stands while the probe loop runs twice: nothing probed, nothing injected.
			probeCycles(t, 2)
			habilitationsQuiet(t)
			got, err := fresh(ctx, tt)
			if err != nil {
				t.Fatal(err)
			}
			if err := readyIs(got, metav1.ConditionFalse, jetonv1alpha1.ReasonTokenConflict, true); err != nil {
				t.Errorf("TechnicalToken %s, created in the same second as client %s's Habilitation and naming its token Secret: %s", tt.Name, clientA, redact(err.Error()))
			}
			if st := got.(*jetonv1alpha1.TechnicalToken).Status; st.LastProbeTime != nil || st.LastResult != nil {
				t.Errorf("TechnicalToken %s holding client %s's token was probed: lastProbeTime %v, lastResult %+v", tt.Name, clientA, st.LastProbeTime, st.LastResult)
			}
			if n, where := received(tok); n > 0 {
				t.Errorf("client %s's token (fingerprint %s) reached %v in %d request(s): a client's token was used as a technical token",
					clientA, token.Fingerprint(tok), where, n)
			}
			hNow, err := fresh(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			if err := readyIs(hNow, metav1.ConditionFalse, jetonv1alpha1.ReasonTechnicalTokenReuse, true); err != nil {
				t.Errorf("client %s's Habilitation %s, created in the same second as a TechnicalToken holding its token: %s", clientA, h.Name, redact(err.Error()))
			}
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: clientA, Name: h.Name}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
				t.Errorf("Secret %s/%s while the tie stands: %v, want NotFound (the token is injected)", clientA, h.Name, err)
			}

			// The TechnicalToken goes: the tie is over, the client is served again.
			deleteAndWait(t, tt)
			waitReady(t, h, metav1.ConditionTrue, jetonv1alpha1.ReasonInjected, false)
			waitInjected(t, clientA, h.Name, tok)
			probeCycles(t, 1)
			if n, where := received(tok); n > 0 {
				t.Errorf("client %s's token (fingerprint %s) reached %v in %d request(s)", clientA, token.Fingerprint(tok), where, n)
				// Reported here; not again by the global check of every later test.
				for _, s := range servers {
					s.forget(tok)
				}
			}
		})
	}

	// A strictly older TechnicalToken keeps its token: a Habilitation created in a later
	// second reading the same Secret is TechnicalTokenReuse and injects nothing.
	t.Run("older-technical-token", func(t *testing.T) {
		vendor, _ := vendorTechnicalToken(t, "same-sec-vendor-"+sfx, jetonv1alpha1.APIEntreprise, emuURL)
		waitReady(t, vendor, metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded, false)
		afterCreationSecond(t, vendor)
		late := &jetonv1alpha1.Habilitation{
			ObjectMeta: metav1.ObjectMeta{Namespace: credNS, Name: "same-sec-late-" + sfx},
			Spec: jetonv1alpha1.HabilitationSpec{
				ClientRef:      jetonv1alpha1.ClientReference{Name: clientA},
				API:            jetonv1alpha1.APIEntreprise,
				TokenSecretRef: vendor.Spec.TokenSecretRef,
			},
		}
		if err := env.Client.Create(ctx, late); err != nil {
			t.Fatal(err)
		}
		waitReady(t, late, metav1.ConditionFalse, jetonv1alpha1.ReasonTechnicalTokenReuse, true)
		habilitationsQuiet(t)
		neverInjected(t, late)
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: clientA, Name: late.Name}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
			t.Errorf("Secret %s/%s holding the vendor's technical token: %v, want NotFound", clientA, late.Name, err)
		}
		waitReady(t, vendor, metav1.ConditionTrue, jetonv1alpha1.ReasonProbeSucceeded, false)
		deleteAndWait(t, late)
		deleteAndWait(t, vendor)
	})
	checkGlobal(t)
}
