package tokensource

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
	"github.com/jeton-dev/jeton/internal/token"
)

// apiEntrepriseToken is a well-formed API Entreprise token expiring at exp.
func apiEntrepriseToken(t *testing.T, exp time.Time) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"uid": "0123456789ab", "jti": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "sub": "test",
		"scopes": []string{"unites_legales_etablissements_siege"},
		"iat":    exp.Add(-365 * 24 * time.Hour).Unix(), "exp": exp.Unix(), "version": "1.0",
	}).SignedString([]byte("test key, not a secret"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRead(t *testing.T) {
	exp := time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)
	tok := apiEntrepriseToken(t, exp)
	secret := func(labels map[string]string, data map[string]string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "jeton-system", Name: "src", Labels: labels}, Data: map[string][]byte{}}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
		return s
	}
	habilitation := Reader{Namespace: "jeton-system", Ref: jetonv1alpha1.SecretKeyReference{Name: "src"}, API: jetonv1alpha1.APIEntreprise,
		Client: "trifouilly", Noun: "token", Issued: "the token issued for this habilitation"}
	technical := habilitation
	technical.Client, technical.Noun, technical.Issued = "", "technical token", "the technical token issued for APIEntreprise"
	otherKey := habilitation
	otherKey.Ref.Key = "TOKEN"

	tests := []struct {
		name   string
		reader Reader
		src    *corev1.Secret
		// want is the verdict's state and reason; "" when the token is read.
		wantState  conditions.State
		wantReason string
		wantInMsg  string
	}{
		{"read", habilitation, secret(nil, map[string]string{"token": tok}), conditions.Ready, "", ""},
		{"read with spaces and a newline around it", habilitation, secret(nil, map[string]string{"token": " " + tok + "\n"}), conditions.Ready, "", ""},
		{"read under spec key", otherKey, secret(nil, map[string]string{"TOKEN": tok}), conditions.Ready, "", ""},
		{"labelled for its own client", habilitation, secret(map[string]string{jetonv1alpha1.LabelClient: "trifouilly"}, map[string]string{"token": tok}), conditions.Ready, "", ""},
		{"Secret missing: SecretNotFound, not stalled", habilitation, nil, conditions.NotReady, jetonv1alpha1.ReasonSecretNotFound, `under key "token"`},
		{"labelled for another client: SecretClientMismatch", habilitation, secret(map[string]string{jetonv1alpha1.LabelClient: "autre"}, map[string]string{"token": tok}), conditions.Stalled, jetonv1alpha1.ReasonSecretClientMismatch, `client "autre"'s`},
		{"labelled for a client, read as a technical token: SecretClientMismatch", technical, secret(map[string]string{jetonv1alpha1.LabelClient: "trifouilly"}, map[string]string{"token": tok}), conditions.Stalled, jetonv1alpha1.ReasonSecretClientMismatch, "never used as a technical token"},
		{"key missing: SecretKeyNotFound, naming the keys there", otherKey, secret(nil, map[string]string{"token": tok, "other": "x"}), conditions.Stalled, jetonv1alpha1.ReasonSecretKeyNotFound, "keys: other, token"},
		{"empty value: InvalidToken", habilitation, secret(nil, map[string]string{"token": ""}), conditions.Stalled, jetonv1alpha1.ReasonInvalidToken, "the token issued for this habilitation"},
		{"not a token of that API: InvalidToken", habilitation, secret(nil, map[string]string{"token": "hunter2-not-a-jwt"}), conditions.Stalled, jetonv1alpha1.ReasonInvalidToken, "does not hold a valid token: invalid APIEntreprise token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, verdict := tt.reader.Read(tt.src)
			if tt.wantReason == "" {
				if verdict != nil {
					t.Fatalf("refused: %+v", verdict)
				}
				if got.Value != tok || got.Fingerprint != token.Fingerprint(tok) || got.Info.ExpiresAt == nil || !got.Info.ExpiresAt.Equal(exp) {
					t.Errorf("read fingerprint %s, expiry %v; want the token's", got.Fingerprint, got.Info.ExpiresAt)
				}
				return
			}
			if verdict == nil {
				t.Fatalf("read, want %s", tt.wantReason)
			}
			if verdict.State != tt.wantState || verdict.Reason != tt.wantReason || !verdict.Warning || !strings.Contains(verdict.Message, tt.wantInMsg) {
				t.Errorf("verdict %+v; want state %d, reason %s, a warning, a message with %q", verdict, tt.wantState, tt.wantReason, tt.wantInMsg)
			}
			if got.Value != "" || got.Fingerprint != "" {
				t.Errorf("a refused token is returned anyway")
			}
			for _, secretValue := range []string{tok, "hunter2"} {
				if strings.Contains(verdict.Message, secretValue) {
					t.Errorf("the message quotes the Secret's value: %s", verdict.Message)
				}
			}
		})
	}
}

