package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// NetworkPolicyMode says whether jeton keeps a NetworkPolicy in the client namespace.
// +kubebuilder:validation:Enum=Enabled;Disabled
type NetworkPolicyMode string

const (
	NetworkPolicyEnabled  NetworkPolicyMode = "Enabled"
	NetworkPolicyDisabled NetworkPolicyMode = "Disabled"
)

// PodSecurityLevel is a Pod Security Admission level.
// +kubebuilder:validation:Enum=privileged;baseline;restricted
type PodSecurityLevel string

const (
	PodSecurityPrivileged PodSecurityLevel = "privileged"
	PodSecurityBaseline   PodSecurityLevel = "baseline"
	PodSecurityRestricted PodSecurityLevel = "restricted"
)

// NamespacePolicy says what happens to the client namespace when the PublicClient is deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type NamespacePolicy string

const (
	// NamespacePolicyRetain keeps the namespace and its workloads; jeton still removes the
	// Secrets it injected there, so credentials fail closed.
	NamespacePolicyRetain NamespacePolicy = "Retain"
	// NamespacePolicyDelete deletes the namespace and everything in it.
	NamespacePolicyDelete NamespacePolicy = "Delete"
)

// Isolation configures how the client namespace is fenced off from other clients.
type Isolation struct {
	// networkPolicy Enabled (the default) keeps a NetworkPolicy in the client namespace
	// that admits no traffic from the namespaces of other clients.
	// +kubebuilder:default=Enabled
	// +optional
	NetworkPolicy NetworkPolicyMode `json:"networkPolicy,omitempty"`

	// podSecurity is the Pod Security Admission level enforced on the client namespace
	// (label pod-security.kubernetes.io/enforce). Default restricted.
	// +kubebuilder:default=restricted
	// +optional
	PodSecurity PodSecurityLevel `json:"podSecurity,omitempty"`
}

// PublicClientSpec describes one public client (a town, a region, a ministry...) of the vendor.
// +kubebuilder:validation:XValidation:rule="has(self.__namespace__) == has(oldSelf.__namespace__) && (!has(self.__namespace__) || self.__namespace__ == oldSelf.__namespace__)",message="namespace is immutable: moving a client's credentials to another namespace would leave them behind; delete and recreate the PublicClient instead"
type PublicClientSpec struct {
	// displayName is the client's human-readable name, e.g. "Commune de Trifouilly".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	DisplayName string `json:"displayName"`

	// siret is the client's SIRET: 14 digits with a valid Luhn checksum (SIRETs of La Poste,
	// SIREN 356000000, except the head office 35600000000048, instead have a digit sum that is a
	// multiple of 5). It is the `recipient` of every API call made for this client, never the
	// vendor's own SIRET.
	// +kubebuilder:validation:MinLength=14
	// +kubebuilder:validation:MaxLength=14
	// +kubebuilder:validation:Pattern=`^[0-9]{14}$`
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9]{14}$') || (self.startsWith('356000000') && self != '35600000000048' ? [0,1,2,3,4,5,6,7,8,9,10,11,12,13].map(i, int(self.substring(i, i + 1))).sum() % 5 == 0 : [0,1,2,3,4,5,6,7,8,9,10,11,12,13].map(i, i % 2 == 0 ? (int(self.substring(i, i + 1)) * 2 > 9 ? int(self.substring(i, i + 1)) * 2 - 9 : int(self.substring(i, i + 1)) * 2) : int(self.substring(i, i + 1))).sum() % 10 == 0)",message="siret has an invalid checksum: check the 14 digits against the INSEE SIRENE register"
	SIRET string `json:"siret"`

	// namespace is the client's own isolated namespace, where jeton injects its tokens.
	// Defaults to the PublicClient's name. Immutable.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// isolation fences the client namespace off from other clients. Safe defaults: a
	// NetworkPolicy and the restricted Pod Security level.
	// +kubebuilder:default={}
	// +optional
	Isolation Isolation `json:"isolation,omitempty"`

	// namespacePolicy says what happens to the namespace when this PublicClient is deleted:
	// Retain (default) keeps it, Delete deletes it. In both cases the Secrets jeton injected
	// there are removed first.
	// +kubebuilder:default=Retain
	// +optional
	NamespacePolicy NamespacePolicy `json:"namespacePolicy,omitempty"`

	// adoptNamespace lets jeton take over a namespace that already exists and that jeton did
	// not create for this client (it then labels it, fences it and injects tokens there).
	// Off by default: anyone who can create namespaces could otherwise pre-create a future
	// client's namespace and receive its tokens. An adopted namespace is never deleted by
	// jeton, whatever namespacePolicy says. A namespace jeton created for this client is
	// re-adopted without it when the PublicClient is re-created.
	// +optional
	AdoptNamespace bool `json:"adoptNamespace,omitempty"`
}

