// Package sanitize decides which names learnt from outside (an API's answer, a token's
// claims) are safe to keep in status, events and logs. The public APIs' answers may be
// huge, malformed or hostile (DESIGN.md §6): a proxy or a wrong base URL can echo the
// token back as a "privilege", or send ten thousand of them. Only bounded, scope-shaped
// names get through; everything else is counted, never shown.
package sanitize

import (
	"regexp"
	"slices"
)

// ScopePattern is the shape of a scope or privilege name: lower-case ASCII words joined by
// '_', '.', ':' or '-', starting with a letter.
//
// Every name the APIs document is lower snake_case (unites_legales_etablissements_insee,
// attestations_fiscales, cnaf_quotient_familial, dgfip_declarant1_nom...); '.', ':' and '-'
// are allowed for namespaced names (api_entreprise:read) that other APIs use. Upper case is
// refused on purpose: no documented name has any, and JWTs and base64 secrets are mixed
// case, so an echoed token can never pass for a name. Names are compared case-sensitively
// with spec.expectedScopes, so a capitalised variant would not be the same scope anyway.
//
// The length bound (128) keeps the longest real names: API Particulier has
// ants_extrait_immatriculation_vehicule_caracteristiques_techniques_vehicule (74).
const ScopePattern = `^[a-z][a-z0-9_.:-]{0,127}$`

// MaxScopeNameLen is the longest name ScopePattern accepts.
const MaxScopeNameLen = 128

// MaxScopes bounds how many names are kept. A real API Particulier introspection already
// lists about 40 scopes and a token with every DGFIP, CNAF, CNOUS, MESRI and France Travail
// field can pass 64, so the bound is 256, as spec.expectedScopes' MaxItems: at most
// 256 × 128 bytes (32 KiB) of names in a status, far below an object's size limit.
const MaxScopes = 256

// keyRun is the length from which a word holding a digit is taken for a key, not a word:
// hex API keys (32 characters) and other random strings that happen to be lower case look
// like that, while no real scope has a word of 16 characters with a digit in it
// (declarant1 is the longest kind).
const keyRun = 16

var scopeRE = regexp.MustCompile(ScopePattern)

// IsScopeName reports whether s is shaped like a scope name (ScopePattern) and has no
// key-like word (16 or more characters holding a digit).
func IsScopeName(s string) bool {
	if !scopeRE.MatchString(s) {
		return false
	}
	word, digit := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '_' || c == '.' || c == ':' || c == '-':
			word, digit = 0, false
			continue
		case '0' <= c && c <= '9':
			digit = true
		}
		if word++; word >= keyRun && digit {
			return false
		}
	}
	return true
}

// ScopeNames keeps the scope-shaped names of list (IsScopeName), sorted and without
// duplicates, at most MaxScopes of them (the first ones in sorted order, so the result does
// not depend on the order of the answer). dropped counts the entries left out: names of
// the wrong shape (empty ones included) and names beyond MaxScopes; duplicates of a kept
// name are not counted. It is a number meant for messages ("3 unexpected names ignored"):
// what was dropped is never shown. kept is nil when nothing is kept.
func ScopeNames(list []string) (kept []string, dropped int) {
	for _, s := range list {
		if IsScopeName(s) {
			kept = append(kept, s)
		} else {
			dropped++
		}
	}
	slices.Sort(kept)
	kept = slices.Compact(kept)
	if len(kept) > MaxScopes {
		dropped += len(kept) - MaxScopes
		// A copy, so that the array of a huge list does not stay alive behind a status.
		kept = append(make([]string, 0, MaxScopes), kept[:MaxScopes]...)
	}
	return kept, dropped
}

// IdentifierPattern is the shape of a token identifier kept in status: a JWT jti (a UUID
// on API Entreprise and API Particulier) or a Démarches Numériques token id (a UUID). It
// allows the other identifiers issuers use (ULIDs, base64url ids, urn-like ids) and bounds
// their length.
const IdentifierPattern = `^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`

var identifierRE = regexp.MustCompile(IdentifierPattern)

// IsIdentifier reports whether s matches IdentifierPattern.
func IsIdentifier(s string) bool { return identifierRE.MatchString(s) }
