package gateway

import (
	"strings"
	"testing"
)

func TestCredential(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	const uidA, uidB = "6f1c2d3e-0000-4000-8000-00000000000a", "6f1c2d3e-0000-4000-8000-00000000000b"
	credA := MintCredential(key, uidA, "")
	long := strings.Repeat("r", 200<<10)
	if uid, ok := CredentialUID(credA); !ok || uid != uidA {
		t.Fatalf("CredentialUID(minted) = %q, %v", uid, ok)
	}
	tests := []struct {
		name          string
		key           []byte
		cred          string
		uid, rotation string
		want          bool
	}{
		{"its own Habilitation", key, credA, uidA, "", true},
		{"another Habilitation (another client)", key, credA, uidB, "", false},
		{"A's proof under B's UID", key, strings.Replace(credA, uidA, uidB, 1), uidB, "", false},
		{"rotated: the old credential is revoked", key, credA, uidA, "2026-12-07T06:00:00Z", false},
		{"the new credential after rotation", key, MintCredential(key, uidA, "r1"), uidA, "r1", true},
		{"an editor's 200 KiB rotation value binds as well", key, MintCredential(key, uidA, long), uidA, long, true},
		{"...and another one does not", key, MintCredential(key, uidA, long), uidA, long + "x", false},
		{"another key (the key was replaced)", []byte("another key, 32 bytes long......"), credA, uidA, "", false},
		{"no key", nil, MintCredential(nil, uidA, ""), uidA, "", false},
		{"a forged proof", key, credA[:len(credA)-1] + "0", uidA, "", strings.HasSuffix(credA, "0")},
		{"an API token is not a credential", key, "eyJhbGciOiJIUzI1NiJ9.e30.sig", uidA, "", false},
		{"empty", key, "", uidA, "", false},
		{"too long", key, credA + strings.Repeat("0", 200), uidA, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifyCredential(tt.key, tt.cred, tt.uid, tt.rotation); got != tt.want {
				t.Errorf("VerifyCredential = %v, want %v", got, tt.want)
			}
		})
	}
	for _, bad := range []string{"jgw1.", "jgw1.UPPER-CASE." + strings.Repeat("0", 64), "jgw1.a/b." + strings.Repeat("0", 64), "jgw1.abc.short", "jgw2." + uidA + "." + strings.Repeat("0", 64)} {
		if uid, ok := CredentialUID(bad); ok {
			t.Errorf("CredentialUID(%q) = %q, true; want refused", bad, uid)
		}
	}
}

// TestBindingIsSmall: the gateway keeps and HMACs the binding, never the editor's text.
func TestBindingIsSmall(t *testing.T) {
	if b := Binding(strings.Repeat("r", 200<<10)); len(b) != 64 {
		t.Errorf("binding of a 200 KiB value is %d bytes, want 64", len(b))
	}
	if Binding("a") == Binding("b") || Binding("") == Binding(" ") {
		t.Error("two rotation values share a binding")
	}
}