// NamespaceOrigin says how a client namespace came to be managed by jeton.
type NamespaceOrigin string

const (
	// NamespaceCreated: jeton created the namespace for this client (namespacePolicy Delete may delete it).
	NamespaceCreated NamespaceOrigin = "Created"
	// NamespaceAdopted: the namespace existed and was adopted on request (never deleted by jeton).
	NamespaceAdopted NamespaceOrigin = "Adopted"
)

// PublicClientStatus is the observed state of a PublicClient.
type PublicClientStatus struct {
	// observedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	RequestStatus `json:",inline"`

	// namespace is the client namespace jeton manages for this client.
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// namespaceUID is the UID of the namespace jeton last verified for this client: a
	// namespace deleted and re-created by someone else under the same name is not this
	// client's. It stays when the namespace is lost, for that very reason.
	// +optional
	NamespaceUID types.UID `json:"namespaceUID,omitempty"`

	// namespaceOrigin is Created when jeton created the namespace, Adopted when it adopted
	// an existing one (spec.adoptNamespace). Only a Created namespace is ever deleted.
	// +optional
	NamespaceOrigin NamespaceOrigin `json:"namespaceOrigin,omitempty"`

	// namespaceDeleteSince is when jeton first saw spec.namespacePolicy Delete, Delete ever
	// since (cleared when it is Retain). jeton deletes the namespace only if the policy was
	// Delete when jeton created it, or has been Delete for the grace period
	// (docs/security.md): an editor switching it just before deleting the client does not
	// delete the tenant's data. Recorded in status, which editors do not write.
	// +optional
	NamespaceDeleteSince *metav1.Time `json:"namespaceDeleteSince,omitempty"`

	// habilitations is how many Habilitations reference this client.
	// +optional
	Habilitations int32 `json:"habilitations"`

	// conditions: Ready, and Reconciling / Stalled while true.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// PublicClient is one public client of the vendor (a town, a region, a ministry), with its
// own isolated namespace where jeton injects the tokens of its Habilitations.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=pcl,categories=jeton
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="a PublicClient name is at most 63 characters (it labels the client's namespace and Secrets)"
// +kubebuilder:printcolumn:name="Display Name",type=string,JSONPath=`.spec.displayName`
// +kubebuilder:printcolumn:name="SIRET",type=string,JSONPath=`.spec.siret`
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.status.namespace`
// +kubebuilder:printcolumn:name="Habilitations",type=integer,JSONPath=`.status.habilitations`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PublicClient struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PublicClientSpec   `json:"spec"`
	Status PublicClientStatus `json:"status,omitempty"`
}

// TargetNamespace is the client's namespace: spec.namespace, or the resource name.
func (c *PublicClient) TargetNamespace() string {
	if c.Spec.Namespace != "" {
		return c.Spec.Namespace
	}
	return c.Name
}

// +kubebuilder:object:root=true

// PublicClientList is a list of PublicClients.
type PublicClientList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PublicClient `json:"items"`
}

func init() {
	SchemeBuilder.Register(&PublicClient{}, &PublicClientList{})
}
