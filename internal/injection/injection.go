// Package injection holds the pure logic of injecting a Habilitation's token into its
// client's namespace: the desired target Secret, whether an existing Secret already holds
// it, which workloads use a Secret, the restart annotation, and "one token, one client"
// arbitration. Nothing here talks to the API server, so all of it is table-tested.
package injection

import (
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// Default key names of the injected Secret, when spec.target.keys leaves them empty (the
// API server defaults them, but objects built in memory may not be defaulted).
const (
	DefaultTokenKey     = "TOKEN"
	DefaultRecipientKey = "RECIPIENT"
	DefaultBaseURLKey   = "BASE_URL"
)

// Keys returns the three key names of the injected Secret, defaults applied.
func Keys(h *jetonv1alpha1.Habilitation) (token, recipient, baseURL string) {
	k := h.Spec.Target.Keys
	return orDefault(k.Token, DefaultTokenKey), orDefault(k.Recipient, DefaultRecipientKey), orDefault(k.BaseURL, DefaultBaseURLKey)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Labels are the labels of every Secret injected for h. They identify the Habilitation the
// Secret comes from, so a managed Secret maps back to it (drift, cleanup).
func Labels(h *jetonv1alpha1.Habilitation) map[string]string {
	return map[string]string{
		jetonv1alpha1.LabelManagedBy:             jetonv1alpha1.ManagedByValue,
		jetonv1alpha1.LabelClient:                h.Spec.ClientRef.Name,
		jetonv1alpha1.LabelHabilitation:          h.Name,
		jetonv1alpha1.LabelHabilitationNamespace: h.Namespace,
	}
}

// DesiredSecret is the Secret jeton writes into the client namespace for h: the normalized
// token, the client's SIRET as recipient and the API base URL. Labels and annotations are
// jeton's own only: nothing is copied from the source Secret, so GitOps tracking labels
// (argocd.argoproj.io/instance, kustomize.toolkit.fluxcd.io/*) never leak into the client
// namespace and make a GitOps tool prune or adopt it.
func DesiredSecret(h *jetonv1alpha1.Habilitation, c *jetonv1alpha1.PublicClient, token, fingerprint, baseURL string) *corev1.Secret {
	tokenKey, recipientKey, baseURLKey := Keys(h)
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      h.TargetSecretName(),
			Namespace: c.TargetNamespace(),
			Labels:    Labels(h),
			Annotations: map[string]string{
				jetonv1alpha1.AnnotationTokenFingerprint: fingerprint,
			},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			tokenKey:     []byte(token),
			recipientKey: []byte(c.Spec.SIRET),
			baseURLKey:   []byte(baseURL),
		},
	}
}

// ManagedBy reports whether s is h's injected Secret, which jeton may overwrite. A Secret
// that is not is someone else's and is left alone (TargetSecretConflict). It is h's when it
// carries a jeton mark (managed-by=jeton or a jeton.dev/habilitation* label) and no label
// that names another Habilitation or client. So a Secret whose jeton labels were partly
// removed by hand is still recognised, and restored, instead of being orphaned.
func ManagedBy(s *corev1.Secret, h *jetonv1alpha1.Habilitation) bool {
	l := s.GetLabels()
	hab, habNS, cl := l[jetonv1alpha1.LabelHabilitation], l[jetonv1alpha1.LabelHabilitationNamespace], l[jetonv1alpha1.LabelClient]
	if (hab != "" && hab != h.Name) || (habNS != "" && habNS != h.Namespace) || (cl != "" && cl != h.Spec.ClientRef.Name) {
		return false
	}
	return l[jetonv1alpha1.LabelManagedBy] == jetonv1alpha1.ManagedByValue || hab != "" || habNS != ""
}

// UpToDate reports whether existing already holds what desired says: same type, exactly the
// same data, and desired's labels and annotations present with the same values (others'
// labels and annotations are left alone). When it does, jeton writes nothing, so a resync
// in steady state makes no write at all.
func UpToDate(existing, desired *corev1.Secret) bool {
	if existing.Type != desired.Type || !maps.EqualFunc(existing.Data, desired.Data, func(a, b []byte) bool { return string(a) == string(b) }) {
		return false
	}
	return contains(existing.Labels, desired.Labels) && contains(existing.Annotations, desired.Annotations)
}

