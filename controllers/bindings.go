package controllers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
	"github.com/jeton-dev/jeton/internal/injection"
	"github.com/jeton-dev/jeton/internal/token"
	"github.com/jeton-dev/jeton/internal/tokensource"
)

// tokenBindings finds every Habilitation and TechnicalToken holding a token, for "one
// token, one client" arbitration. Both reconcilers ask it before acting: a Habilitation
// before injecting, a TechnicalToken before any probe carries the token.
type tokenBindings struct {
	// Reader is the manager's cached client.
	client.Reader
	memo fingerprintMemo
}

// arbitrate compares the token's fingerprint with every other Habilitation (in the
// credentials namespaces) and every TechnicalToken. Fingerprints come from the source
// Secrets in the cache (through IndexSecretTokenFingerprints), not from other objects'
// status, so two new objects racing cannot both look alone; and one lookup finds the
// Secrets holding the token, so the check does not grow with the number of Habilitations.
//
// The label jeton.dev/client on a Secret is the credentials admin's word on whose token it
// holds, and it holds for the token, not the Secret: labelledFor lists the clients the
// token's Secrets are labelled for. When there is one, only that client's Habilitations
// count; resources refused for a label stay out (their refusal is kept, see
// refusedForLabel), so a label removed later hands the token to nobody else.
func (b *tokenBindings) arbitrate(ctx context.Context, self injection.Binding, fp string) (verdict injection.Verdict, labelledFor []string, err error) {
	type bindingKey struct {
		kind            injection.Kind
		namespace, name string
	}
	seen := map[bindingKey]bool{{self.Kind, self.Namespace, self.Name}: true}
	var others []injection.Binding
	add := func(o injection.Binding) {
		if k := (bindingKey{o.Kind, o.Namespace, o.Name}); !seen[k] {
			seen[k] = true
			others = append(others, o)
		}
	}

	holders := &corev1.SecretList{}
	if err := b.List(ctx, holders, client.MatchingFields{IndexSecretTokenFingerprints: fp}, client.UnsafeDisableDeepCopy); err != nil {
		return injection.Verdict{}, nil, fmt.Errorf("listing Secrets by token fingerprint: %w", err)
	}
	for i := range holders.Items {
		if c := holders.Items[i].Labels[jetonv1alpha1.LabelClient]; c != "" && !slices.Contains(labelledFor, c) {
			labelledFor = append(labelledFor, c)
		}
	}
	slices.Sort(labelledFor)
	counts := func(kind injection.Kind, client string, conds []metav1.Condition) bool {
		if refusedForLabel(conds) {
			return false
		}
		if len(labelledFor) == 0 {
			return true
		}
		return kind == injection.KindHabilitation && len(labelledFor) == 1 && labelledFor[0] == client
	}
	for i := range holders.Items {
		s := &holders.Items[i]
		habs := &jetonv1alpha1.HabilitationList{}
		if err := b.List(ctx, habs, client.InNamespace(s.Namespace), client.MatchingFields{IndexTokenSecret: s.Name}, client.UnsafeDisableDeepCopy); err != nil {
			return injection.Verdict{}, nil, err
		}
		for j := range habs.Items {
			o := &habs.Items[j]
			if !o.DeletionTimestamp.IsZero() || !counts(injection.KindHabilitation, o.Spec.ClientRef.Name, o.Status.Conditions) {
				continue
			}
			// The Secret holds the token under some key; is it the key this one reads?
			if b.sourceFingerprint(ctx, o.Namespace, o.Spec.TokenSecretRef) == fp {
				add(injection.Binding{Kind: injection.KindHabilitation, Namespace: o.Namespace, Name: o.Name, Client: o.Spec.ClientRef.Name, Created: o.CreationTimestamp.Time})
			}
		}
		tts := &jetonv1alpha1.TechnicalTokenList{}
		if err := b.List(ctx, tts, client.InNamespace(s.Namespace), client.MatchingFields{IndexTokenSecret: s.Name}, client.UnsafeDisableDeepCopy); err != nil {
			return injection.Verdict{}, nil, err
		}
		for j := range tts.Items {
			o := &tts.Items[j]
			if !o.DeletionTimestamp.IsZero() || !counts(injection.KindTechnicalToken, "", o.Status.Conditions) {
				continue
			}
			if b.sourceFingerprint(ctx, o.Namespace, o.Spec.TokenSecretRef) == fp {
				add(injection.Binding{Kind: injection.KindTechnicalToken, Namespace: o.Namespace, Name: o.Name, Created: o.CreationTimestamp.Time})
			}
		}
	}

	// Fail closed: a recorded fingerprint counts too (a resource whose Secret the cache no
	// longer holds, or one outside the credentials namespaces).
	tts := &jetonv1alpha1.TechnicalTokenList{}
	if err := b.List(ctx, tts, client.MatchingFields{IndexTokenFingerprint: fp}, client.UnsafeDisableDeepCopy); err != nil {
		return injection.Verdict{}, nil, err
	}
	for i := range tts.Items {
		o := &tts.Items[i]
		if counts(injection.KindTechnicalToken, "", o.Status.Conditions) {
			add(injection.Binding{Kind: injection.KindTechnicalToken, Namespace: o.Namespace, Name: o.Name, Created: o.CreationTimestamp.Time})
		}
	}
	if self.Kind == injection.KindTechnicalToken {
		// A Habilitation that recorded this token keeps it, even while its Secret is being
		// replaced: a TechnicalToken never probes a token a client may still be using.
		habs := &jetonv1alpha1.HabilitationList{}
		if err := b.List(ctx, habs, client.MatchingFields{IndexTokenFingerprint: fp}, client.UnsafeDisableDeepCopy); err != nil {
			return injection.Verdict{}, nil, err
		}
		for i := range habs.Items {
			o := &habs.Items[i]
			if o.DeletionTimestamp.IsZero() && counts(injection.KindHabilitation, o.Spec.ClientRef.Name, o.Status.Conditions) {
				add(injection.Binding{Kind: injection.KindHabilitation, Namespace: o.Namespace, Name: o.Name, Client: o.Spec.ClientRef.Name, Created: o.CreationTimestamp.Time})
			}
		}
	}
	return injection.Arbitrate(self, others), labelledFor, nil
}

