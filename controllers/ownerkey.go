package controllers

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	// ownerKeySecretName holds the key of the owner proofs jeton writes on the namespaces it
	// creates (see isolation.CreatedProof). Whoever can read it could forge a proof; it lives
	// in the first credentials namespace, whose readers can read every token anyway.
	ownerKeySecretName = "jeton-owner-proof-key"
	ownerKeyDataKey    = "key"
	ownerKeySize       = 32
)

// ownerKeyRefused is the message of a resource naming the owner-proof key as its token.
const ownerKeyRefused = "Secret %s/%s is jeton's owner-proof key, not a token: nothing reads it as one. Reference the Secret holding the token."

// isOwnerKey reports whether namespace/name is the owner-proof key Secret, which no
// Habilitation or TechnicalToken may read (not even to say why it is not a token).
func (o Options) isOwnerKey(namespace, name string) bool {
	return namespace == o.ownerKeyNamespace() && name == ownerKeySecretName
}

// ownerKey reads the owner-proof key, creating it on first use.
//
// It is read from the manager's cache, which watches every Secret of the credentials
// namespaces (the key lives in the first one): no request per read, and a key deleted or
// changed (a leaked key replaced) takes effect within the watch's latency on every replica,
// without a restart, so replicas agree. A key the cache has not seen yet (just created, or
// the cache is still filling) is read from the API server; only then is one created.
type ownerKey struct {
	// cache reads the key as watched; reader reads it from the API server.
	cache     client.Reader
	reader    client.Reader
	writer    client.Writer
	namespace string
	// name, dataKey and what name another key kept the same way (the gateway credential
	// key, gatewayCredentialKey); empty: the owner-proof key.
	name, dataKey, what string
	// advice ends the error of a Secret holding no valid key.
	advice string

	// mu makes one pass at a time create the key, so a replica creates it once.
	mu sync.Mutex
}

// secretName, keyName and noun default to the owner-proof key's.
func (k *ownerKey) secretName() string { return orDefault(k.name, ownerKeySecretName) }
func (k *ownerKey) keyName() string    { return orDefault(k.dataKey, ownerKeyDataKey) }
func (k *ownerKey) noun() string       { return orDefault(k.what, "owner-proof key") }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (k *ownerKey) get(ctx context.Context) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	key := client.ObjectKey{Namespace: k.namespace, Name: k.secretName()}
	if k.cache != nil {
		s := &corev1.Secret{}
		err := k.cache.Get(ctx, key, s)
		if err == nil {
			return k.valid(s)
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading the %s Secret %s/%s: %w", k.noun(), k.namespace, k.secretName(), err)
		}
	}
	for range 2 {
		s := &corev1.Secret{}
		err := k.reader.Get(ctx, key, s)
		if err == nil {
			return k.valid(s)
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading the %s Secret %s/%s: %w", k.noun(), k.namespace, k.secretName(), err)
		}
		b := make([]byte, ownerKeySize)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: k.namespace, Name: k.secretName(),
				Labels: map[string]string{"app.kubernetes.io/name": "jeton"}},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{k.keyName(): b},
		}
		err = k.writer.Create(ctx, s)
		if err == nil {
			return b, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating the %s Secret %s/%s: %w", k.noun(), k.namespace, k.secretName(), err)
		}
		// Another replica created it meanwhile: read theirs.
	}
	return nil, fmt.Errorf("the %s Secret %s/%s was created and deleted while being read; retrying", k.noun(), k.namespace, k.secretName())
}

// valid returns the key s holds, or why it holds none.
func (k *ownerKey) valid(s *corev1.Secret) ([]byte, error) {
	if key := s.Data[k.keyName()]; len(key) >= ownerKeySize {
		return key, nil
	}
	advice := orDefault(k.advice, "re-created clients then need spec.adoptNamespace to re-adopt their retained namespaces")
	return nil, fmt.Errorf("the %s Secret %s/%s holds no %d-byte key %q: delete it and jeton creates a new one (%s)",
		k.noun(), k.namespace, k.secretName(), ownerKeySize, k.keyName(), advice)
}
