// Package isolation builds what fences a public client's namespace off from the other
// clients: the namespace's labels (client label, Pod Security Admission) and the
// NetworkPolicy, and decides who owns a namespace. It is pure: no API calls.
package isolation

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/ownership"
)

// NetworkPolicyName is the name of the NetworkPolicy jeton keeps in every client namespace.
const NetworkPolicyName = "jeton-isolation"

// Pod Security Admission label keys (k8s.io/pod-security-admission/api, not imported to keep
// that module out of the build for six strings).
const (
	labelPSAPrefix   = "pod-security.kubernetes.io/"
	psaVersionLatest = "latest"
)

// podSecurityModes are the three PSA modes; jeton sets all of them to the same level so
// that violations are rejected (enforce), recorded in the audit log (audit) and shown to
// whoever applies the workload (warn).
var podSecurityModes = []string{"enforce", "audit", "warn"}

// NamespaceLabels returns the labels jeton keeps on the namespace of client clientName:
// the client label, managed-by, and the Pod Security Admission labels for level.
func NamespaceLabels(clientName string, level jetonv1alpha1.PodSecurityLevel) map[string]string {
	level = PodSecurity(level)
	labels := map[string]string{
		jetonv1alpha1.LabelClient:    clientName,
		jetonv1alpha1.LabelManagedBy: jetonv1alpha1.ManagedByValue,
	}
	for _, mode := range podSecurityModes {
		labels[labelPSAPrefix+mode] = string(level)
		labels[labelPSAPrefix+mode+"-version"] = psaVersionLatest
	}
	return labels
}

// PodSecurity returns the Pod Security level enforced for spec level: level itself, or
// restricted (the API default) when it is empty, so a CRD without defaults never weakens it.
func PodSecurity(level jetonv1alpha1.PodSecurityLevel) jetonv1alpha1.PodSecurityLevel {
	if level == "" {
		return jetonv1alpha1.PodSecurityRestricted
	}
	return level
}

// podSecurityRank orders the Pod Security levels from the most permissive.
var podSecurityRank = map[jetonv1alpha1.PodSecurityLevel]int{
	jetonv1alpha1.PodSecurityPrivileged: 0,
	jetonv1alpha1.PodSecurityBaseline:   1,
	jetonv1alpha1.PodSecurityRestricted: 2,
}

// ParsePodSecurityLevel checks a Pod Security level given on the command line.
func ParsePodSecurityLevel(s string) (jetonv1alpha1.PodSecurityLevel, error) {
	level := jetonv1alpha1.PodSecurityLevel(s)
	if _, ok := podSecurityRank[level]; !ok {
		return "", fmt.Errorf("%q is not a Pod Security level: privileged, baseline or restricted", s)
	}
	return level, nil
}

// BelowFloor reports whether the Pod Security level a spec asks for (empty: the default,
// restricted) is more permissive than floor. An empty floor is no floor; an unknown level
// (a CRD installed without its enum) is below every floor: jeton cannot tell what it allows.
func BelowFloor(level, floor jetonv1alpha1.PodSecurityLevel) bool {
	if floor == "" {
		return false
	}
	rank, ok := podSecurityRank[PodSecurity(level)]
	if !ok {
		rank = -1
	}
	return rank < podSecurityRank[floor]
}

// Namespace returns the server-side apply configuration of a client namespace. It holds
// only jeton's labels, so applying it never removes labels or annotations others set.
func Namespace(name, clientName string, level jetonv1alpha1.PodSecurityLevel) *corev1ac.NamespaceApplyConfiguration {
	return corev1ac.Namespace(name).WithLabels(NamespaceLabels(clientName, level))
}

// ObjectLabels are the labels of the objects jeton creates in a client namespace.
func ObjectLabels(clientName string) map[string]string {
	return map[string]string{
		jetonv1alpha1.LabelClient:    clientName,
		jetonv1alpha1.LabelManagedBy: jetonv1alpha1.ManagedByValue,
	}
}

// NetworkPolicy returns the server-side apply configuration of the isolation policy of a
// client namespace.
//
// NetworkPolicies are allow-lists: once a policy selects a pod for Ingress, only traffic
// that some policy admits reaches it. This one selects every pod and admits ingress from
// (1) pods of the same namespace and (2) pods of namespaces that are not client namespaces
// (no jeton.dev/client label: ingress controllers, monitoring, the vendor's own services).
// Nothing admits the namespaces of other clients, so their traffic is dropped. Egress is
// left alone: clients must reach the public APIs, and other clients' namespaces are
// already protected by their own ingress policy.
// UpToDate reports whether a namespace already carries every label jeton wants on it, so
// that a resync sends no write.
func UpToDate(ns *corev1.Namespace, clientName string, level jetonv1alpha1.PodSecurityLevel) bool {
	return hasLabels(ns.Labels, NamespaceLabels(clientName, level))
}

