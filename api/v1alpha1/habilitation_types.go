package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClientReference names a PublicClient.
type ClientReference struct {
	// name of the PublicClient (cluster-scoped).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
}

// TargetKeys names the keys of the injected Secret. The defaults are upper-case so that
// `envFrom: [{prefix: API_ENTREPRISE_, secretRef: ...}]` gives API_ENTREPRISE_TOKEN,
// API_ENTREPRISE_RECIPIENT and API_ENTREPRISE_BASE_URL.
// +kubebuilder:validation:XValidation:rule="[has(self.token) ? self.token : 'TOKEN', has(self.recipient) ? self.recipient : 'RECIPIENT', has(self.baseURL) ? self.baseURL : 'BASE_URL'].all(k, [has(self.token) ? self.token : 'TOKEN', has(self.recipient) ? self.recipient : 'RECIPIENT', has(self.baseURL) ? self.baseURL : 'BASE_URL'].filter(j, j == k).size() == 1)",message="target.keys must name three different keys"
type TargetKeys struct {
	// token is the key holding the token. Default TOKEN.
	// +kubebuilder:default=TOKEN
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Token string `json:"token,omitempty"`

	// recipient is the key holding the client's SIRET, to send as `recipient`. Default RECIPIENT.
	// +kubebuilder:default=RECIPIENT
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Recipient string `json:"recipient,omitempty"`

	// baseURL is the key holding the API base URL for the environment. Default BASE_URL.
	// +kubebuilder:default=BASE_URL
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:validation:MaxLength=253
	// +optional
	BaseURL string `json:"baseURL,omitempty"`
}

// Target describes the Secret jeton writes into the client namespace.
type Target struct {
	// secretName is the name of the Secret in the client namespace. Defaults to the
	// Habilitation's name.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// keys names the keys of the injected Secret.
	// +kubebuilder:default={}
	// +optional
	Keys TargetKeys `json:"keys,omitempty"`
}