// refusedForLabel reports whether a resource was refused because its token is labelled for
// another client. The refusal is kept whatever the label says later: a resource placed
// early on a Secret must not take the token the day a GitOps sync drops the label.
func refusedForLabel(conds []metav1.Condition) bool {
	return conditions.ReadyReason(conds) == jetonv1alpha1.ReasonSecretClientMismatch
}

// fingerprintMemo remembers the fingerprint of each source Secret key at a resourceVersion,
// so the "one token, one client" check hashes each token once, not once per reconcile.
type fingerprintMemo struct {
	mu sync.Mutex
	m  map[memoKey]memoEntry
}

type memoKey struct{ namespace, name, key string }

type memoEntry struct{ resourceVersion, fingerprint string }

// sourceFingerprint returns the fingerprint of the token a Secret key holds, or "" when the
// Secret or key is missing or the value is not a token.
func (b *tokenBindings) sourceFingerprint(ctx context.Context, namespace string, ref jetonv1alpha1.SecretKeyReference) string {
	k := memoKey{namespace, ref.Name, cmp.Or(ref.Key, tokensource.DefaultKey)}
	s := &corev1.Secret{}
	err := b.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, s, client.UnsafeDisableDeepCopy)

	m := &b.memo
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		delete(m.m, k)
		return ""
	}
	if e, ok := m.m[k]; ok && e.resourceVersion == s.ResourceVersion {
		return e.fingerprint
	}
	fp := ""
	if raw, ok := s.Data[k.key]; ok {
		if tok, err := token.Normalize(raw); err == nil {
			fp = token.Fingerprint(tok)
		}
	}
	if m.m == nil {
		m.m = map[memoKey]memoEntry{}
	}
	m.m[k] = memoEntry{s.ResourceVersion, fp}
	return fp
}
