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

	// mu makes one pass at a time create the key, so a replica creates it once.
	mu sync.Mutex
}

func (k *ownerKey) get(ctx context.Context) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	key := client.ObjectKey{Namespace: k.namespace, Name: ownerKeySecretName}
	if k.cache != nil {
		s := &corev1.Secret{}
		err := k.cache.Get(ctx, key, s)
		if err == nil {
			return k.valid(s)
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading the owner-proof key Secret %s/%s: %w", k.namespace, ownerKeySecretName, err)
		}
	}
	for range 2 {
		s := &corev1.Secret{}
		err := k.reader.Get(ctx, key, s)
		if err == nil {
			return k.valid(s)
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading the owner-proof key Secret %s/%s: %w", k.namespace, ownerKeySecretName, err)
		}
		b := make([]byte, ownerKeySize)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: k.namespace, Name: ownerKeySecretName,
				Labels: map[string]string{"app.kubernetes.io/name": "jeton"}},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{ownerKeyDataKey: b},
		}
		err = k.writer.Create(ctx, s)
		if err == nil {
			return b, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating the owner-proof key Secret %s/%s: %w", k.namespace, ownerKeySecretName, err)
		}
		// Another replica created it meanwhile: read theirs.
	}
	return nil, fmt.Errorf("the owner-proof key Secret %s/%s was created and deleted while being read; retrying", k.namespace, ownerKeySecretName)
}

// valid returns the key s holds, or why it holds none.
func (k *ownerKey) valid(s *corev1.Secret) ([]byte, error) {
	if key := s.Data[ownerKeyDataKey]; len(key) >= ownerKeySize {
		return key, nil
	}
	return nil, fmt.Errorf("the owner-proof key Secret %s/%s holds no %d-byte key %q: delete it and jeton creates a new one (re-created clients then need spec.adoptNamespace to re-adopt their retained namespaces)",
		k.namespace, ownerKeySecretName, ownerKeySize, ownerKeyDataKey)
}
