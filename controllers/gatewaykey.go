package controllers

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/jeton-dev/jeton/internal/gateway"
)

// gatewayKeyRefused is the message of a resource naming the gateway credential key as its
// token.
const gatewayKeyRefused = "Secret %s/%s is jeton's gateway credential key, not a token: nothing reads it as one. Reference the Secret holding the token."

// isGatewayKey reports whether namespace/name is the gateway credential key Secret, which
// no Habilitation or TechnicalToken may read (not even to say why it is not a token):
// whoever reads it can mint a credential for any Habilitation served by the gateway.
func (o Options) isGatewayKey(namespace, name string) bool {
	return namespace == o.ownerKeyNamespace() && name == gateway.CredentialKeySecretName
}

// newGatewayCredentialKey reads the key of gateway credentials (gateway.MintCredential)
// exactly as the owner-proof key is read (ownerKey): from the cache, created once on first
// need (the first Habilitation delivered through the gateway), and a replaced key taking
// effect at the next pass of every Habilitation (mapSecret wakes them all), which then
// mints and delivers new credentials. It lives beside the owner-proof key, in the first
// credentials namespace: the gateway reads it there too.
func newGatewayCredentialKey(cache, reader client.Reader, writer client.Writer, opts Options) *ownerKey {
	k := &ownerKey{reader: reader, writer: writer, namespace: opts.ownerKeyNamespace(),
		name: gateway.CredentialKeySecretName, dataKey: gateway.CredentialKeyDataKey, what: "gateway credential key",
		advice: "every gateway credential is then minted again and delivered, and the workloads using them restart"}
	if opts.IsCredentialsNamespace(k.namespace) {
		k.cache = cache
	}
	return k
}
