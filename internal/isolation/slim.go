package isolation

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// The cache of a large fleet holds one namespace and one NetworkPolicy per client. These
// slim forms keep what jeton reads of them and nothing else, so that memory grows with the
// number of clients, not with what others put on their namespaces.

// namespaceLabelKeys are the only namespace labels jeton reads: its own and Pod Security's.
var namespaceLabelKeys = func() []string {
	keys := []string{jetonv1alpha1.LabelClient, jetonv1alpha1.LabelManagedBy}
	for _, mode := range podSecurityModes {
		keys = append(keys, labelPSAPrefix+mode, labelPSAPrefix+mode+"-version")
	}
	return keys
}()

// SlimNamespace returns the part of ns jeton reads: identity, timestamps, its labels and
// the owner proof. Others' labels and annotations, spec and status are dropped.
func SlimNamespace(ns *corev1.Namespace) *corev1.Namespace {
	return &corev1.Namespace{
		TypeMeta: ns.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:              ns.Name,
			UID:               ns.UID,
			ResourceVersion:   ns.ResourceVersion,
			Generation:        ns.Generation,
			CreationTimestamp: ns.CreationTimestamp,
			DeletionTimestamp: ns.DeletionTimestamp,
			Labels:            keep(ns.Labels, namespaceLabelKeys),
			Annotations:       keep(ns.Annotations, []string{jetonv1alpha1.AnnotationOwnerProof}),
		},
	}
}

// AnnotationSpecDigest holds, on a NetworkPolicy in the slim form of SlimNetworkPolicy, the
// digest of the spec it replaces.
const AnnotationSpecDigest = "jeton.dev/spec-sha256"

// SlimNetworkPolicy returns np's identity and jeton's labels, with its spec replaced by a
// digest (in AnnotationSpecDigest, computed here, so nothing on the object can forge it).
// The API server always sets spec.policyTypes, so a real policy never has the empty spec
// of this form. Idempotent, as informer transforms must be (the initial list may pass an
// object through twice): a policy already in this form is returned as it is.
func SlimNetworkPolicy(np *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	if isSlim(np) {
		return np
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta: np.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:              np.Name,
			Namespace:         np.Namespace,
			UID:               np.UID,
			ResourceVersion:   np.ResourceVersion,
			Generation:        np.Generation,
			CreationTimestamp: np.CreationTimestamp,
			DeletionTimestamp: np.DeletionTimestamp,
			Labels:            keep(np.Labels, []string{jetonv1alpha1.LabelClient, jetonv1alpha1.LabelManagedBy}),
			Annotations:       map[string]string{AnnotationSpecDigest: specDigest(np.Spec)},
		},
	}
}

// isSlim reports whether np is in the form of SlimNetworkPolicy.
func isSlim(np *networkingv1.NetworkPolicy) bool {
	_, ok := np.Annotations[AnnotationSpecDigest]
	return ok && equality.Semantic.DeepEqual(np.Spec, networkingv1.NetworkPolicySpec{})
}

// specDigest is the SHA-256 of the spec's JSON. Two specs that are semantically equal have
// the same JSON (struct fields in order, map keys sorted, empty and absent lists both
// omitted).
func specDigest(spec networkingv1.NetworkPolicySpec) string {
	b, err := json.Marshal(spec)
	if err != nil {
		return "" // never equal to a digest: the policy is applied again
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// keep returns the entries of have under keys. Keys are jeton's own constants, so the map
// shares their strings instead of holding a decoded copy per object.
func keep(have map[string]string, keys []string) map[string]string {
	var out map[string]string
	for _, k := range keys {
		if v, ok := have[k]; ok {
			if out == nil {
				out = make(map[string]string, len(keys))
			}
			out[k] = common(v)
		}
	}
	return out
}

// common returns the shared copy of the label values every client namespace repeats.
func common(v string) string {
	for _, c := range []string{jetonv1alpha1.ManagedByValue, psaVersionLatest,
		string(jetonv1alpha1.PodSecurityRestricted), string(jetonv1alpha1.PodSecurityBaseline), string(jetonv1alpha1.PodSecurityPrivileged)} {
		if v == c {
			return c
		}
	}
	return v
}
