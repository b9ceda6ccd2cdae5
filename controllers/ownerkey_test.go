package controllers

import (
	"bytes"
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// TestOwnerKeyFollowsTheSecret: the owner-proof key is not cached for the life of the
// process: a key replaced (a leaked one) or deleted takes effect at the next read, and two
// replicas reading the same Secret agree.
func TestOwnerKeyFollowsTheSecret(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().Build()
	replica := func() *ownerKey { return &ownerKey{cache: c, reader: c, writer: c, namespace: "creds"} }
	a, b := replica(), replica()

	first, err := a.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != ownerKeySize {
		t.Fatalf("created a key of %d bytes, want %d", len(first), ownerKeySize)
	}
	if other, err := b.get(ctx); err != nil || !bytes.Equal(other, first) {
		t.Fatalf("the second replica reads another key (%v)", err)
	}

	// The admin replaces the key.
	s := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "creds", Name: ownerKeySecretName}, s); err != nil {
		t.Fatal(err)
	}
	replaced := bytes.Repeat([]byte{7}, ownerKeySize)
	s.Data[ownerKeyDataKey] = replaced
	if err := c.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]*ownerKey{"a": a, "b": b} {
		if got, err := k.get(ctx); err != nil || !bytes.Equal(got, replaced) {
			t.Errorf("replica %s still uses the replaced key (%v)", name, err)
		}
	}

	// The admin deletes it: a new one is created, and both replicas use it.
	if err := c.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	renewed, err := b.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(renewed, replaced) || bytes.Equal(renewed, first) {
		t.Error("a deleted key is still used")
	}
	if got, err := a.get(ctx); err != nil || !bytes.Equal(got, renewed) {
		t.Errorf("replica a does not use the key replica b created (%v)", err)
	}

	// A key too short is refused, not used.
	if err := c.Get(ctx, client.ObjectKey{Namespace: "creds", Name: ownerKeySecretName}, s); err != nil {
		t.Fatal(err)
	}
	s.Data[ownerKeyDataKey] = []byte("short")
	if err := c.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := a.get(ctx); err == nil {
		t.Error("a 5-byte key was used")
	}
}