// HabilitationSpec is one habilitation of one public client on one API, with its token.
type HabilitationSpec struct {
	// clientRef names the PublicClient this habilitation belongs to. Immutable: a token
	// is bound to one client for life.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="clientRef is immutable: a token belongs to one client for life; create a new Habilitation instead"
	ClientRef ClientReference `json:"clientRef"`

	// api the token is for. Immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="api is immutable; create a new Habilitation instead"
	API API `json:"api"`

	// environment of the API: production (default) or staging.
	// +kubebuilder:default=production
	// +optional
	Environment Environment `json:"environment,omitempty"`

	// baseURL overrides the API base URL of the environment (an internal proxy, an emulator).
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	// +optional
	BaseURL string `json:"baseURL,omitempty"`

	// datapassID is the DataPass habilitation number, for your records and for audits.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[-_a-zA-Z0-9]+$`
	// +optional
	DatapassID string `json:"datapassID,omitempty"`

	// tokenSecretRef points at the Secret holding this habilitation's token, in the same
	// namespace (delivered by Sealed Secrets, SOPS, External Secrets...). Rotating the
	// token is updating this Secret. Immutable: "one token, one client" gives a token to the
	// oldest resource holding it, so pointing an old resource at another Secret would take
	// that Secret's token away from its client.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="tokenSecretRef is immutable: to rotate the token, update the Secret's content; to use another Secret, create a new Habilitation"
	TokenSecretRef SecretKeyReference `json:"tokenSecretRef"`

	// expectedScopes the token must grant; a missing one makes the Habilitation not Ready
	// (ScopesMissing). Only checked for JWT tokens (API Entreprise, API Particulier).
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +optional
	ExpectedScopes []string `json:"expectedScopes,omitempty"`

	// expiresAt declares when the token expires, for tokens that carry no expiry
	// (Démarches Numériques). Ignored when the token itself carries one. Démarches
	// Numériques keeps a date: the token works through that whole day (Paris time), so only
	// the date of this field counts. Leave it unset for a token without expiry (allowed
	// there when the token has an IP allow-list).
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// renewBefore is how long before expiry the Habilitation reports TokenExpiringSoon.
	// Default 2160h (90 days, when the portal sends its first reminder).
	// +kubebuilder:default="2160h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="renewBefore must not be negative"
	// +optional
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`

	// target describes the Secret written into the client namespace.
	// +kubebuilder:default={}
	// +optional
	Target Target `json:"target,omitempty"`

	// restartWorkloads (default true) restarts the Deployments, StatefulSets and DaemonSets
	// of the client namespace that use the injected Secret when the token changes.
	// +kubebuilder:default=true
	// +optional
	RestartWorkloads *bool `json:"restartWorkloads,omitempty"`

	// delivery chooses how the client's workloads get the API: Direct (the API token is
	// injected) or Gateway (the injected Secret holds a gateway credential and BASE_URL
	// points at jeton's gateway, which adds the token and enforces recipient and the
	// vendor's limits). Unset: the operator's --default-delivery (Direct unless changed).
	// +kubebuilder:validation:Enum=Direct;Gateway
	// +optional
	Delivery Delivery `json:"delivery,omitempty"`

	// gateway tunes what the gateway lets this Habilitation's workloads do.
	// +optional
	Gateway *GatewayPolicy `json:"gateway,omitempty"`
}

// Delivery is how a Habilitation's workloads reach the API.
type Delivery string

const (
	// DeliveryDirect injects the API token into the client namespace.
	DeliveryDirect Delivery = "Direct"
	// DeliveryGateway injects a gateway credential; the API token stays with jeton.
	DeliveryGateway Delivery = "Gateway"
)

// ReasonGatewayNotConfigured: the Habilitation's delivery is Gateway (its spec.delivery or
// the operator's --default-delivery) but the operator has no --gateway-url, so there is no
// gateway to point BASE_URL at. Nothing is written or removed until it is fixed.
const ReasonGatewayNotConfigured = "GatewayNotConfigured"

// GatewayPolicy is what the gateway allows a Habilitation beyond the defaults.
type GatewayPolicy struct {
	// allowMutations lets the workloads send GraphQL mutations (Démarches Numériques:
	// changing a dossier's state, sending a message). Default false: queries only.
	// +optional
	AllowMutations bool `json:"allowMutations,omitempty"`
}

// SecretReference names a Secret in a namespace.
type SecretReference struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// HabilitationStatus is the observed state of a Habilitation.
type HabilitationStatus struct {
	// observedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	RequestStatus `json:",inline"`

	TokenStatus `json:",inline"`

	// targetSecret is the Secret jeton wrote in the client namespace.
	// +optional
	TargetSecret *SecretReference `json:"targetSecret,omitempty"`

	// delivery is the delivery in force for the injected Secret (spec.delivery or the
	// operator's default). The gateway serves only Habilitations whose delivery is Gateway.
	// +optional
	Delivery Delivery `json:"delivery,omitempty"`

	// deliveredFingerprint is the fingerprint of what the injected Secret delivers to the
	// workloads: the token's (tokenFingerprint) in Direct delivery; in Gateway delivery
	// one of the gateway credential and the gateway URL (never the credential itself).
	// Workloads restart when it changes. tokenFingerprint cannot say so by itself: in
	// Gateway delivery the token rotates with nothing changing in the client namespace,
	// while a credential rotation, a new credential key, a new gateway URL or a switch of
	// delivery changes what the workloads must read with the token unchanged.
	// +optional
	DeliveredFingerprint string `json:"deliveredFingerprint,omitempty"`

	// lastRotationTime is when a new token (Direct delivery) or a new gateway credential
	// (Gateway delivery) was last written into the target Secret.
	// +optional
	LastRotationTime *metav1.Time `json:"lastRotationTime,omitempty"`

	// conditions: Ready, and Reconciling / Stalled while true.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// Habilitation is one habilitation of one public client on one API, with its token (held
// in a Secret, never here). jeton injects the token into the client's namespace.
// Honoured only in the operator's credentials namespaces.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=hab,categories=jeton
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="a Habilitation name is at most 63 characters (it labels the injected Secret)"
// +kubebuilder:printcolumn:name="Client",type=string,JSONPath=`.spec.clientRef.name`
// +kubebuilder:printcolumn:name="API",type=string,JSONPath=`.spec.api`
// +kubebuilder:printcolumn:name="Env",type=string,JSONPath=`.spec.environment`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Habilitation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   HabilitationSpec   `json:"spec"`
	Status HabilitationStatus `json:"status,omitempty"`
}

// TargetSecretName is the name of the injected Secret: spec.target.secretName or the
// Habilitation's name.
func (h *Habilitation) TargetSecretName() string {
	if h.Spec.Target.SecretName != "" {
		return h.Spec.Target.SecretName
	}
	return h.Name
}

// +kubebuilder:object:root=true

// HabilitationList is a list of Habilitations.
type HabilitationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Habilitation `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Habilitation{}, &HabilitationList{})
}
