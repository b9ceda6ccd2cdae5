package ownership

import "testing"

func TestProof(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	p := Proof(key, "ns", "name")
	tests := []struct {
		name  string
		key   []byte
		got   string
		parts []string
		want  bool
	}{
		{"same parts", key, p, []string{"ns", "name"}, true},
		{"other parts", key, p, []string{"ns", "other"}, false},
		{"parts shifted across the boundary", key, p, []string{"nsn", "ame"}, false},
		{"other key", []byte("another key"), p, []string{"ns", "name"}, false},
		{"no key", nil, Proof(nil, "ns", "name"), []string{"ns", "name"}, false},
		{"empty proof", key, "", []string{"ns", "name"}, false},
		{"upper-case hex is another string", key, "A" + p[1:], []string{"ns", "name"}, p[0] == 'A'},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Valid(tt.key, tt.got, tt.parts...); got != tt.want {
				t.Errorf("Valid = %v, want %v", got, tt.want)
			}
		})
	}
	if len(p) != 64 {
		t.Errorf("proof length %d, want 64 hex characters", len(p))
	}
}
