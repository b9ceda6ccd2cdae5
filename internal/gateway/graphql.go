package gateway

import (
	"errors"
	"fmt"
)

// GraphQL mutation detection for Démarches Numériques.
//
// The gateway must tell, before anything goes upstream, whether the operation the API will
// run is a query or a mutation (or a subscription). It does so with a lexer that follows
// the GraphQL specification (October 2021, §2.1 "Source Text": ignored tokens, punctuators,
// names, numbers, strings and block strings) and a parser of the document's top level only:
// each definition is an operation (shorthand "{...}" or "query|mutation|subscription Name?
// (vars)? @directives* {...}") or a fragment; the insides of selection sets and argument
// lists are skipped as balanced token sequences. So a "mutation" inside a string, a block
// string, a comment or a field name is never taken for an operation, and no operation can
// hide inside another.
//
// It fails closed: any byte the specification does not allow where it stands, an
// unterminated string, unbalanced brackets, a type-system definition or anything else it
// cannot read is an error, and the caller refuses the request (bad_body) instead of
// passing it.

// Operation is one operation definition of a GraphQL document.
type Operation struct {
	Type string // "query", "mutation" or "subscription"
	Name string // empty for an anonymous operation
}

// maxGraphQLNesting bounds the nesting of brackets the parser tracks; graphql-ruby refuses
// far less deep documents anyway (Démarches Numériques: max_depth 15,
// app/graphql/api/v2/schema.rb).
const maxGraphQLNesting = 256

var errGraphQLUnreadable = errors.New("the GraphQL document cannot be read")