func contains(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ReferencesSecret reports whether a pod spec uses the Secret name: env valueFrom.secretKeyRef,
// envFrom.secretRef, secret volumes and projected volume sources, in containers and init
// containers (sidecars are init containers). Ephemeral containers cannot be in a template.
func ReferencesSecret(spec *corev1.PodSpec, name string) bool {
	for _, v := range spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == name {
			return true
		}
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.Secret != nil && src.Secret.Name == name {
					return true
				}
			}
		}
	}
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range cs {
			for _, e := range c.EnvFrom {
				if e.SecretRef != nil && e.SecretRef.Name == name {
					return true
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == name {
					return true
				}
			}
		}
	}
	return false
}

// RestartedFor returns the value of the jeton.dev/restarted-for pod-template annotation once
// the entry of secretName holds fingerprint: sorted, comma-separated secretName=fingerprint
// entries, the other entries kept as they are (a workload may use several jeton Secrets).
// It is deterministic, so applying it again changes nothing and restarts nothing: callers
// patch only when the result differs from current.
func RestartedFor(current, secretName, fingerprint string) string {
	entries := map[string]string{}
	for _, e := range strings.Split(current, ",") {
		name, fp, ok := strings.Cut(strings.TrimSpace(e), "=")
		if !ok || name == "" {
			continue // tolerate a hand-edited or empty value
		}
		entries[name] = fp
	}
	entries[secretName] = fingerprint
	out := make([]string, 0, len(entries))
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		out = append(out, name+"="+entries[name])
	}
	return strings.Join(out, ",")
}

// Kind of a token binding.
type Kind int

const (
	KindHabilitation Kind = iota
	KindTechnicalToken
)

// Binding is one resource holding a token: a Habilitation (bound to a client) or a
// TechnicalToken (bound to nobody, never injectable).
type Binding struct {
	Kind      Kind
	Namespace string
	Name      string
	// Client is the PublicClient of a Habilitation; empty for a TechnicalToken.
	Client  string
	Created time.Time
}

// olderThan orders bindings by creation time, then namespace/name, so every reconcile of
// every Habilitation agrees on who came first.
func (b Binding) olderThan(o Binding) bool {
	if !b.Created.Equal(o.Created) {
		return b.Created.Before(o.Created)
	}
	if b.Namespace != o.Namespace {
		return b.Namespace < o.Namespace
	}
	return b.Name < o.Name
}

// Outcome of "one token, one client" arbitration.
type Outcome int

const (
	// Allowed: the token is this client's own.
	Allowed Outcome = iota
	// TechnicalTokenReuse: the token is a TechnicalToken's; it must never reach a workload.
	TechnicalTokenReuse
	// TokenConflict: an older Habilitation of another client holds the same token.
	TokenConflict
)

// Verdict is the result of Arbitrate; With is the binding that caused a refusal.
type Verdict struct {
	Outcome Outcome
	With    Binding
}

// Arbitrate decides whether self may inject a token that others (every other binding whose
// token has the same fingerprint) also hold. A TechnicalToken always wins. Otherwise the
// token belongs to the client of the oldest Habilitation holding it: every Habilitation of
// that client may use it (two habilitations of one client sharing a token leak nothing to
// another client), every Habilitation of any other client is refused. Deciding by the
// oldest binding, not by "who injected first", means two new Habilitations racing never let
// the newer one inject, even briefly. The With binding of a refusal is the TechnicalToken
// (or the oldest Habilitation of the owning client), deterministic for messages.
func Arbitrate(self Binding, others []Binding) Verdict {
	var tt *Binding
	oldest := self
	for i := range others {
		o := others[i]
		if o.Kind == KindTechnicalToken {
			if tt == nil || o.olderThan(*tt) {
				tt = &others[i]
			}
			continue
		}
		if o.olderThan(oldest) {
			oldest = o
		}
	}
	switch {
	case tt != nil:
		return Verdict{Outcome: TechnicalTokenReuse, With: *tt}
	case oldest.Client != self.Client:
		return Verdict{Outcome: TokenConflict, With: oldest}
	default:
		return Verdict{Outcome: Allowed}
	}
}
