package attack

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/token"
)

// dnSpellings returns other spellings of a Démarches Numériques token (base64url of
// "<uuid>;<secret>") that the API takes for the same token: padded, standard alphabet,
// upper-case UUID. Spellings equal to the token itself are left out: the emulator's tokens
// (hex UUID and secret) never hold '-' or '_', so their standard-alphabet spelling is the
// token itself.
func dnSpellings(t *testing.T, tok string) map[string]string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		t.Fatalf("the Démarches Numériques token is not unpadded base64url: %v", err)
	}
	id, secret, ok := strings.Cut(string(raw), ";")
	if !ok {
		t.Fatal("the Démarches Numériques token has no ';'")
	}
	upper := []byte(strings.ToUpper(id) + ";" + secret)
	all := map[string]string{
		"padded":            base64.URLEncoding.EncodeToString(raw),
		"standard-alphabet": base64.RawStdEncoding.EncodeToString(raw),
		"standard-padded":   base64.StdEncoding.EncodeToString(raw),
		"upper-case-uuid":   base64.RawURLEncoding.EncodeToString(upper),
		"upper-uuid-padded": base64.StdEncoding.EncodeToString(upper),
	}
	out := map[string]string{}
	seen := map[string]bool{tok: true}
	for _, name := range []string{"padded", "upper-case-uuid", "upper-uuid-padded", "standard-alphabet", "standard-padded"} {
		if v := all[name]; !seen[v] {
			seen[v] = true
			out[name] = v
		}
	}
	return out
}

// syntheticDNToken returns a token in the Démarches Numériques format whose base64url
// spelling holds '-' or '_' (its secret has bytes the emulator's hex secrets never have),
// so that its standard-alphabet spelling differs. Habilitations never send their token
// anywhere, so it needs no emulator behind it.
func syntheticDNToken() string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789~?>"
	for {
		u := make([]byte, 16)
		for i := range u {
			u[i] = byte(rng.IntN(256))
		}
		id := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
		secret := make([]byte, 40)
		for i := range secret {
			secret[i] = chars[rng.IntN(len(chars))]
		}
		tok := base64.RawURLEncoding.EncodeToString([]byte(id + ";" + string(secret)))
		if strings.Contains(tok, "-") && strings.Contains(tok, "_") {
			return tok
		}
	}
}

// jwtSpellings returns other spellings of a JWT: segments padded, or in the standard
// base64 alphabet.
func jwtSpellings(tok string) map[string]string {
	segs := strings.Split(tok, ".")
	pad := func(s string) string {
		if r := len(s) % 4; r != 0 {
			s += strings.Repeat("=", 4-r)
		}
		return s
	}
	std := func(s string) string { return strings.NewReplacer("-", "+", "_", "/").Replace(s) }
	var padded, stdSegs []string
	for _, s := range segs {
		padded = append(padded, pad(s))
		stdSegs = append(stdSegs, std(s))
	}
	return map[string]string{
		"padded-segments":   strings.Join(padded, "."),
		"standard-alphabet": strings.Join(stdSegs, "."),
	}
}

