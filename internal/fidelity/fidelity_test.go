package fidelity

import (
	"os"
	"strings"
	"testing"
)

// Every published answer has its row in docs/api-fidelity.md, and names unique.
func TestEveryAnswerIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/api-fidelity.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range Answers {
		if seen[a.Name] {
			t.Errorf("answer %s twice", a.Name)
		}
		seen[a.Name] = true
		if !strings.Contains(string(doc), "| `"+a.Name+"` |") {
			t.Errorf("docs/api-fidelity.md has no row for %s", a.Name)
		}
		if a.Source == "" || a.Reason == "" {
			t.Errorf("answer %s has no source or no classification", a.Name)
		}
	}
}
