// Package injection holds the pure logic of injecting a Habilitation's token into its
// client's namespace: the desired target Secret, whether an existing Secret already holds
// it, which workloads use a Secret, the restart annotation, and "one token, one client"
// arbitration. Nothing here talks to the API server, so all of it is table-tested.
package injection

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/ownership"
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

// SecretProof is the owner proof jeton writes on a Secret it injects: an HMAC over where
// the Secret is and which Habilitation and client it serves (its labels). A Secret anyone
// else labels as jeton's has none, and a proof copied from another Secret does not match:
// jeton deletes only Secrets that carry a valid one (or that its own records name).
func SecretProof(key []byte, s *corev1.Secret) string {
	l := s.Labels
	return ownership.Proof(key, "secret", s.Namespace, s.Name,
		l[jetonv1alpha1.LabelHabilitationNamespace], l[jetonv1alpha1.LabelHabilitation], l[jetonv1alpha1.LabelClient])
}

// WrittenByJeton reports whether s carries the owner proof of SecretProof for its own
// name and labels.
func WrittenByJeton(key []byte, s *corev1.Secret) bool {
	l := s.Labels
	return ownership.Valid(key, s.Annotations[jetonv1alpha1.AnnotationOwnerProof], "secret", s.Namespace, s.Name,
		l[jetonv1alpha1.LabelHabilitationNamespace], l[jetonv1alpha1.LabelHabilitation], l[jetonv1alpha1.LabelClient])
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
//
// existing may be in the digest form of Slim (as the cache holds it): its data then
// compares by digest.
func UpToDate(existing, desired *corev1.Secret) bool {
	sameData := maps.EqualFunc(existing.Data, desired.Data, bytes.Equal)
	if d, ok := existing.Data[DigestKey]; ok && len(existing.Data) == 1 {
		sameData = bytes.Equal(d, DataDigest(desired.Data))
	}
	if existing.Type != desired.Type || !sameData {
		return false
	}
	return contains(existing.Labels, desired.Labels) && contains(existing.Annotations, desired.Annotations)
}

// DigestKey is the single data key of a Secret in the digest form of Slim. It holds a
// '/', which no real Secret key may, so it is never mistaken for real data.
const DigestKey = "jeton.dev/sha256"

// DataDigest is the SHA-256 of a Secret's data (keys sorted, lengths prefixed).
func DataDigest(data map[string][]byte) []byte {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(data)) {
		_, _ = fmt.Fprintf(h, "%d:%s;%d:", len(k), k, len(data[k]))
		h.Write(data[k])
	}
	return h.Sum(nil)
}

// maxSlimValue bounds the label and annotation values Slim keeps (a fingerprint is 16
// characters; label values are at most 63 by API validation).
const maxSlimValue = 64

