// Package gateway is jeton's egress gateway: client workloads call the public APIs through
// it with a gateway credential; it adds the Habilitation's token, enforces the vendor's
// rules (recipient, methods and paths, headers) and keeps all of jeton's traffic under
// the vendor's limits. docs/gateway.md explains the design.
package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/jeton-dev/jeton/internal/ownership"
)

// credentialPrefix starts every gateway credential: a version, so that another identity
// mode (projected ServiceAccount tokens, checked by TokenReview) is told apart by its
// shape, and a credential is recognisable in a leak report.
const credentialPrefix = "jgw1."

// CredentialKeySecretName is the Secret (in the first credentials namespace) holding the
// key of gateway credentials. The manager creates it; the manager and the gateway read it.
// Replacing its key revokes every gateway credential at once (the manager re-mints them).
const CredentialKeySecretName = "jeton-gateway-credential-key"

// CredentialKeyDataKey is the data key of CredentialKeySecretName holding the key.
const CredentialKeyDataKey = "key"

// maxCredentialLen bounds what is parsed: a credential is 5+36+1+64 characters.
const maxCredentialLen = 128

// MintCredential is the gateway credential of the Habilitation whose UID is uid, under key,
// bound to rotation (the value of its jeton.dev/gateway-credential-rotation annotation,
// empty when absent): "jgw1.<uid>.<hex HMAC-SHA256 of uid and Binding(rotation)>".
//
// The gateway checks it without storage: it finds the Habilitation by UID in its cache and
// recomputes the HMAC. So it is useless anywhere else (it is not an API token), bound to
// one Habilitation (another client's UID gives another HMAC), and revocable: a new rotation
// value, a new key, or a deleted (even recreated, new UID) Habilitation invalidates it.
func MintCredential(key []byte, uid, rotation string) string {
	return credentialPrefix + uid + "." + ownership.Proof(key, "gateway-credential", uid, Binding(rotation))
}

// Binding is what a credential binds of a rotation value: its SHA-256, in hex. The
// annotation is an editor's text of any length; the gateway computes this once per change
// of the Habilitation (Entry.Binding), so a request costs one HMAC over a few bytes.
func Binding(rotation string) string {
	sum := sha256.Sum256([]byte(rotation))
	return hex.EncodeToString(sum[:])
}

// CredentialUID returns the Habilitation UID a credential claims, without checking it
// (VerifyCredential does), or false when cred does not have a credential's shape.
func CredentialUID(cred string) (string, bool) {
	if len(cred) > maxCredentialLen || !strings.HasPrefix(cred, credentialPrefix) {
		return "", false
	}
	uid, proof, ok := strings.Cut(cred[len(credentialPrefix):], ".")
	if !ok || uid == "" || len(proof) != 64 || !isUIDShape(uid) {
		return "", false
	}
	return uid, true
}

// VerifyCredential reports whether cred is the credential MintCredential gives for uid and
// rotation under key (constant-time comparison). An empty key verifies nothing.
func VerifyCredential(key []byte, cred, uid, rotation string) bool {
	return VerifyBound(key, cred, uid, Binding(rotation))
}

// VerifyBound is VerifyCredential with the rotation's Binding already computed.
func VerifyBound(key []byte, cred, uid, binding string) bool {
	got, ok := CredentialUID(cred)
	if !ok || got != uid || len(key) == 0 {
		return false
	}
	return ownership.Valid(key, cred[len(credentialPrefix)+len(uid)+1:], "gateway-credential", uid, binding)
}

// isUIDShape accepts what Kubernetes UIDs look like (hex digits and dashes), so that
// nothing else is ever used as an index key.
func isUIDShape(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == '-') {
			return false
		}
	}
	return true
}
