package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// API names a public API that jeton knows how to check tokens for.
// +kubebuilder:validation:Enum=APIEntreprise;APIParticulier;DemarchesNumeriques
type API string

const (
	// APIEntreprise is API Entreprise (entreprise.api.gouv.fr), JWT tokens, check GET /privileges.
	APIEntreprise API = "APIEntreprise"
	// APIParticulier is API Particulier (particulier.api.gouv.fr), JWT tokens, check GET /api/introspect.
	APIParticulier API = "APIParticulier"
	// DemarchesNumeriques is the Démarches Numériques GraphQL API (formerly Démarches Simplifiées);
	// its tokens are opaque and their expiry is known only server-side.
	DemarchesNumeriques API = "DemarchesNumeriques"
)

// Environment selects the production or staging instance of an API.
// +kubebuilder:validation:Enum=production;staging
type Environment string

const (
	EnvironmentProduction Environment = "production"
	EnvironmentStaging    Environment = "staging"
)

// SecretKeyReference points at one key of a Secret in the same namespace as the referring resource.
type SecretKeyReference struct {
	// name of the Secret, in the same namespace as this resource.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// key in the Secret's data that holds the token.
	// +kubebuilder:default=token
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	Key string `json:"key,omitempty"`
}

// TokenStatus is what jeton learned from decoding a token, without ever storing the token.
type TokenStatus struct {
	// tokenFingerprint is the first 16 hex characters of the SHA-256 of the token. It lets
	// you tell two tokens apart (or match one you hold) without revealing either.
	// +optional
	TokenFingerprint string `json:"tokenFingerprint,omitempty"`

	// tokenID is the token's identifier: the JWT `jti` claim, or the token id of a
	// Démarches Numériques token. A renewal keeps it; a regeneration changes it.
	// +optional
	TokenID string `json:"tokenID,omitempty"`

	// issuedAt is the JWT `iat` claim, when the token carries one.
	// +optional
	IssuedAt *metav1.Time `json:"issuedAt,omitempty"`

	// expiresAt is when the token stops working: the JWT `exp` claim, or spec.expiresAt
	// for tokens that carry no expiry.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// scopes the token grants, from the JWT `scopes` claim (or the older `roles`).
	// +optional
	// +listType=atomic
	Scopes []string `json:"scopes,omitempty"`
}

// RequestStatus records the last on-demand request (annotation jeton.dev/requested-at)
// the operator handled.
type RequestStatus struct {
	// lastHandledRequestedAt is the value of the jeton.dev/requested-at annotation when the
	// operator last handled it: equal to the annotation once the pass it asked for is done
	// (for a TechnicalToken: once the probe it asked for is recorded, or found impossible).
	// +kubebuilder:validation:MaxLength=64
	// +optional
	LastHandledRequestedAt string `json:"lastHandledRequestedAt,omitempty"`
}

// Condition types. Ready is always present; Reconciling and Stalled are kstatus
// "abnormal-true" conditions, present only while true.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
)

// Condition reasons, CamelCase and specific, shared by the three kinds.
const (
	ReasonReady                   = "Ready"
	ReasonInjected                = "Injected"
	ReasonTokenExpired            = "TokenExpired"
	ReasonTokenExpiringSoon       = "TokenExpiringSoon"
	ReasonTokenConflict           = "TokenConflict"
	ReasonTechnicalTokenReuse     = "TechnicalTokenReuse"
	ReasonSecretNotFound          = "SecretNotFound"
	ReasonSecretKeyNotFound       = "SecretKeyNotFound"
	ReasonInvalidToken            = "InvalidToken"
	ReasonScopesMissing           = "ScopesMissing"
	ReasonClientNotFound          = "ClientNotFound"
	ReasonClientNotReady          = "ClientNotReady"
	ReasonClientDeleting          = "ClientDeleting"
	ReasonInvalidSIRET            = "InvalidSIRET"
	ReasonNamespaceNotAllowed     = "NamespaceNotAllowed"
	ReasonNamespaceOwnedElsewhere = "NamespaceOwnedElsewhere"
	ReasonNamespaceTerminating    = "NamespaceTerminating"
	ReasonNamespaceReserved       = "NamespaceReserved"
	ReasonAPIHostNotAllowed       = "APIHostNotAllowed"
	ReasonSecretClientMismatch    = "SecretClientMismatch"
	ReasonTargetSecretConflict    = "TargetSecretConflict"
	ReasonProbeSucceeded          = "ProbeSucceeded"
	ReasonProbeFailing            = "ProbeFailing"
	ReasonProbePending            = "ProbePending"
	ReasonSuspended               = "Suspended"
	ReasonUnauthorized            = "Unauthorized"
	ReasonExpired                 = "Expired"
	ReasonRevoked                 = "Revoked"
	ReasonInsufficientPrivileges  = "InsufficientPrivileges"
	ReasonRateLimited             = "RateLimited"
	ReasonUnreachable             = "Unreachable"
	// ReasonNetworkNotAllowed: the API refuses the caller's address for this token (an IP
	// allow-list on the token: API Entreprise / API Particulier 403 code 00107, Démarches
	// Numériques 403 "forbidden network"). The token is fine; the fix is on the network side.
	ReasonNetworkNotAllowed = "NetworkNotAllowed"
	// ReasonHostUnreachable: every probed token of one API host fails at the transport level
	// (timeouts, resets, refused connections): the vendor's address (a 12-hour IP ban) or the
	// network is the likely cause, not the tokens.
	ReasonHostUnreachable = "HostUnreachable"
	// ReasonTokenProlonged: the token's own expiry passed but the API still accepts it: it
	// was prolonged on the API portal (the API reads the expiry from its database, not from
	// the token), and the Secret holds the old string.
	ReasonTokenProlonged     = "TokenProlonged"
	ReasonTimeout            = "Timeout"
	ReasonServerError        = "ServerError"
	ReasonUnexpectedResponse = "UnexpectedResponse"
	ReasonInternalError      = "InternalError"
	// ReasonBaseURLMissing: no base URL is known for the API and environment and
	// spec.baseURL is empty; a user error, fixed by setting spec.baseURL.
	ReasonBaseURLMissing = "BaseURLMissing"
)

