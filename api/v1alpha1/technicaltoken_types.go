package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TechnicalTokenSpec is the vendor's technical token for one API. It is probed against the
// API's own token check and never injected anywhere.
// +kubebuilder:validation:XValidation:rule="self.api != 'DemarchesNumeriques' || has(self.demarcheNumber)",message="demarcheNumber is required for DemarchesNumeriques: the probe asks for one démarche the token can read"
// +kubebuilder:validation:XValidation:rule="!has(self.timeout) || !has(self.interval) || duration(self.timeout) < duration(self.interval)",message="timeout must be shorter than interval"
type TechnicalTokenSpec struct {
	// api the token is for.
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

	// tokenSecretRef points at the Secret holding the technical token, in the same namespace.
	// Immutable: "one token, one client" gives a token to the oldest resource holding it, so
	// pointing an old TechnicalToken at a client's Secret would take that client's token.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="tokenSecretRef is immutable: to rotate the token, update the Secret's content; to use another Secret, create a new TechnicalToken"
	TokenSecretRef SecretKeyReference `json:"tokenSecretRef"`

	// interval between probes (default 5m, minimum 30s). A random jitter of up to 10% is added.
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('30s')",message="interval must be at least 30s: probing faster risks the API's rate limits and a 12-hour IP ban"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`

	// timeout of one probe request (default 10s).
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="timeout must be positive"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// failureThreshold is how many consecutive failed probes make the token not Ready (default 3).
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	FailureThreshold int32 `json:"failureThreshold,omitempty"`

	// demarcheNumber is the démarche the probe queries (Démarches Numériques only).
	// +kubebuilder:validation:Minimum=1
	// +optional
	DemarcheNumber *int64 `json:"demarcheNumber,omitempty"`

	// expiresAt declares when the token expires, for tokens that carry no expiry
	// (Démarches Numériques). Ignored when the token itself carries one. Démarches
	// Numériques keeps a date: the token works through that whole day (Paris time), so only
	// the date of this field counts. Leave it unset for a token without expiry (allowed
	// there when the token has an IP allow-list).
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// renewBefore is how long before expiry the token reports TokenExpiringSoon (default 2160h).
	// +kubebuilder:default="2160h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="renewBefore must not be negative"
	// +optional
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`

	// suspend stops probing; the last results stay in status.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// ProbeResult is the outcome of one probe.
type ProbeResult struct {
	// httpStatus of the answer; 0 when no answer came (unreachable, timeout).
	// +optional
	HTTPStatus int32 `json:"httpStatus,omitempty"`
	// code is the API's error code (e.g. 00101, forbidden), when it gave one.
	// +optional
	Code string `json:"code,omitempty"`
	// reason classifies the outcome: ProbeSucceeded, Unauthorized, Expired, Revoked,
	// InsufficientPrivileges, RateLimited, Unreachable, Timeout, ServerError, UnexpectedResponse.
	// +optional
	Reason string `json:"reason,omitempty"`
	// message says what happened, in English; never contains the token.
	// +optional
	Message string `json:"message,omitempty"`
	// latency of the request.
	// +optional
	Latency *metav1.Duration `json:"latency,omitempty"`
}

// TechnicalTokenStatus is the observed state of a TechnicalToken.
type TechnicalTokenStatus struct {
	// observedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	RequestStatus `json:",inline"`

	TokenStatus `json:",inline"`

	// lastProbeTime is when the last probe finished.
	// +optional
	LastProbeTime *metav1.Time `json:"lastProbeTime,omitempty"`
	// lastSuccessTime is when a probe last succeeded.
	// +optional
	LastSuccessTime *metav1.Time `json:"lastSuccessTime,omitempty"`
	// nextProbeTime is when the next probe is due (later when the API asked to back off).
	// +optional
	NextProbeTime *metav1.Time `json:"nextProbeTime,omitempty"`
	// rateLimitedUntil is the next allowed probe time the API set for this token: after a
	// 429, a Retry-After or RateLimit-Remaining: 0 with RateLimit-Reset, no request with
	// the token (through any TechnicalToken holding it) goes out before it. Recorded here so
	// that a restart or a new leader honours it.
	// +optional
	RateLimitedUntil *metav1.Time `json:"rateLimitedUntil,omitempty"`
	// hostRateLimitedUntil is, after a 429, the time before which no request goes to the
	// API host, with any token: a 429 may come from the per-address limit, whose breach
	// bans the vendor's address. A new leader rebuilds its host-wide backoff from it.
	// +optional
	HostRateLimitedUntil *metav1.Time `json:"hostRateLimitedUntil,omitempty"`
	// consecutiveFailures counts failed probes since the last success.
	// +optional
	ConsecutiveFailures int32 `json:"consecutiveFailures,omitempty"`
	// lastResult is the outcome of the last probe.
	// +optional
	LastResult *ProbeResult `json:"lastResult,omitempty"`
	// privileges the API reported for the token (API Entreprise privileges, API Particulier scopes).
	// +optional
	// +listType=atomic
	Privileges []string `json:"privileges,omitempty"`

	// conditions: Ready, and Reconciling / Stalled while true.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// TechnicalToken is the vendor's technical token for one API, used only to monitor the API:
// jeton probes it periodically and never injects it anywhere. Honoured only in the
// operator's credentials namespaces.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=tt,categories=jeton
// +kubebuilder:printcolumn:name="API",type=string,JSONPath=`.spec.api`
// +kubebuilder:printcolumn:name="Env",type=string,JSONPath=`.spec.environment`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Last Result",type=string,JSONPath=`.status.lastResult.reason`
// +kubebuilder:printcolumn:name="Last Success",type=date,JSONPath=`.status.lastSuccessTime`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TechnicalToken struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TechnicalTokenSpec   `json:"spec"`
	Status TechnicalTokenStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// TechnicalTokenList is a list of TechnicalTokens.
type TechnicalTokenList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TechnicalToken `json:"items"`
}

func init() {
	SchemeBuilder.Register(&TechnicalToken{}, &TechnicalTokenList{})
}
