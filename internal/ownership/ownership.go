// Package ownership makes the proofs jeton leaves on what it creates (a client namespace,
// an injected Secret): HMACs keyed by a secret only jeton holds, so that whoever can create
// a look-alike (a namespace, a labelled Secret) cannot make jeton take it for its own.
package ownership

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Proof is the hex HMAC-SHA256 of parts under key. Parts are length-prefixed, so that no
// two lists of parts give the same proof.
func Proof(key []byte, parts ...string) string {
	mac := hmac.New(sha256.New, key)
	for _, p := range parts {
		_, _ = fmt.Fprintf(mac, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(mac.Sum(nil))
}

// Valid reports whether got is the proof of parts under key (constant time). An empty key
// or proof is never valid.
func Valid(key []byte, got string, parts ...string) bool {
	if len(key) == 0 || got == "" {
		return false
	}
	return hmac.Equal([]byte(got), []byte(Proof(key, parts...)))
}
