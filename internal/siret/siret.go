// Package siret validates SIRET numbers, the 14-digit identifiers of French establishments.
// A public client's SIRET is the `recipient` of every API call made on its behalf, so a typo
// must be caught before any call is made.
package siret

import (
	"errors"
	"fmt"
	"strconv"
)

// Length is the number of digits of a SIRET.
const Length = 14

// LaPosteSIREN is the SIREN of La Poste, whose establishments' SIRETs do not follow the Luhn
// checksum: INSEE numbers them so that the sum of their 14 digits is a multiple of 5.
const LaPosteSIREN = "356000000"

// laPosteHeadOffice is the SIRET of La Poste's head office: unlike its other establishments
// it is Luhn-valid and its digit sum (26) is not a multiple of 5 (python-stdnum makes the same
// exception).
const laPosteHeadOffice = "35600000000048"

// ErrInvalid is wrapped by every error Validate returns.
var ErrInvalid = errors.New("invalid SIRET")

// maxEcho is the longest input echoed back in an error message: longer inputs are surely
// not a SIRET typo, and echoing them would only flood logs and conditions.
const maxEcho = 32

// Validate returns nil for a valid SIRET: 14 ASCII digits with a Luhn checksum; SIRETs of
// La Poste (SIREN 356000000, i.e. first 9 digits) are valid instead when the sum of their
// 14 digits is a multiple of 5 (and La Poste's head office, 35600000000048, which is
// Luhn-valid). Errors wrap ErrInvalid, say what is wrong (length, non-digit, checksum) and
// echo the input only if it is short and printable.
func Validate(s string) error {
	if s == "" {
		return fmt.Errorf("%w: it is empty, want %d digits", ErrInvalid, Length)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return invalid(s, fmt.Sprintf("character %d is not a digit; a SIRET is %d digits, without spaces", i+1, Length))
		}
	}
	if len(s) != Length {
		return invalid(s, fmt.Sprintf("it has %d digits, want %d", len(s), Length))
	}
	if s[:9] == LaPosteSIREN && s != laPosteHeadOffice {
		if digitSum(s)%5 != 0 {
			return invalid(s, "the sum of the digits of a La Poste SIRET (SIREN 356000000) must be a multiple of 5; check the 14 digits against the SIRENE register")
		}
		return nil
	}
	if !luhn(s) {
		return invalid(s, "the Luhn checksum does not match; check the 14 digits against the SIRENE register (annuaire-entreprises.data.gouv.fr)")
	}
	return nil
}

func invalid(s, why string) error {
	if len(s) <= maxEcho && printableASCII(s) {
		return fmt.Errorf("%w %s: %s", ErrInvalid, strconv.Quote(s), why)
	}
	return fmt.Errorf("%w: %s", ErrInvalid, why)
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// luhn reports whether the digits of s pass the Luhn checksum. s holds ASCII digits only.
func luhn(s string) bool {
	sum := 0
	for i := 0; i < len(s); i++ {
		d := int(s[len(s)-1-i] - '0')
		if i%2 == 1 { // every second digit from the right is doubled
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

func digitSum(s string) int {
	sum := 0
	for i := 0; i < len(s); i++ {
		sum += int(s[i] - '0')
	}
	return sum
}