// NetworkPolicyUpToDate reports whether np, whole or in the slim form of
// SlimNetworkPolicy (the cache's), is the policy NetworkPolicy(np.Namespace, clientName)
// would apply: jeton's labels and exactly the desired spec.
func NetworkPolicyUpToDate(np *networkingv1.NetworkPolicy, clientName string) bool {
	want := &networkingv1.NetworkPolicy{}
	ac := NetworkPolicy(np.Namespace, clientName)
	b, err := json.Marshal(ac.Spec)
	if err != nil || json.Unmarshal(b, &want.Spec) != nil {
		return false
	}
	if !hasLabels(np.Labels, ObjectLabels(clientName)) {
		return false
	}
	if isSlim(np) {
		return np.Annotations[AnnotationSpecDigest] == specDigest(want.Spec)
	}
	return equality.Semantic.DeepEqual(np.Spec, want.Spec)
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func NetworkPolicy(namespace, clientName string) *networkingv1ac.NetworkPolicyApplyConfiguration {
	return networkingv1ac.NetworkPolicy(NetworkPolicyName, namespace).
		WithLabels(ObjectLabels(clientName)).
		WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(metav1ac.LabelSelector()).
			WithPolicyTypes("Ingress").
			WithIngress(networkingv1ac.NetworkPolicyIngressRule().WithFrom(
				networkingv1ac.NetworkPolicyPeer().WithPodSelector(metav1ac.LabelSelector()),
				networkingv1ac.NetworkPolicyPeer().WithNamespaceSelector(metav1ac.LabelSelector().
					WithMatchExpressions(metav1ac.LabelSelectorRequirement().
						WithKey(jetonv1alpha1.LabelClient).
						WithOperator(metav1.LabelSelectorOpDoesNotExist))),
			)))
}

// Verdict is what a client may do with its namespace.
type Verdict int

const (
	// Create: the namespace does not exist and this client is its first claimant.
	Create Verdict = iota
	// Owned: jeton manages the namespace for this client (Decision.Origin says how).
	Owned
	// OwnedElsewhere: the namespace belongs to another client, or exists and jeton did not
	// create it for this client (and adoption was not requested), or another, older client
	// claims it. Nothing may be written into it.
	OwnedElsewhere
	// Terminating: the namespace is being deleted; wait for it to go, then create it again.
	Terminating
)