// Reasons that guard the cluster against the resources' editors.
const (
	// ReasonPodSecurityBelowFloor: a PublicClient's spec.isolation.podSecurity is below the
	// operator's --pod-security-floor; the namespace's labels are left as they are.
	ReasonPodSecurityBelowFloor = "PodSecurityBelowFloor"
)

// Well-known labels and annotations.
const (
	// LabelClient marks a client namespace and every Secret jeton injects, with the PublicClient name.
	LabelClient = "jeton.dev/client"
	// LabelHabilitation marks an injected Secret with the name of the Habilitation it comes from.
	LabelHabilitation = "jeton.dev/habilitation"
	// LabelHabilitationNamespace marks an injected Secret with the namespace of its Habilitation.
	LabelHabilitationNamespace = "jeton.dev/habilitation-namespace"
	// LabelManagedBy is the standard managed-by label, set to ManagedByValue on everything jeton creates.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy on objects jeton owns.
	ManagedByValue = "jeton"
	// AnnotationTokenFingerprint is set on every Secret jeton injects (injection.DesiredSecret);
	// it holds the fingerprint of the token the Secret carries (never the token). Restarted
	// pod templates carry fingerprints in AnnotationRestartedFor instead.
	AnnotationTokenFingerprint = "jeton.dev/token-fingerprint"
	// AnnotationOwnerProof is set by jeton on a namespace it created for a client: an HMAC
	// (keyed by a Secret of the first credentials namespace) over the namespace and the
	// client, which nobody else can forge. It lets a re-created PublicClient re-adopt the
	// namespace jeton created for it, and nothing else.
	AnnotationOwnerProof = "jeton.dev/owner-proof"
	// AnnotationRestartedFor is the pod-template annotation that restarts a workload: it holds
	// the fingerprints of the jeton Secrets the workload uses, so the same token never restarts twice.
	AnnotationRestartedFor = "jeton.dev/restarted-for"
	// AnnotationRequestedAt asks the operator to act on a resource now, as Flux's
	// reconcile.fluxcd.io/requestedAt does: set it to a new value (kubectl jeton writes a
	// timestamp) and the resource gets a pass at once; a TechnicalToken is probed, through
	// the same gate as every probe (one request in flight, Retry-After, host backoff), and
	// no sooner than 30s after its last probe: requests in between share one probe. The
	// status records the value handled in lastHandledRequestedAt. Values longer than
	// RequestedAtMaxLength are ignored.
	AnnotationRequestedAt = "jeton.dev/requested-at"
	// AnnotationGatewayCredentialRotation, on a Habilitation, is an opaque value (a time, by
	// `kubectl jeton rotate-gateway-credential`) that the gateway credential is bound to:
	// changing it mints a new credential into the client namespace and revokes the old one
	// at once, without touching the API token.
	AnnotationGatewayCredentialRotation = "jeton.dev/gateway-credential-rotation"
	// RequestedAtMaxLength bounds the annotation value the operator copies into status.
	RequestedAtMaxLength = 64
	// FinalizerCleanup is the finalizer jeton sets on its resources (never on a Namespace) so
	// that deleting one removes the Secrets it caused to be injected: credentials fail closed.
	FinalizerCleanup = "jeton.dev/cleanup"
)