// GraphQLOperations returns the operations of doc in order, or an error when the document
// cannot be read (the caller must then refuse it).
func GraphQLOperations(doc string) ([]Operation, error) {
	p := gqlParser{lex: gqlLexer{src: doc}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	var ops []Operation
	for p.tok.kind != gqlEOF {
		switch {
		case p.tok.is('{'): // shorthand query
			if err := p.skipBalanced(); err != nil {
				return nil, err
			}
			ops = append(ops, Operation{Type: "query"})
		case p.tok.isName("query"), p.tok.isName("mutation"), p.tok.isName("subscription"):
			op, err := p.operation()
			if err != nil {
				return nil, err
			}
			ops = append(ops, op)
		case p.tok.isName("fragment"):
			if err := p.fragment(); err != nil {
				return nil, err
			}
		default:
			// Type-system definitions and extensions (graphql-ruby refuses them in a
			// query: "GraphQL query cannot contain a schema definition") and garbage.
			return nil, fmt.Errorf("%w: a definition must be an operation or a fragment", errGraphQLUnreadable)
		}
	}
	return ops, nil
}

// SelectOperation returns the operation the server runs, as graphql-ruby chooses it
// (GraphQL::Query#find_operation, used by demarches-simplifiees.fr
// app/controllers/api/v2/graphql_controller.rb): with no operationName, the only
// operation of the document; with one, the operation of that name. Whatever graphql-ruby
// would reject (no operation, several without a name, an unknown or duplicated name) is an
// error here, so an ambiguous document is never passed.
func SelectOperation(ops []Operation, operationName *string) (Operation, error) {
	if len(ops) == 0 {
		return Operation{}, fmt.Errorf("%w: no operation", errGraphQLUnreadable)
	}
	if operationName == nil {
		if len(ops) != 1 {
			return Operation{}, fmt.Errorf("%w: several operations and no operationName", errGraphQLUnreadable)
		}
		return ops[0], nil
	}
	var found []Operation
	for _, op := range ops {
		if op.Name != "" && op.Name == *operationName {
			found = append(found, op)
		}
	}
	if len(found) != 1 {
		return Operation{}, fmt.Errorf("%w: operationName names no single operation of the document", errGraphQLUnreadable)
	}
	return found[0], nil
}

type gqlKind int

const (
	gqlEOF gqlKind = iota
	gqlName
	gqlPunct // one of ! $ & ( ) ... : = @ [ ] { | }
	gqlValue // a number or a string: its text does not matter here
)

type gqlToken struct {
	kind gqlKind
	text string // the name, or the punctuator
}

func (t gqlToken) is(punct byte) bool { return t.kind == gqlPunct && t.text == string(punct) }

func (t gqlToken) isName(name string) bool { return t.kind == gqlName && t.text == name }

type gqlParser struct {
	lex gqlLexer
	tok gqlToken
}

func (p *gqlParser) advance() error {
	t, err := p.lex.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

// operation reads "query|mutation|subscription Name? VariableDefinitions? Directives?
// SelectionSet".
func (p *gqlParser) operation() (Operation, error) {
	op := Operation{Type: p.tok.text}
	if err := p.advance(); err != nil {
		return op, err
	}
	if p.tok.kind == gqlName {
		op.Name = p.tok.text
		if err := p.advance(); err != nil {
			return op, err
		}
	}
	if p.tok.is('(') {
		if err := p.skipBalanced(); err != nil {
			return op, err
		}
	}
	if err := p.directives(); err != nil {
		return op, err
	}
	return op, p.selectionSet()
}

// fragment reads "fragment Name on Type Directives? SelectionSet".
func (p *gqlParser) fragment() error {
	if err := p.advance(); err != nil {
		return err
	}
	if p.tok.kind != gqlName || p.tok.text == "on" {
		return fmt.Errorf("%w: a fragment needs a name", errGraphQLUnreadable)
	}
	if err := p.advance(); err != nil {
		return err
	}
	if !p.tok.isName("on") {
		return fmt.Errorf("%w: a fragment needs a type condition", errGraphQLUnreadable)
	}
	if err := p.advance(); err != nil {
		return err
	}
	if p.tok.kind != gqlName {
		return fmt.Errorf("%w: a fragment needs a type condition", errGraphQLUnreadable)
	}
	if err := p.advance(); err != nil {
		return err
	}
	if err := p.directives(); err != nil {
		return err
	}
	return p.selectionSet()
}

// directives reads "(@ Name Arguments?)*".
func (p *gqlParser) directives() error {
	for p.tok.is('@') {
		if err := p.advance(); err != nil {
			return err
		}
		if p.tok.kind != gqlName {
			return fmt.Errorf("%w: a directive needs a name", errGraphQLUnreadable)
		}
		if err := p.advance(); err != nil {
			return err
		}
		if p.tok.is('(') {
			if err := p.skipBalanced(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *gqlParser) selectionSet() error {
	if !p.tok.is('{') {
		return fmt.Errorf("%w: a definition needs a selection set", errGraphQLUnreadable)
	}
	return p.skipBalanced()
}

// skipBalanced skips from the opening bracket p.tok to its matching closing bracket and
// advances past it. Brackets of the three kinds must nest properly.
func (p *gqlParser) skipBalanced() error {
	var stack []byte
	for {
		if p.tok.kind == gqlEOF {
			return fmt.Errorf("%w: unbalanced brackets", errGraphQLUnreadable)
		}
		if p.tok.kind == gqlPunct {
			switch c := p.tok.text[0]; c {
			case '{', '(', '[':
				if len(stack) >= maxGraphQLNesting {
					return fmt.Errorf("%w: nested too deep", errGraphQLUnreadable)
				}
				stack = append(stack, c)
			case '}', ')', ']':
				if len(stack) == 0 || stack[len(stack)-1] != openingOf(c) {
					return fmt.Errorf("%w: unbalanced brackets", errGraphQLUnreadable)
				}
				stack = stack[:len(stack)-1]
			}
		}
		if err := p.advance(); err != nil {
			return err
		}
		if len(stack) == 0 {
			return nil
		}
	}
}

// gqlLexer cuts a GraphQL document into tokens (GraphQL specification, §2.1).
type gqlLexer struct {
	src string
	pos int
}

func (l *gqlLexer) errorf(what string) error {
	return fmt.Errorf("%w: %s at byte %d", errGraphQLUnreadable, what, l.pos)
}

func (l *gqlLexer) next() (gqlToken, error) {
	if err := l.skipIgnored(); err != nil {
		return gqlToken{}, err
	}
	if l.pos >= len(l.src) {
		return gqlToken{kind: gqlEOF}, nil
	}
	c := l.src[l.pos]
	switch {
	case c == '.':
		if len(l.src)-l.pos >= 3 && l.src[l.pos:l.pos+3] == "..." {
			l.pos += 3
			return gqlToken{kind: gqlPunct, text: "..."}, nil
		}
		return gqlToken{}, l.errorf("lone '.'")
	case isGQLPunct(c):
		l.pos++
		return gqlToken{kind: gqlPunct, text: string(c)}, nil
	case isNameStart(c):
		start := l.pos
		for l.pos < len(l.src) && isNameContinue(l.src[l.pos]) {
			l.pos++
		}
		return gqlToken{kind: gqlName, text: l.src[start:l.pos]}, nil
	case c == '-' || isDigit(c):
		return gqlToken{kind: gqlValue}, l.number()
	case c == '"':
		if len(l.src)-l.pos >= 3 && l.src[l.pos:l.pos+3] == `"""` {
			return gqlToken{kind: gqlValue}, l.blockString()
		}
		return gqlToken{kind: gqlValue}, l.quotedString()
	}
	return gqlToken{}, l.errorf("unexpected character")
}

// skipIgnored skips white space, line terminators, commas, the byte order mark and
// comments. A comment ends at "\n" or "\r\n"; a lone "\r" in a comment is an error:
// the specification ends the comment there, graphql-ruby's lexer (IGNORE_REGEXP, `\#.*$`
// in lib/graphql/language/lexer.rb) does not, and what follows would be code to one and
// comment to the other (TestAttackGraphQLLexerDivergence).
func (l *gqlLexer) skipIgnored() error {
	for l.pos < len(l.src) {
		switch c := l.src[l.pos]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',':
			l.pos++
		case c == '#':
			for l.pos < len(l.src) && l.src[l.pos] != '\n' {
				if l.src[l.pos] == '\r' {
					if l.pos+1 < len(l.src) && l.src[l.pos+1] == '\n' {
						break
					}
					return l.errorf("carriage return alone in a comment")
				}
				l.pos++
			}
		case c == 0xEF && len(l.src)-l.pos >= 3 && l.src[l.pos:l.pos+3] == "\uFEFF":
			l.pos += 3
		default:
			return nil
		}
	}
	return nil
}

// number reads IntValue or FloatValue: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?,
// not followed by a digit, '.' or a name start.
func (l *gqlLexer) number() error {
	if l.src[l.pos] == '-' {
		l.pos++
	}
	if l.pos >= len(l.src) || !isDigit(l.src[l.pos]) {
		return l.errorf("malformed number")
	}
	if l.src[l.pos] == '0' {
		l.pos++
	} else {
		l.digits()
	}
	if l.pos < len(l.src) && l.src[l.pos] == '.' {
		l.pos++
		if l.digits() == 0 {
			return l.errorf("malformed number")
		}
	}
	if l.pos < len(l.src) && (l.src[l.pos] == 'e' || l.src[l.pos] == 'E') {
		l.pos++
		if l.pos < len(l.src) && (l.src[l.pos] == '+' || l.src[l.pos] == '-') {
			l.pos++
		}
		if l.digits() == 0 {
			return l.errorf("malformed number")
		}
	}
	if l.pos < len(l.src) && (isDigit(l.src[l.pos]) || l.src[l.pos] == '.' || isNameStart(l.src[l.pos])) {
		return l.errorf("malformed number")
	}
	return nil
}

func (l *gqlLexer) digits() int {
	start := l.pos
	for l.pos < len(l.src) && isDigit(l.src[l.pos]) {
		l.pos++
	}
	return l.pos - start
}

// quotedString reads "..." with the escapes \" \\ \/ \b \f \n \r \t \uXXXX; a line
// terminator or another control character inside is an error, as is any other escape
// (including the newer \u{...}: refusing what the server might read differently is the
// safe side).
func (l *gqlLexer) quotedString() error {
	l.pos++ // opening quote
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == '"':
			l.pos++
			return nil
		case c == '\\':
			if l.pos+1 >= len(l.src) {
				return l.errorf("unterminated string")
			}
			switch l.src[l.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				l.pos += 2
			case 'u':
				if len(l.src)-l.pos < 6 || !isHex(l.src[l.pos+2]) || !isHex(l.src[l.pos+3]) || !isHex(l.src[l.pos+4]) || !isHex(l.src[l.pos+5]) {
					return l.errorf("malformed unicode escape")
				}
				l.pos += 6
			default:
				return l.errorf("unknown escape")
			}
		case c < 0x20 && c != '\t', c == 0x7f:
			return l.errorf("control character or line break in a string")
		default:
			l.pos++
		}
	}
	return l.errorf("unterminated string")
}

// blockString reads """...""" (§2.9.4). The escape \""" is refused: graphql-ruby's
// BLOCK_STRING_REGEXP reads a backslash followed by four or more quotes as a backslash
// and the closing quotes, the specification as the escape, and the two lexers then
// disagree on every later string (TestAttackGraphQLLexerDivergence). Queries do not need
// it: a GraphQL query's block strings are argument values, and a quoted string with \"
// says the same.
func (l *gqlLexer) blockString() error {
	l.pos += 3
	for l.pos < len(l.src) {
		rest := l.src[l.pos:]
		switch {
		case len(rest) >= 4 && rest[:4] == `\"""`:
			return l.errorf("escaped triple quote in a block string")
		case len(rest) >= 3 && rest[:3] == `"""`:
			l.pos += 3
			return nil
		case rest[0] < 0x20 && rest[0] != '\t' && rest[0] != '\n' && rest[0] != '\r', rest[0] == 0x7f:
			return l.errorf("control character in a block string")
		default:
			l.pos++
		}
	}
	return l.errorf("unterminated block string")
}

func openingOf(closing byte) byte {
	switch closing {
	case '}':
		return '{'
	case ')':
		return '('
	}
	return '['
}

func isGQLPunct(c byte) bool {
	switch c {
	case '!', '$', '&', '(', ')', ':', '=', '@', '[', ']', '{', '|', '}':
		return true
	}
	return false
}

func isNameStart(c byte) bool {
	return c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

func isNameContinue(c byte) bool { return isNameStart(c) || isDigit(c) }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