func (v Verdict) String() string {
	switch v {
	case Create:
		return "Create"
	case Owned:
		return "Owned"
	case OwnedElsewhere:
		return "OwnedElsewhere"
	case Terminating:
		return "Terminating"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Decision is the Verdict with a message for the client's conditions and events.
type Decision struct {
	Verdict Verdict
	// Origin of an Owned namespace: Created (jeton created it for this client) or Adopted.
	Origin jetonv1alpha1.NamespaceOrigin
	// Message says what is wrong and how to fix it (empty for Create and Owned).
	Message string
}

// CreatedProof is the owner proof jeton writes on a namespace it creates for a client: an
// HMAC over the namespace name, the client's name and UID, and the UID of the namespace the
// client's status recorded before (empty for its first). Nobody without the key can write
// one; it is worth nothing to another PublicClient, even one of the same name; and once
// status records the new namespace, a copy of it on a look-alike is worth nothing either.
// It lets the pass after a lost status write recognise the namespace jeton just created.
func CreatedProof(key []byte, namespace, clientName string, clientUID, previousUID types.UID) string {
	return ownership.Proof(key, "created", namespace, clientName, string(clientUID), string(previousUID))
}

// RetainedProof is the owner proof jeton writes on a namespace it created when its client
// is deleted and the namespace retained: an HMAC over the namespace name and UID and the
// client's name, so that a re-created client of that name re-adopts this very namespace,
// and not a look-alike created later under the same name.
func RetainedProof(key []byte, namespace, clientName string, namespaceUID types.UID) string {
	return ownership.Proof(key, "retained", namespace, clientName, string(namespaceUID))
}

// provenByJeton reports whether ns carries an owner proof jeton wrote for client: at its
// creation, after the namespace status records now (a lost status write), or when a client
// of this name was deleted and the namespace retained (bound to the namespace's UID).
func provenByJeton(key []byte, client *jetonv1alpha1.PublicClient, ns *corev1.Namespace) bool {
	got := ns.Annotations[jetonv1alpha1.AnnotationOwnerProof]
	return ownership.Valid(key, got, "created", ns.Name, client.Name, string(client.UID), string(client.Status.NamespaceUID)) ||
		ownership.Valid(key, got, "retained", ns.Name, client.Name, string(ns.UID))
}

// Decide says what client may do with its target namespace ns (nil when it does not
// exist). claimants are all PublicClients whose target namespace is the same as client's,
// client included or not. key is jeton's owner-proof key.
//
// A label proves nothing (anyone who can create a namespace can label it), so an existing
// namespace is this client's only when:
//  1. it is the very namespace (same UID) recorded in the client's status, or
//  2. it carries an owner proof jeton wrote for this client after what status records
//     (a creation whose status write was lost) or when a client of this name was deleted
//     and the namespace retained (bound to the namespace's UID), or
//  3. no namespace was ever recorded with a UID, and either the status was written by a
//     jeton that recorded none (upgrade), or the client asks for adoption
//     (spec.adoptNamespace) and the namespace agrees (its administrator labelled it for
//     the client).
//
// Once a namespace was recorded, a different one of that name is never taken for it, not
// even on adoption: a look-alike created when the namespace was lost would otherwise be.
// Re-creating the PublicClient starts afresh.
//
// A namespace labelled for another client is never this one's. While the namespace does
// not exist, the first claimant (oldest, then smallest name) alone creates it, so two
// clients racing for one name agree on the winner.
func Decide(client *jetonv1alpha1.PublicClient, ns *corev1.Namespace, claimants []jetonv1alpha1.PublicClient, key []byte) Decision {
	name := client.TargetNamespace()
	if ns == nil {
		if first := FirstClaimant(append(slices.Clone(claimants), *client)); first.Name != client.Name {
			return Decision{Verdict: OwnedElsewhere, Message: fmt.Sprintf(
				"namespace %s is also claimed by PublicClient %q, which is older and gets it; set spec.namespace to another namespace (recreate this PublicClient, the field is immutable)",
				name, first.Name)}
		}
		return Decision{Verdict: Create}
	}

	owner, labelled := ns.Labels[jetonv1alpha1.LabelClient]
	st := client.Status
	switch {
	case labelled && owner != client.Name:
		return Decision{Verdict: OwnedElsewhere, Message: fmt.Sprintf(
			"namespace %s belongs to PublicClient %q (label %s=%s); nothing is written into it. Set spec.namespace to another namespace (recreate this PublicClient, the field is immutable)",
			name, owner, jetonv1alpha1.LabelClient, owner)}
	case ns.DeletionTimestamp != nil:
		return Decision{Verdict: Terminating, Message: fmt.Sprintf("namespace %s is being deleted; jeton creates it again once it is gone", name)}
	case st.NamespaceUID != "" && st.NamespaceUID == ns.UID:
		return Decision{Verdict: Owned, Origin: cmp.Or(st.NamespaceOrigin, jetonv1alpha1.NamespaceAdopted)}
	case provenByJeton(key, client, ns):
		return Decision{Verdict: Owned, Origin: jetonv1alpha1.NamespaceCreated}
	case st.NamespaceUID != "":
		return Decision{Verdict: OwnedElsewhere, Message: fmt.Sprintf(
			"namespace %s is not the namespace jeton set up for this client (that one was deleted, and this one created again by someone else); nothing is written into it. If it really belongs to this client, delete and re-create this PublicClient with spec.adoptNamespace: true, the namespace labelled %s=%s",
			name, jetonv1alpha1.LabelClient, client.Name)}
	case st.Namespace == name && labelled:
		// Recorded by a jeton that kept no UID: trusted as before the upgrade, but never
		// deleted, since nothing proves jeton created it.
		return Decision{Verdict: Owned, Origin: jetonv1alpha1.NamespaceAdopted}
	case client.Spec.AdoptNamespace && labelled:
		// Both sides agree: the PublicClient asks (the jeton editor) and the namespace carries
		// the client's label (whoever administers the namespace). Either alone is not enough:
		// a label can be set by whoever created the namespace, and an editor must not take
		// over another team's namespace (Pod Security, NetworkPolicy, tokens).
		return Decision{Verdict: Owned, Origin: jetonv1alpha1.NamespaceAdopted}
	case client.Spec.AdoptNamespace:
		return Decision{Verdict: OwnedElsewhere, Message: fmt.Sprintf(
			"namespace %s already exists and jeton did not create it; spec.adoptNamespace asks for it, but its administrator must agree too: label it %s=%s. Nothing is written into it meanwhile",
			name, jetonv1alpha1.LabelClient, client.Name)}
	default:
		return Decision{Verdict: OwnedElsewhere, Message: fmt.Sprintf(
			"namespace %s already exists and jeton did not create it for this client; nothing is written into it. If it really belongs to this client, set spec.adoptNamespace: true and have its administrator label it %s=%s (jeton never deletes an adopted namespace); otherwise set spec.namespace to another namespace (recreate this PublicClient, the field is immutable)",
			name, jetonv1alpha1.LabelClient, client.Name)}
	}
}

// FirstClaimant returns the client that wins a namespace claimed by several: the oldest,
// then the smallest name. Clients being deleted do not count (unless all are). claimants
// must not be empty.
func FirstClaimant(claimants []jetonv1alpha1.PublicClient) *jetonv1alpha1.PublicClient {
	live := slices.DeleteFunc(slices.Clone(claimants), func(c jetonv1alpha1.PublicClient) bool {
		return c.DeletionTimestamp != nil
	})
	if len(live) == 0 {
		live = claimants
	}
	first := slices.MinFunc(live, func(a, b jetonv1alpha1.PublicClient) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return &first
}
