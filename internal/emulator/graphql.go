package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
)

// A small reader of GraphQL documents (https://spec.graphql.org/October2021/), enough to
// tell which operation a request runs, whether it is a mutation, and its selected fields:
// the emulator records mutations and answers the selections it knows. It checks no types.

// gqlField is a selected field: its response key (alias or name), name and selections.
type gqlField struct {
	key, name string
	sub       []gqlField
}

// gqlOperation is the operation a request runs: query, mutation or subscription.
type gqlOperation struct {
	kind, name string
	fields     []gqlField
}

// maxGraphQLName bounds the names the emulator may write back (response keys).
const maxGraphQLName = 128

// parseGraphQLRequest returns the operation a GraphQL JSON request runs: the one named
// by operationName, or the document's only one.
func parseGraphQLRequest(body []byte) (gqlOperation, error) {
	var req struct {
		Query         string `json:"query"`
		OperationName string `json:"operationName"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return gqlOperation{}, fmt.Errorf("body is not a GraphQL JSON request: %v", err)
	}
	ops, err := parseGraphQLDocument(req.Query)
	if err != nil {
		return gqlOperation{}, err
	}
	switch {
	case len(ops) == 0:
		return gqlOperation{}, errors.New("the document has no operation")
	case req.OperationName == "" && len(ops) > 1:
		return gqlOperation{}, errors.New("an operation name is required")
	case req.OperationName == "":
		return ops[0], nil
	}
	for _, op := range ops {
		if op.name == req.OperationName {
			return op, nil
		}
	}
	return gqlOperation{}, errors.New("no operation has the operationName given")
}

// parseGraphQLDocument reads the operations of a document (fragments are skipped).
func parseGraphQLDocument(doc string) ([]gqlOperation, error) {
	p := &gqlParser{toks: gqlTokens(doc)}
	var ops []gqlOperation
	for !p.done() {
		op := gqlOperation{kind: "query"}
		switch t := p.next(); t {
		case "{": // the query shorthand
		case "query", "mutation", "subscription", "fragment":
			op.kind = t
			if n := p.peek(); isGraphQLName(n) {
				op.name = p.next()
			}
			// Variable definitions and directives, up to the selection set.
			for depth := 0; !p.done() && (depth > 0 || p.peek() != "{"); {
				switch p.next() {
				case "(":
					depth++
				case ")":
					depth--
				}
			}
			if p.next() != "{" {
				return nil, errors.New("an operation has no selection set")
			}
		default:
			return nil, errors.New("the document is not a list of operations")
		}
		fields, err := p.selections()
		if err != nil {
			return nil, err
		}
		if op.kind == "fragment" {
			continue
		}
		if len(fields) == 0 {
			return nil, errors.New("an operation selects no field")
		}
		op.fields = fields
		ops = append(ops, op)
	}
	return ops, nil
}

type gqlParser struct {
	toks []string
	i    int
}

func (p *gqlParser) done() bool { return p.i >= len(p.toks) }

func (p *gqlParser) peek() string {
	if p.done() {
		return ""
	}
	return p.toks[p.i]
}

func (p *gqlParser) next() string {
	t := p.peek()
	p.i++
	return t
}

// selections reads a selection set whose "{" was read, through its "}".
func (p *gqlParser) selections() ([]gqlField, error) {
	var fields []gqlField
	for {
		t := p.next()
		switch {
		case t == "}":
			return fields, nil
		case t == "":
			return nil, errors.New("a selection set is not closed")
		case t == "...": // a fragment spread or inline fragment: skipped
			for isGraphQLName(p.peek()) || p.peek() == "@" {
				p.next()
			}
			if p.peek() == "{" {
				p.next()
				if _, err := p.selections(); err != nil {
					return nil, err
				}
			}
		case isGraphQLName(t):
			if len(t) > maxGraphQLName {
				return nil, fmt.Errorf("a field name is longer than %d characters", maxGraphQLName)
			}
			f := gqlField{key: t, name: t}
			if p.peek() == ":" {
				p.next()
				if f.name = p.next(); !isGraphQLName(f.name) || len(f.name) > maxGraphQLName {
					return nil, errors.New("an alias names no field")
				}
			}
			// Arguments and directives.
			for depth := 0; !p.done() && (depth > 0 || p.peek() == "(" || p.peek() == "@"); {
				switch p.next() {
				case "(":
					depth++
				case ")":
					depth--
				}
			}
			if p.peek() == "{" {
				p.next()
				sub, err := p.selections()
				if err != nil {
					return nil, err
				}
				f.sub = sub
			}
			fields = append(fields, f)
		default:
			return nil, errors.New("a selection set holds something else than fields")
		}
	}
}

func isGraphQLName(t string) bool {
	if t == "" || (t[0] >= '0' && t[0] <= '9') {
		return false
	}
	for i := range len(t) {
		c := t[i]
		if c != '_' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// gqlTokens splits a document into names, numbers, punctuators and "…"; strings become
// `"` and comments, white space and commas are dropped.
func gqlTokens(doc string) []string {
	var toks []string
	for i := 0; i < len(doc); {
		c := doc[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',':
			i++
		case c == '#':
			for i < len(doc) && doc[i] != '\n' && doc[i] != '\r' {
				i++
			}
		case c == '"':
			toks = append(toks, `"`)
			if len(doc) >= i+3 && doc[i:i+3] == `"""` { // block string, \""" escapes
				for i += 3; i < len(doc) && !(len(doc) >= i+3 && doc[i:i+3] == `"""` && doc[i-1] != '\\'); i++ {
				}
				i += 3
				continue
			}
			for i++; i < len(doc) && doc[i] != '"'; i++ {
				if doc[i] == '\\' {
					i++
				}
			}
			i++
		case c == '.' && len(doc) >= i+3 && doc[i:i+3] == "...":
			toks = append(toks, "...")
			i += 3
		case c == '_' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'):
			j := i + 1
			for j < len(doc) && (doc[j] == '_' || doc[j] == '.' || doc[j] == '+' || doc[j] == '-' ||
				(doc[j] >= 'a' && doc[j] <= 'z') || (doc[j] >= 'A' && doc[j] <= 'Z') || (doc[j] >= '0' && doc[j] <= '9')) {
				j++
			}
			toks = append(toks, doc[i:j])
			i = j
		default:
			toks = append(toks, doc[i:i+1])
			i++
		}
	}
	return toks
}