// Slim returns what jeton keeps in memory of a Secret outside the credentials namespaces,
// which anyone able to create Secrets may have labelled as jeton's: identity and jeton's own
// labels and annotation, and its data as a digest (enough to tell whether an injected
// Secret holds what jeton wrote). Whatever the Secret's size, it costs a few hundred bytes.
//
// Slim is idempotent, as informer transforms must be: the initial list may pass an object
// through it twice. Its form is recognised by its one DigestKey entry, a key no real
// Secret can have.
func Slim(s *corev1.Secret) *corev1.Secret {
	if _, ok := s.Data[DigestKey]; ok && len(s.Data) == 1 {
		return s
	}
	keep := func(have map[string]string, keys ...string) map[string]string {
		var out map[string]string
		for _, k := range keys {
			if v, ok := have[k]; ok && len(v) <= maxSlimValue {
				if out == nil {
					out = map[string]string{}
				}
				out[k] = v
			}
		}
		return out
	}
	typ := s.Type
	if len(typ) > maxSlimValue {
		typ = "" // compares unequal to what jeton writes: the Secret is read and fixed
	}
	return &corev1.Secret{
		TypeMeta: s.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:              s.Name,
			Namespace:         s.Namespace,
			UID:               s.UID,
			ResourceVersion:   s.ResourceVersion,
			CreationTimestamp: s.CreationTimestamp,
			DeletionTimestamp: s.DeletionTimestamp,
			Labels: keep(s.Labels, jetonv1alpha1.LabelManagedBy, jetonv1alpha1.LabelClient,
				jetonv1alpha1.LabelHabilitation, jetonv1alpha1.LabelHabilitationNamespace),
			Annotations: keep(s.Annotations, jetonv1alpha1.AnnotationTokenFingerprint, jetonv1alpha1.AnnotationOwnerProof),
		},
		Type: typ,
		Data: map[string][]byte{DigestKey: DataDigest(s.Data)},
	}
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
//
// The current value is the tenant's to write: only entries shaped like jeton's own (a Secret
// name, a short fingerprint) are kept, at most maxRestartedForEntries of them, so that a
// tenant's huge annotation on many workloads cannot grow what jeton holds during a rotation.
func RestartedFor(current, secretName, fingerprint string) string {
	entries := map[string]string{}
	for _, e := range strings.SplitN(current, ",", maxRestartedForEntries+1) {
		name, fp, ok := strings.Cut(strings.TrimSpace(e), "=")
		if !ok || !restartedForEntry(name, fp) || len(entries) == maxRestartedForEntries {
			continue // tolerate a hand-edited or empty value; drop what jeton never writes
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

// maxRestartedForEntries bounds the entries kept from a restarted-for annotation: a workload
// uses a few of jeton's Secrets, never this many.
const maxRestartedForEntries = 16

// restartedForEntry reports whether name=fp looks like an entry jeton writes: a Secret name
// (a DNS subdomain, at most 253 characters) and a fingerprint (16 hex characters; up to 64
// letters and digits are tolerated).
func restartedForEntry(name, fp string) bool {
	if name == "" || len(name) > 253 || fp == "" || len(fp) > 64 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	for _, r := range fp {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// RestartFor returns the restarted-for annotation a workload's pod template must carry
// once it restarts for the rotated Secrets (name → fingerprint) it uses, and which of them
// it uses, sorted. One value for all of them: a workload using several Secrets rotated
// together restarts once, not once per Secret. A workload that uses none of them keeps
// current, as does one that already restarted for them (after a crash, a resync).
func RestartFor(current string, spec *corev1.PodSpec, rotated map[string]string) (next string, uses []string) {
	next = current
	for _, name := range slices.Sorted(maps.Keys(rotated)) {
		if ReferencesSecret(spec, name) {
			uses = append(uses, name)
			next = RestartedFor(next, name, rotated[name])
		}
	}
	return next, uses
}

// An event note is at most 1 KB (the API server refuses a longer one, and the event is
// lost), and a tenant decides how many workloads use a Secret and how long their names
// are (up to 253 characters). WorkloadList therefore bounds its result in bytes, not in
// names: at most maxWorkloadListBytes, leaving room for the rest of the note (a namespace
// of 63 characters and a Secret name of 253).
const (
	// maxListedWorkloads keeps the list readable.
	maxListedWorkloads   = 10
	maxWorkloadListBytes = 400
	// maxWorkloadNameBytes bounds each name listed: longer ones are elided in the middle,
	// so that one tenant's long names cannot crowd out the others.
	maxWorkloadNameBytes = 80
)

// WorkloadList names at most maxListedWorkloads of names, as many as fit in
// maxWorkloadListBytes (each elided to maxWorkloadNameBytes), then says how many more
// there are.
func WorkloadList(names []string) string {
	var b strings.Builder
	for i, name := range names {
		name = elide(name, maxWorkloadNameBytes)
		sep := ""
		if i > 0 {
			sep = ", "
		}
		rest := ""
		if i < len(names)-1 {
			// Room for the count of those left out should the next name not fit.
			rest = fmt.Sprintf(" and %d more", len(names)-i-1)
		}
		if i == maxListedWorkloads || b.Len()+len(sep)+len(name)+len(rest) > maxWorkloadListBytes {
			fmt.Fprintf(&b, " and %d more", len(names)-i)
			return b.String()
		}
		b.WriteString(sep)
		b.WriteString(name)
	}
	return b.String()
}

// elide shortens s to at most n bytes by replacing its middle with "…" (kind and the
// start and end of a name are what tell workloads apart). Names are ASCII (DNS names),
// so byte offsets are character offsets.
func elide(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const dots = "…"
	keep := n - len(dots)
	return s[:keep/2] + dots + s[len(s)-(keep-keep/2):]
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
// every resource agrees on the order (a same-second tie between two clients is refused by
// Arbitrate, whatever the names).
func (b Binding) olderThan(o Binding) bool {
	if !b.Created.Equal(o.Created) {
		return b.Created.Before(o.Created)
	}
	if b.Namespace != o.Namespace {
		return b.Namespace < o.Namespace
	}
	return b.Name < o.Name
}

// notYounger reports whether b was created in the same second as o or before: across
// kinds a tie is no order (timestamps have one-second precision), and both are refused.
func (b Binding) notYounger(o Binding) bool { return !b.Created.After(o.Created) }

// Outcome of "one token, one client" arbitration.
type Outcome int

const (
	// Allowed: the token is this client's own.
	Allowed Outcome = iota
	// TechnicalTokenReuse: an older TechnicalToken holds the token; it must never reach a workload.
	TechnicalTokenReuse
	// TokenConflict: an older Habilitation of another client (or, for a TechnicalToken, any
	// older Habilitation) holds the same token.
	TokenConflict
)

// Verdict is the result of Arbitrate; With is the binding that caused a refusal.
type Verdict struct {
	Outcome Outcome
	With    Binding
}

// Arbitrate decides whether self may use a token that others (every other binding whose
// token has the same fingerprint) also hold. The oldest binding wins, whatever its kind:
//   - a Habilitation may inject the token when the oldest Habilitation holding it is one of
//     its own client's (two habilitations of one client sharing a token leak nothing to
//     another client) and no TechnicalToken holds it since as long (TechnicalTokenReuse: a
//     technical token must never reach a workload); otherwise TokenConflict;
//   - a TechnicalToken may be probed unless a Habilitation holds the token since as long
//     (TokenConflict): a client's token is never sent anywhere as a technical token.
//     TechnicalTokens sharing a token do not conflict.
//
// Created in the same second (timestamps have no finer precision), a Habilitation and a
// TechnicalToken, or Habilitations of two clients, are all refused: none is known to be
// first, and failing closed, nothing is injected and nothing is probed until a human
// recreates one. (A name breaking the tie would let whoever names a racing resource win.) Deciding by the oldest binding, not by "who acted first", means two new
// resources racing never let the newer one act, even briefly. With names the binding that
// caused a refusal, deterministic for messages.
func Arbitrate(self Binding, others []Binding) Verdict {
	var oldestHab, oldestTT *Binding
	for i := range others {
		o := &others[i]
		switch {
		case o.Kind == KindTechnicalToken && (oldestTT == nil || o.olderThan(*oldestTT)):
			oldestTT = o
		case o.Kind == KindHabilitation && (oldestHab == nil || o.olderThan(*oldestHab)):
			oldestHab = o
		}
	}
	if self.Kind == KindTechnicalToken {
		if oldestHab != nil && oldestHab.notYounger(self) {
			return Verdict{Outcome: TokenConflict, With: *oldestHab}
		}
		return Verdict{Outcome: Allowed}
	}
	owner := self
	if oldestHab != nil && oldestHab.olderThan(self) {
		owner = *oldestHab
	}
	if oldestTT != nil && oldestTT.notYounger(owner) {
		return Verdict{Outcome: TechnicalTokenReuse, With: *oldestTT}
	}
	// Habilitations of two clients created in the first second: no order, no owner.
	for _, o := range append([]Binding{self}, others...) {
		if o.Kind == KindHabilitation && o.Client != owner.Client && o.Created.Equal(owner.Created) {
			if self.Client == owner.Client {
				return Verdict{Outcome: TokenConflict, With: o}
			}
			return Verdict{Outcome: TokenConflict, With: owner}
		}
	}
	if owner.Client != self.Client {
		return Verdict{Outcome: TokenConflict, With: owner}
	}
	return Verdict{Outcome: Allowed}
}
