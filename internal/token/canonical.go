package token

import (
	"encoding/base64"
	"strings"
)

// Canonical returns one spelling for all the spellings of a token that an API may accept as
// the same token, so that fingerprints compare tokens rather than strings:
//
//   - a JWT (three dot-separated base64 segments): each segment re-encoded as unpadded
//     base64url, whether it was written padded or in the standard alphabet;
//   - a Démarches Numériques token (base64 of "<token-id UUID>;<secret>"): the decoded value,
//     with the UUID in lower case (the server looks the id up as a UUID, whose case does not
//     matter), re-encoded as unpadded base64url;
//   - anything else: unchanged.
//
// Erring towards merging spellings is failing closed: two strings that may be one token are
// treated as one, never the other way round.
func Canonical(tok string) string {
	if parts := strings.Split(tok, "."); len(parts) == 3 {
		for i, p := range parts {
			b, ok := decodeBase64(p)
			if !ok {
				return tok
			}
			parts[i] = base64.RawURLEncoding.EncodeToString(b)
		}
		return strings.Join(parts, ".")
	}
	payload, ok := decodeBase64(tok)
	if !ok {
		return tok
	}
	id, secret, found := strings.Cut(string(payload), ";")
	if !found || !isUUID(id) || secret == "" {
		return tok
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strings.ToLower(id) + ";" + secret))
}
