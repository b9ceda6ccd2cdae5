package sanitize

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// jwtLike is shaped like a token (header.payload.signature); it is no real token.
const jwtLike = "eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJ4In0.c2lnbmF0dXJl"

func TestIsScopeName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		// Real names, from the APIs' documentation and the emulator.
		{"API Entreprise privilege", "unites_legales_etablissements_insee", true},
		{"API Entreprise privilege, short", "attestations_fiscales", true},
		{"API Particulier scope", "cnaf_quotient_familial", true},
		{"scope with a digit", "dgfip_declarant1_nom", true},
		{"longest real scope (74)", "ants_extrait_immatriculation_vehicule_caracteristiques_techniques_vehicule", true},
		{"namespaced name", "api_particulier:read", true},
		{"dotted and dashed", "fr.gouv.api-entreprise", true},
		{"one letter", "a", true},
		{"128 characters", "a" + strings.Repeat("b", 127), true},
		{"long word without digit", "caracteristiquestechniquesvehicule", true},

		{"empty", "", false},
		{"too long (129)", "a" + strings.Repeat("b", 128), false},
		{"starts with a digit", "1scope", false},
		{"starts with a separator", "_scope", false},
		{"upper case", "Attestations_fiscales", false},
		{"space", "attestations fiscales", false},
		{"slash", "attestations/fiscales", false},
		{"quote", `scope"`, false},
		{"JWT-looking", jwtLike, false},
		{"lower-cased JWT header", "eyjhbgcioijiuzi1nij9", false},
		{"hex API key", "d7e9c9f4c3ca00caadde31f50fd4521a", false},
		{"unicode letter", "attestations_fiscalés", false},
		{"unicode look-alike", "аttestations", false}, // Cyrillic а
		{"NUL", "scope\x00", false},
		{"newline", "scope\nlevel=error msg=fake", false},
		{"ANSI escape", "scope\x1b[31m", false},
		{"DEL", "scope\x7f", false},
		{"invalid UTF-8", "scope\xff", false},
	}
	re := regexp.MustCompile(ScopePattern)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsScopeName(tt.in); got != tt.want {
				t.Errorf("IsScopeName(%q) = %v, want %v", tt.in, got, tt.want)
			}
			if IsScopeName(tt.in) && (!re.MatchString(tt.in) || len(tt.in) > MaxScopeNameLen) {
				t.Errorf("IsScopeName(%q) accepts what ScopePattern refuses", tt.in)
			}
		})
	}
}

func TestScopeNames(t *testing.T) {
	many := make([]string, 10_000)
	for i := range many {
		many[i] = fmt.Sprintf("scope_%05d", i)
	}
	var first256 []string
	for i := range MaxScopes {
		first256 = append(first256, fmt.Sprintf("scope_%05d", i))
	}
	reversed := slices.Clone(many)
	slices.Reverse(reversed)

	tests := []struct {
		name        string
		in          []string
		want        []string
		wantDropped int
	}{
		{"nil", nil, nil, 0},
		{"empty list", []string{}, nil, 0},
		{"valid, sorted", []string{"unites_legales_etablissements_insee", "attestations_fiscales"},
			[]string{"attestations_fiscales", "unites_legales_etablissements_insee"}, 0},
		{"duplicates are not dropped names", []string{"b", "a", "b", "a"}, []string{"a", "b"}, 0},
		{"empty name", []string{"", "a"}, []string{"a"}, 1},
		{"too long", []string{"a" + strings.Repeat("b", 128), "a"}, []string{"a"}, 1},
		{"bad characters", []string{"a b", "a/b", `a"b`, "A", "a"}, []string{"a"}, 4},
		{"JWT-looking", []string{jwtLike, "attestations_fiscales"}, []string{"attestations_fiscales"}, 1},
		{"unicode", []string{"scopé", "日本", "a"}, []string{"a"}, 2},
		{"control characters", []string{"a\x00", "a\n", "a\r", "\x1b[2J", "a\t"}, nil, 5},
		{"only bad", []string{jwtLike}, nil, 1},
		{"too many: first 256 in sorted order", many, first256, 10_000 - MaxScopes},
		{"too many: order of the answer does not matter", reversed, first256, 10_000 - MaxScopes},
		{"duplicates and too many", append(slices.Clone(many[:300]), many[:300]...), first256, 300 - MaxScopes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, dropped := ScopeNames(tt.in)
			if !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("ScopeNames() kept %d names %.80q, want %d %.80q", len(got), got, len(tt.want), tt.want)
			}
			if dropped != tt.wantDropped {
				t.Errorf("ScopeNames() dropped %d, want %d", dropped, tt.wantDropped)
			}
			if cap(got) > MaxScopes {
				t.Errorf("ScopeNames() returned a slice of capacity %d: it keeps a huge array alive", cap(got))
			}
		})
	}
}

// ScopeNames must not reorder or alter the caller's list.
func TestScopeNamesLeavesInputAlone(t *testing.T) {
	in := []string{"b", "a", "B"}
	ScopeNames(in)
	if !slices.Equal(in, []string{"b", "a", "B"}) {
		t.Errorf("input changed to %q", in)
	}
}

func TestIsIdentifier(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"UUID", "6d7e1f32-0a4b-4c1e-9b53-2f6a8c9d0e1f", true},
		{"upper-case UUID", "6D7E1F32-0A4B-4C1E-9B53-2F6A8C9D0E1F", true},
		{"ULID", "01ARZ3NDEKTSV4RRFFQ69G5FAV", true},
		{"urn-like", "urn:jeton:token.1", true},
		{"128 characters", strings.Repeat("a", 128), true},
		{"empty", "", false},
		{"too long (129)", strings.Repeat("a", 129), false},
		{"starts with a separator", "-abc", false},
		{"space", "abc def", false},
		{"slash and plus (base64)", "ab+c/d==", false},
		{"quote", `abc"`, false},
		{"unicode", "idé", false},
		{"NUL", "abc\x00", false},
		{"newline", "abc\nmsg=fake", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsIdentifier(tt.in); got != tt.want {
				t.Errorf("IsIdentifier(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
