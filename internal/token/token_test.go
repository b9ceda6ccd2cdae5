package token

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalize(t *testing.T) {
	const tok = "eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJ4In0.c2lnbmF0dXJl"
	tests := []struct {
		name    string
		raw     []byte
		want    string
		wantErr string
	}{
		{"as is", []byte(tok), tok, ""},
		{"trailing newline (echo > file)", []byte(tok + "\n"), tok, ""},
		{"CRLF", []byte(tok + "\r\n"), tok, ""},
		{"surrounding spaces and tabs", []byte(" \t" + tok + " \t\n"), tok, ""},
		{"non-ASCII UTF-8 is kept", []byte("jéton-été"), "jéton-été", ""},
		{"exactly MaxSize", []byte(strings.Repeat("a", MaxSize)), strings.Repeat("a", MaxSize), ""},
		{"MaxSize plus a trailing newline", []byte(strings.Repeat("a", MaxSize) + "\n"), strings.Repeat("a", MaxSize), ""},
		{"empty", nil, "", "the Secret key is empty"},
		{"only whitespace", []byte(" \n\t\r\n"), "", "holds only whitespace"},
		{"oversized", []byte(strings.Repeat("a", MaxSize+1)), "", "8193 bytes long, more than the 8192"},
		{"non-UTF-8", []byte("abc\xff\xfedef"), "", "not valid UTF-8"},
		{"inner space", []byte("eyJhbGciOiJIUzI1NiJ9 " + tok), "", "at byte 21 of the Secret value"},
		{"Bearer prefix", []byte("Bearer " + tok + "\n"), "", `starts with "Bearer ": store the token alone`},
		{"bearer prefix, lower case", []byte("bearer " + tok), "", `starts with "Bearer "`},
		{"just the word Bearer", []byte("Bearer\n"), "Bearer", ""},
		{"inner newline (two tokens)", []byte(tok + "\n" + tok + "\n"), "", "at byte 50 of"},
		{"offset counts trimmed leading whitespace", []byte("\n\nab cd"), "", "at byte 5 of"},
		{"inner tab", []byte("abc\tdef"), "", "whitespace or an invisible character"},
		{"non-breaking space", []byte("abc\u00a0def"), "", "whitespace or an invisible character"},
		{"NUL byte", []byte("abc\x00def"), "", "whitespace or an invisible character"},
		{"escape sequence", []byte("abc\x1b[0mdef"), "", "whitespace or an invisible character"},
		{"byte order mark", []byte("\ufeff" + tok), "", "at byte 1 of"},
		{"zero-width space", []byte("abc\u200bdef"), "", "whitespace or an invisible character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(tt.raw)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Normalize() error = %v", err)
				}
				if got != tt.want {
					t.Fatalf("Normalize() = %q, want %q", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Normalize() = %q, want an error containing %q", got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Normalize() error = %q, want it to contain %q", err, tt.wantErr)
			}
			var de *DecodeError
			if !errors.As(err, &de) || !errors.Is(err, ErrInvalid) {
				t.Errorf("Normalize() error %T is not a *DecodeError wrapping ErrInvalid", err)
			}
			assertNoLeak(t, err.Error(), string(tt.raw))
		})
	}
}

func TestFingerprint(t *testing.T) {
	tests := []struct{ token, want string }{
		// Prefixes of well-known SHA-256 test vectors.
		{"abc", "ba7816bf8f01cfea"},
		{"", "e3b0c44298fc1c14"},
	}
	for _, tt := range tests {
		if got := Fingerprint(tt.token); got != tt.want {
			t.Errorf("Fingerprint(%q) = %q, want %q", tt.token, got, tt.want)
		}
	}
	if Fingerprint("abc\n") == Fingerprint("abc") {
		t.Error("Fingerprint ignores a trailing newline: it must hash exactly what it is given (normalize first)")
	}
}

var fingerprintRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// FuzzNormalize checks that Normalize yields a clean token or an error that reveals nothing.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"", " ", "abc", "abc\n", " \tabc\r\n", "a b", "\xff", "\ufeffabc", "jéton",
		"eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJ4In0.c2lnbmF0dXJl\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		tok, err := Normalize(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("error message is %d bytes long: messages must not grow with the input", len(err.Error()))
			}
			if len(raw) >= 16 && strings.Contains(err.Error(), string(raw)) {
				t.Fatalf("error %q contains the input", err)
			}
			return
		}
		if tok == "" || len(tok) > MaxSize || !utf8.ValidString(tok) {
			t.Fatalf("Normalize accepted %q", tok)
		}
		if strings.TrimSpace(tok) != tok {
			t.Fatalf("Normalize(%q) = %q, which has surrounding whitespace", raw, tok)
		}
		if !strings.Contains(string(raw), tok) {
			t.Fatalf("Normalize(%q) = %q, which is not part of the input", raw, tok)
		}
		if fp := Fingerprint(tok); !fingerprintRE.MatchString(fp) {
			t.Fatalf("Fingerprint = %q, want 16 lowercase hex characters", fp)
		}
	})
}

func BenchmarkFingerprint(b *testing.B) {
	tok := testJWT(b, fullClaims())
	b.SetBytes(int64(len(tok)))
	for b.Loop() {
		Fingerprint(tok)
	}
}

func BenchmarkNormalize(b *testing.B) {
	raw := []byte(testJWT(b, fullClaims()) + "\n")
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Normalize(raw); err != nil {
			b.Fatal(err)
		}
	}
}