// Finding 5. A jeton editor binds client A's token to client B (or to a TechnicalToken)
// under another spelling of the same token, hoping that a different string makes a
// different fingerprint. Every spelling is one token: B's Habilitations are refused with
// TokenConflict and nothing is injected for B; the TechnicalToken is refused and never
// probed; A keeps being served.
func TestOneTokenTwoSpellings(t *testing.T) {
	ctx := context.Background()
	sfx := suffix()
	clientA, clientB := "spell-a-"+sfx, "spell-b-"+sfx
	readyClient(t, clientA)
	readyClient(t, clientB)

	dnTok, _ := mint(t, jetonv1alpha1.DemarchesNumeriques)
	synthTok := syntheticDNToken()
	jwtTok, _ := mint(t, jetonv1alpha1.APIEntreprise)
	for !strings.ContainsAny(strings.SplitN(jwtTok, ".", 2)[1], "-_") {
		jwtTok, _ = mint(t, jetonv1alpha1.APIEntreprise)
	}

	for _, c := range []struct {
		short     string
		api       jetonv1alpha1.API
		tok       string
		spellings map[string]string
		ttWith    string // the spelling a TechnicalToken holds
	}{
		{"dn", jetonv1alpha1.DemarchesNumeriques, dnTok, dnSpellings(t, dnTok), "upper-uuid-padded"},
		{"dnstd", jetonv1alpha1.DemarchesNumeriques, synthTok, dnSpellings(t, synthTok), "standard-alphabet"},
		{"jwt", jetonv1alpha1.APIEntreprise, jwtTok, jwtSpellings(jwtTok), "padded-segments"},
	} {
		t.Run(c.short, func(t *testing.T) {
			short := c.short
			hA := injectedHabilitation(t, "spell-a-"+short+"-"+sfx, clientA, c.tok, c.api)
			injected := waitInjected(t, clientA, hA.Name, c.tok)
			fp := token.Fingerprint(c.tok)
			if _, ok := c.spellings[c.ttWith]; !ok {
				t.Fatalf("no spelling %s", c.ttWith)
			}

			// Client B's Habilitations come in a later second: created in A's, they would tie
			// with it and every one would be refused (no order within a second).
			afterCreationSecond(t, hA)
			for name, other := range c.spellings {
				if other == c.tok {
					t.Fatalf("spelling %s is the token itself", name)
				}
				if got := token.Fingerprint(other); got != fp {
					t.Errorf("spelling %s has fingerprint %s, the token %s: the canonical form misses it", name, got, fp)
				}
				// Client B, created later, holds this spelling.
				hB := newHabilitation(t, "spell-b-"+short+"-"+name+"-"+sfx, clientB, other,
					habOptions{api: c.api, label: "client " + clientA + "'s token, respelled (" + name + ")"})
				t.Run("Habilitation/"+name, func(t *testing.T) {
					want := jetonv1alpha1.ReasonTokenConflict
					got := poll2(t, hB, want, jetonv1alpha1.ReasonInvalidToken, c.api == jetonv1alpha1.APIEntreprise && name == "standard-alphabet")
					if got.Status.TargetSecret != nil {
						t.Errorf("Habilitation %s records target Secret %v", hB.Name, got.Status.TargetSecret)
					}
					neverInjected(t, hB)
				})
			}
			// A TechnicalToken holding yet another spelling, pointed at the allowed emulator,
			// created later than A's Habilitation (see TestTechnicalTokenInTheSameSecond).
			afterCreationSecond(t, hA)
			name, other := c.ttWith, c.spellings[c.ttWith]
			secret := "spell-tt-" + short + "-" + sfx + "-token"
			registerToken("", false, other, credNS+"/"+secret)
			createSecret(t, credNS, secret, other)
			tt := newTechnicalToken(t, "spell-tt-"+short+"-"+sfx, secret, c.api, emuURL)
			t.Run("TechnicalToken/"+name, func(t *testing.T) {
				got := waitReady(t, tt, metav1.ConditionFalse, jetonv1alpha1.ReasonTokenConflict, true).(*jetonv1alpha1.TechnicalToken)
				if got.Status.LastProbeTime != nil || got.Status.LastResult != nil {
					t.Errorf("TechnicalToken %s holding client %s's token (%s) was probed: lastResult %+v", tt.Name, clientA, name, got.Status.LastResult)
				}
				probeCycles(t, 2)
				if n := servers["emulator"].received(c.tok); n != 0 {
					t.Errorf("the emulator received client %s's token (fingerprint %s) in %d request(s)", clientA, fp, n)
				}
			})
			deleteAndWait(t, tt)

			// Nothing was injected for B, and A was never disturbed.
			names, err := secretNames(ctx, clientB)
			if err != nil {
				t.Fatal(err)
			}
			if len(names) > 0 {
				t.Errorf("Secrets %v injected into client %s's namespace", names, clientB)
			}
			clientStillServed(t, hA, c.tok, injected)
		})
	}
	checkGlobal(t)
}

// poll2 waits until h is Stalled with reason want; when alsoOK, reason alt (another
// refusal) is accepted too and logged.
func poll2(t *testing.T, h *jetonv1alpha1.Habilitation, want, alt string, alsoOK bool) *jetonv1alpha1.Habilitation {
	t.Helper()
	var got *jetonv1alpha1.Habilitation
	waitFor(t, waitTimeout, fmt.Sprintf("Habilitation %s refused (%s)", h.Name, want), func(ctx context.Context) error {
		o, err := fresh(ctx, h)
		if err != nil {
			return err
		}
		got = o.(*jetonv1alpha1.Habilitation)
		err = readyIs(got, metav1.ConditionFalse, want, true)
		if err != nil && alsoOK && readyIs(got, metav1.ConditionFalse, alt, true) == nil {
			t.Logf("Habilitation %s refused with %s rather than %s: the spelling is not accepted as a token at all", h.Name, alt, want)
			return nil
		}
		return err
	})
	return got
}
