package siret

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		siret   string
		wantErr string // substring of the error; "" means valid
	}{
		{"valid: DINUM", "13002526500013", ""},
		{"valid: Ville de Paris", "21750001600019", ""},
		{"valid: private company", "73282932000074", ""},
		{"bad checksum: last digit changed", "13002526500014", "Luhn checksum does not match"},
		{"bad checksum: two digits swapped", "13002526500031", "Luhn checksum does not match"},
		{"La Poste: digit sum multiple of 5, Luhn-invalid", "35600000049837", ""},
		{"La Poste: digit sum multiple of 5, Luhn-valid too", "35600011719156", ""},
		{"La Poste: head office, Luhn-valid", "35600000000048", ""},
		{"La Poste: Luhn-valid but digit sum 18", "35600000000014", "multiple of 5"},
		{"La Poste: digit sum 14", "35600000000000", "multiple of 5"},
		{"13 digits", "1300252650001", "it has 13 digits, want 14"},
		{"15 digits", "130025265000130", "it has 15 digits, want 14"},
		{"SIREN only", "130025265", "it has 9 digits, want 14"},
		{"empty", "", "empty"},
		{"letter", "1300252650001A", "character 14 is not a digit"},
		{"letter O for zero", "13OO2526500013", "character 3 is not a digit"},
		{"spaces as printed on invoices", "130 025 265 00013", "character 4 is not a digit"},
		{"trailing newline", "13002526500013\n", "character 15 is not a digit"},
		{"fullwidth digits", "１３００２５２６５０００１３", "character 1 is not a digit"},
		{"negative", "-3002526500013", "character 1 is not a digit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.siret)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate(%q) = %v, want nil", tt.siret, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%q) = nil, want error containing %q", tt.siret, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate(%q) = %v, does not wrap ErrInvalid", tt.siret, err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate(%q) = %q, want it to contain %q", tt.siret, err, tt.wantErr)
			}
		})
	}
}

func TestValidateEchoesOnlyShortPrintableInput(t *testing.T) {
	tests := []struct {
		name     string
		input    string
		wantEcho bool
	}{
		{"short printable", "1300252650001", true},
		{"bad checksum", "13002526500014", true},
		{"control character", "1300252650001\x1b", false},
		{"non-ASCII", "1300252650001é", false},
		{"long", strings.Repeat("1", 40), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.input)
			if err == nil {
				t.Fatalf("Validate(%q) = nil, want an error", tt.input)
			}
			echoed := strings.Contains(err.Error(), tt.input)
			if echoed != tt.wantEcho {
				t.Errorf("Validate(%q) = %q: echoed input = %v, want %v", tt.input, err, echoed, tt.wantEcho)
			}
			if !tt.wantEcho && len(err.Error()) > 200 {
				t.Errorf("error message is %d bytes long, want a short message", len(err.Error()))
			}
		})
	}
}

// referenceValid is a deliberately naive, independent implementation of the SIRET rule,
// written from the INSEE definition, for FuzzValidateSIRET to compare against.
func referenceValid(s string) bool {
	if len(s) != 14 {
		return false
	}
	digits := make([]int, 0, 14)
	for _, r := range s {
		if !strings.ContainsRune("0123456789", r) {
			return false
		}
		digits = append(digits, strings.IndexRune("0123456789", r))
	}
	if strings.HasPrefix(s, "356000000") && s != "35600000000048" {
		total := 0
		for _, d := range digits {
			total += d
		}
		return total%5 == 0
	}
	// Luhn from the left: with 14 digits (even), positions 0, 2, 4... are the doubled ones.
	total := 0
	for i, d := range digits {
		if i%2 == 0 {
			d = (d * 2 / 10) + (d * 2 % 10)
		}
		total += d
	}
	return total%10 == 0
}

func FuzzValidateSIRET(f *testing.F) {
	for _, s := range []string{
		"13002526500013", "13002526500014", "35600000049837", "35600000000014",
		"35600000000048", "1300252650001", "130025265000130", "", "1300252650001A",
		"130 025 265 00013", "１３００２５２６５０００１３", "\xff\xfe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := Validate(s)
		if got, want := err == nil, referenceValid(s); got != want {
			t.Fatalf("Validate(%q) = %v, reference says valid = %v", s, err, want)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("Validate(%q) = %v, does not wrap ErrInvalid", s, err)
		}
	})
}

func BenchmarkValidate(b *testing.B) {
	for b.Loop() {
		if err := Validate("13002526500013"); err != nil {
			b.Fatal(err)
		}
	}
}
