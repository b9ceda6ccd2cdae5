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

// ownerKey loads the owner-proof key once, creating it on first use. It reads from the API
// server: the key is needed rarely (creating, re-adopting or releasing a namespace) and the
// cache may not hold that namespace.
type ownerKey struct {
	reader    client.Reader
	writer    client.Writer
	namespace string

	mu  sync.Mutex
	key []byte
}

func (k *ownerKey) get(ctx context.Context) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.key != nil {
		return k.key, nil
	}
	for range 2 {
		s := &corev1.Secret{}
		err := k.reader.Get(ctx, client.ObjectKey{Namespace: k.namespace, Name: ownerKeySecretName}, s)
		if err == nil {
			if key := s.Data[ownerKeyDataKey]; len(key) >= ownerKeySize {
				k.key = key
				return key, nil
			}
			return nil, fmt.Errorf("the owner-proof key Secret %s/%s holds no %d-byte key %q: delete it and jeton creates a new one (re-created clients then need spec.adoptNamespace to re-adopt their retained namespaces)",
				k.namespace, ownerKeySecretName, ownerKeySize, ownerKeyDataKey)
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading the owner-proof key Secret %s/%s: %w", k.namespace, ownerKeySecretName, err)
		}
		key := make([]byte, ownerKeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: k.namespace, Name: ownerKeySecretName,
				Labels: map[string]string{"app.kubernetes.io/name": "jeton"}},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{ownerKeyDataKey: key},
		}
		err = k.writer.Create(ctx, s)
		if err == nil {
			k.key = key
			return key, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating the owner-proof key Secret %s/%s: %w", k.namespace, ownerKeySecretName, err)
		}
		// Another replica created it meanwhile: read theirs.
	}
	return nil, fmt.Errorf("the owner-proof key Secret %s/%s was created and deleted while being read; retrying", k.namespace, ownerKeySecretName)
}