func TestStatus(t *testing.T) {
	issued := time.Date(2026, 6, 1, 12, 0, 0, 500, time.FixedZone("CEST", 2*3600))
	carried := time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)
	declared := metav1.NewTime(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	// Démarches Numériques: the token works through 2027-01-01, Paris time (UTC+1 in winter).
	dnEnd := time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
	tests := []struct {
		name     string
		api      jetonv1alpha1.API
		info     token.Info
		declared *metav1.Time
		want     *time.Time
	}{
		{"expiry carried by the token", jetonv1alpha1.APIEntreprise, token.Info{ExpiresAt: &carried}, &declared, &carried},
		{"none carried: the declared one", jetonv1alpha1.APIParticulier, token.Info{}, &declared, &declared.Time},
		{"Démarches Numériques: the declared date, through that whole day in Paris", jetonv1alpha1.DemarchesNumeriques, token.Info{}, &declared, &dnEnd},
		{"none at all", jetonv1alpha1.DemarchesNumeriques, token.Info{}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.info.ID, tt.info.IssuedAt, tt.info.Scopes = "id-1", &issued, []string{"a"}
			st := Status(Token{Value: "never recorded", Fingerprint: "fp", Info: tt.info}, tt.api, tt.declared)
			if st.TokenFingerprint != "fp" || st.TokenID != "id-1" || len(st.Scopes) != 1 {
				t.Errorf("status %+v", st)
			}
			if got := st.IssuedAt; got == nil || got.Location() != time.UTC || got.Nanosecond() != 0 {
				t.Errorf("issuedAt %v, want UTC truncated to the second", got)
			}
			switch {
			case tt.want == nil && st.ExpiresAt != nil, tt.want != nil && (st.ExpiresAt == nil || !st.ExpiresAt.Time.Equal(*tt.want)):
				t.Errorf("expiresAt %v, want %v", st.ExpiresAt, tt.want)
			}
		})
	}
}

// A Démarches Numériques expiry is a date: the token stops at the next midnight in Paris,
// summer or winter, whatever the time of day written in spec.expiresAt.
func TestDNExpiry(t *testing.T) {
	for _, tc := range []struct {
		declared time.Time
		want     time.Time
	}{
		{time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 15, 23, 0, 0, 0, time.UTC)},   // CET
		{time.Date(2027, 1, 15, 18, 30, 0, 0, time.UTC), time.Date(2027, 1, 15, 23, 0, 0, 0, time.UTC)}, // the date counts
		{time.Date(2027, 7, 14, 0, 0, 0, 0, time.UTC), time.Date(2027, 7, 14, 22, 0, 0, 0, time.UTC)},   // CEST
	} {
		if got := DNExpiry(tc.declared); !got.Equal(tc.want) {
			t.Errorf("DNExpiry(%s) = %s, want %s", tc.declared, got.UTC(), tc.want)
		}
	}
}
