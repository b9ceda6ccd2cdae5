// Package cli is the logic of the kubectl-jeton plugin, without an API server: the vendor's
// register of tokens (inventory), the fleet's urgency report (status), the references of a
// pod spec to a Secret (who-uses), offline token inspection, and their renderings. The
// commands in cmd/kubectl-jeton fetch objects and hand them here.
//
// Nothing here ever sees a token except Inspect, which returns only what the token package
// decodes (never the token) and its fingerprint.
package cli

import (
	"cmp"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// Kinds as printed.
const (
	KindHabilitation   = "Habilitation"
	KindTechnicalToken = "TechnicalToken"
	KindPublicClient   = "PublicClient"
)

// Fleet is what the plugin reads from the cluster: jeton's resources, never a Secret.
type Fleet struct {
	Clients         []jetonv1alpha1.PublicClient
	Habilitations   []jetonv1alpha1.Habilitation
	TechnicalTokens []jetonv1alpha1.TechnicalToken
}

// Row is one line of the register: one Habilitation (a client's token) or one
// TechnicalToken (the vendor's). It holds what status records about the token, never the
// token.
type Row struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Client is the PublicClient's name; ClientDisplayName and SIRET come from it (empty
	// when it does not exist). Empty for a TechnicalToken.
	Client            string     `json:"client,omitempty"`
	ClientDisplayName string     `json:"clientDisplayName,omitempty"`
	SIRET             string     `json:"siret,omitempty"`
	API               string     `json:"api"`
	Environment       string     `json:"environment"`
	DatapassID        string     `json:"datapassID,omitempty"`
	TokenID           string     `json:"tokenID,omitempty"`
	Fingerprint       string     `json:"fingerprint,omitempty"`
	Scopes            []string   `json:"scopes,omitempty"`
	IssuedAt          *time.Time `json:"issuedAt,omitempty"`
	ExpiresAt         *time.Time `json:"expiresAt,omitempty"`
	// DaysLeft is the whole days until ExpiresAt (negative once expired); nil when the
	// expiry is unknown.
	DaysLeft *int `json:"daysLeft,omitempty"`
	// Ready is the Ready condition's status for the current generation ("True", "False",
	// "Unknown"), or "" when the operator has not reported on it.
	Ready  string `json:"ready"`
	Reason string `json:"reason,omitempty"`
	// InjectedSecret is namespace/name of the Secret jeton wrote (Habilitations only, and
	// only while it is injected).
	InjectedSecret string `json:"injectedSecret,omitempty"`
}

// Inventory returns the register: one Row per Habilitation, sorted by client, API,
// environment and name, then one per TechnicalToken, sorted by API, environment and name.
func Inventory(f Fleet, now time.Time) []Row {
	clients := map[string]*jetonv1alpha1.PublicClient{}
	for i := range f.Clients {
		clients[f.Clients[i].Name] = &f.Clients[i]
	}
	rows := make([]Row, 0, len(f.Habilitations)+len(f.TechnicalTokens))
	for i := range f.Habilitations {
		h := &f.Habilitations[i]
		r := Row{
			Kind: KindHabilitation, Namespace: h.Namespace, Name: h.Name,
			Client: h.Spec.ClientRef.Name, API: string(h.Spec.API), Environment: environment(h.Spec.Environment),
			DatapassID: h.Spec.DatapassID,
		}
		if c := clients[r.Client]; c != nil {
			r.ClientDisplayName, r.SIRET = c.Spec.DisplayName, c.Spec.SIRET
		}
		r.setToken(h.Status.TokenStatus, now)
		r.Ready, r.Reason = readyOf(h.Status.Conditions, h.Generation)
		if ts := h.Status.TargetSecret; ts != nil {
			r.InjectedSecret = ts.Namespace + "/" + ts.Name
		}
		rows = append(rows, r)
	}
	for i := range f.TechnicalTokens {
		tt := &f.TechnicalTokens[i]
		r := Row{Kind: KindTechnicalToken, Namespace: tt.Namespace, Name: tt.Name,
			API: string(tt.Spec.API), Environment: environment(tt.Spec.Environment)}
		r.setToken(tt.Status.TokenStatus, now)
		r.Ready, r.Reason = readyOf(tt.Status.Conditions, tt.Generation)
		rows = append(rows, r)
	}
	slices.SortStableFunc(rows, func(a, b Row) int {
		return cmp.Or(
			cmp.Compare(kindOrder(a.Kind), kindOrder(b.Kind)),
			cmp.Compare(a.Client, b.Client),
			cmp.Compare(a.API, b.API),
			cmp.Compare(a.Environment, b.Environment),
			cmp.Compare(a.Namespace, b.Namespace),
			cmp.Compare(a.Name, b.Name),
		)
	})
	return rows
}

func kindOrder(kind string) int {
	if kind == KindHabilitation {
		return 0
	}
	return 1
}

func (r *Row) setToken(ts jetonv1alpha1.TokenStatus, now time.Time) {
	r.TokenID, r.Fingerprint, r.Scopes = ts.TokenID, ts.TokenFingerprint, ts.Scopes
	r.IssuedAt = timeOf(ts.IssuedAt)
	r.ExpiresAt = timeOf(ts.ExpiresAt)
	if r.ExpiresAt != nil {
		d := DaysLeft(now, *r.ExpiresAt)
		r.DaysLeft = &d
	}
}

// DaysLeft is the number of whole days from now until t, negative once t has passed: 0
// within the last day before t and the first day after it (whether it has passed is a
// comparison of times, not of days).
func DaysLeft(now, t time.Time) int {
	return int(t.Sub(now) / (24 * time.Hour))
}

// environment is the spec's environment, or the CRD default for objects written without it.
func environment(e jetonv1alpha1.Environment) string {
	return string(cmp.Or(e, jetonv1alpha1.EnvironmentProduction))
}

func timeOf(t *metav1.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// readyOf returns the Ready condition's status and reason when it describes the current
// generation; "" otherwise (the operator has not reported on this spec yet).
func readyOf(conds []metav1.Condition, generation int64) (status, reason string) {
	c := meta.FindStatusCondition(conds, jetonv1alpha1.ConditionReady)
	if c == nil || c.ObservedGeneration < generation {
		return "", ""
	}
	return string(c.Status), c.Reason
}
