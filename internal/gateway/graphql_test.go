package gateway

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func TestGraphQLOperations(t *testing.T) {
	q := func(name string) Operation { return Operation{Type: "query", Name: name} }
	m := func(name string) Operation { return Operation{Type: "mutation", Name: name} }
	tests := []struct {
		name string
		doc  string
		want []Operation // nil with err
		err  bool
	}{
		{"shorthand query", `{ demarche(number: 1) { id } }`, []Operation{q("")}, false},
		{"named query", `query getDemarche($n: Int!) { demarche(number: $n) { id } }`, []Operation{q("getDemarche")}, false},
		{"anonymous mutation", `mutation { a }`, []Operation{m("")}, false},
		{"subscription", `subscription s { a }`, []Operation{{Type: "subscription", Name: "s"}}, false},
		{"several operations and fragments", `
			query q1 { ...F }
			fragment F on Demarche @include(if: true) { id number }
			mutation m1($input: DossierAccepterInput!) { dossierAccepter(input: $input) { errors { message } } }
			query q2 { b }`, []Operation{q("q1"), m("m1"), q("q2")}, false},
		{"operation named like a keyword", `query mutation { a } mutation query { b }`, []Operation{q("mutation"), m("query")}, false},
		{"a field named mutation", `{ mutation subscription { query } }`, []Operation{q("")}, false},
		{"mutation in a string", `{ a(s: "} mutation { b } {") }`, []Operation{q("")}, false},
		{"escaped quotes in a string", `{ a(s: "\" } mutation { b } { \"") }`, []Operation{q("")}, false},
		{"unicode escape", `{ a(s: "\u007D mutation") }`, []Operation{q("")}, false},
		{"mutation in a block string", `{ a(s: """ } mutation { b } { """) }`, []Operation{q("")}, false},
		// graphql-ruby's lexer and the specification disagree on both (attack_test.go,
		// TestAttackGraphQLLexerDivergence): refused.
		{"escaped triple quote in a block string", `{ a(s: """ \""" } mutation { b } { """) }`, nil, true},
		{"block string with quotes and newlines", "{ a(s: \"\"\"x\"y\"\"z\n}\n\"\"\") }", []Operation{q("")}, false},
		{"mutation in a comment", "# mutation { b }\n{ a }", []Operation{q("")}, false},
		{"a lone CR in a comment", "{ a } # x\rmutation { b }", nil, true},
		{"a comment ends at CRLF", "{ a } # x\r\nmutation { b }", []Operation{q(""), m("")}, false},
		{"brace in a comment", "{ a # }\n}", []Operation{q("")}, false},
		{"commas, tabs and a byte order mark", "\uFEFF,query\tq,{a,b}", []Operation{q("q")}, false},
		{"default values with objects and lists", `query q($i: In = {a: [1, 2.5e3, -0.1], b: {c: "}"}}) @dir(x: {y: [{}]}) { a }`, []Operation{q("q")}, false},
		{"non-ASCII inside strings", `{ a(s: "Démarches — “numériques”") }`, []Operation{q("")}, false},
		{"spreads and inline fragments", `{ ... on Dossier { id } ...F }`, []Operation{q("")}, false},
		{"empty document", ``, nil, false},
		{"only a fragment", `fragment F on T { a }`, nil, false},

		{"unterminated string", `{ a(s: "x) }`, nil, true},
		{"line break in a string", "{ a(s: \"x\ny\") }", nil, true},
		{"unknown escape", `{ a(s: "\q") }`, nil, true},
		{"short unicode escape", `{ a(s: "\u12") }`, nil, true},
		{"braced unicode escape (refused, not guessed)", `{ a(s: "\u{7D}") }`, nil, true},
		{"unterminated block string", `{ a(s: """x) }`, nil, true},
		{"unbalanced braces", `{ a { b }`, nil, true},
		{"mismatched brackets", `{ a(x: [1}) }`, nil, true},
		{"stray closing brace", `{ a } }`, nil, true},
		{"non-ASCII name", `{ démarche }`, nil, true},
		{"control character", "{ a\x00 }", nil, true},
		{"lone dot", `{ a. }`, nil, true},
		{"number followed by a name", `{ a(x: 1e) }`, nil, true},
		{"leading zero", `{ a(x: 01) }`, nil, true},
		{"schema definition", `type Query { a: Int }`, nil, true},
		{"extension", `extend type Query { a: Int }`, nil, true},
		{"operation without selection set", `query q`, nil, true},
		{"garbage before an operation", `x mutation { a }`, nil, true},
		{"fragment named on", `fragment on on T { a }`, nil, true},
		{"fragment without type condition", `fragment F T { a }`, nil, true},
		{"too deep", strings.Repeat("{a", maxGraphQLNesting+1) + strings.Repeat("}", maxGraphQLNesting+1), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := GraphQLOperations(tt.doc)
			if tt.err {
				if err == nil {
					t.Fatalf("read %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("operations %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSelectOperation(t *testing.T) {
	str := func(s string) *string { return &s }
	ops := []Operation{{"query", "q"}, {"mutation", "m"}}
	tests := []struct {
		name string
		ops  []Operation
		op   *string
		want string // Type:Name, or "" for an error
	}{
		{"the only operation", []Operation{{"mutation", ""}}, nil, "mutation:"},
		{"the only operation, named", []Operation{{"query", "q"}}, nil, "query:q"},
		{"by name", ops, str("m"), "mutation:m"},
		{"by name, the query", ops, str("q"), "query:q"},
		{"several, no name", ops, nil, ""},
		{"unknown name", ops, str("x"), ""},
		{"empty name never names the anonymous operation", []Operation{{"mutation", ""}}, str(""), ""},
		{"a duplicated name", []Operation{{"query", "a"}, {"mutation", "a"}}, str("a"), ""},
		{"no operation", nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SelectOperation(tt.ops, tt.op)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("selected %v, want an error", got)
				}
				return
			}
			if err != nil || got.Type+":"+got.Name != tt.want {
				t.Fatalf("selected %v, %v; want %s", got, err, tt.want)
			}
		})
	}
}

// referenceStrip blanks out comments, strings and block strings with one regular
// expression, independently of the lexer (leftmost-first: whichever starts first wins).
var referenceStrip = regexp.MustCompile(`(?s)"""(?:\\"""|.)*?"""|"(?:\\.|[^"\\\n\r])*"|#[^\n\r]*`)

// referenceDefinitionKeywords is a simple reference reading of a document: the first word
// of every top-level definition (after comments and strings are blanked out, a definition
// starts at the beginning or right after a bracket closes back to depth 0).
func referenceDefinitionKeywords(doc string) []string {
	s := referenceStrip.ReplaceAllString(doc, " ")
	var words []string
	depth, start := 0, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{' || c == '(' || c == '[':
			if depth == 0 && start {
				words = append(words, "{")
			}
			start = false
			depth++
		case c == '}' || c == ')' || c == ']':
			depth--
			if depth == 0 {
				start = c == '}'
			}
		case depth == 0 && start && isNameStart(c):
			j := i
			for j < len(s) && isNameContinue(s[j]) {
				j++
			}
			words = append(words, s[i:j])
			start = false
			i = j - 1
		}
	}
	return words
}

// FuzzGraphQLMutation: the lexer never panics, and a document it reads as holding no
// mutation or subscription has none by the reference reading either.
func FuzzGraphQLMutation(f *testing.F) {
	for _, seed := range []string{
		`{ a }`, `query q { a } mutation m { b }`, `mutation { a }`, `subscription { a }`,
		`{ a(s: "} mutation { b } {") }`, `{ a(s: """ \""" } mutation { b } { """) }`,
		"# mutation\n{ a }", "{ a } # x\rmutation { b }", `query mutation { a }`,
		`fragment F on T { a } query q { ...F }`, `query q($i: In = {a: "}"}) @d(x: [{}]) { a }`,
		"\uFEFF{a}", `{ a(x: -1.5e10) }`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		ops, err := GraphQLOperations(doc)
		if err != nil {
			return
		}
		for _, op := range ops {
			if op.Type != "query" {
				return
			}
		}
		for _, w := range referenceDefinitionKeywords(doc) {
			if w == "mutation" || w == "subscription" {
				t.Fatalf("read as query-only (%v), but the reference finds a %s in %q", ops, w, doc)
			}
		}
		if op, err := SelectOperation(ops, nil); err == nil && op.Type != "query" {
			t.Fatalf("selected %v from a query-only document", op)
		}
	})
}

func TestReferenceDefinitionKeywords(t *testing.T) {
	// The reference itself must see what it is meant to see, or the fuzz target proves nothing.
	for doc, want := range map[string]string{
		`{ a } mutation m { b }`:                    "{ mutation",
		`query q { a(s: "mutation") }`:              "query",
		"# mutation\nquery q($x: I = {a: 1}) { a }": "query",
		`{ a(s: """ \""" } mutation { """) }`:       "{",
		"{ a } # x\rmutation { b }":                 "{ mutation",
	} {
		if got := strings.Join(referenceDefinitionKeywords(doc), " "); got != want {
			t.Errorf("reference(%q) = %q, want %q", doc, got, want)
		}
	}
}
