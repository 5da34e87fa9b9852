package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// DecodeJSON decodes a JSON document the way the validators expect it: numbers
// kept exact as json.Number, so integers never turn into floats.
//
// A plain, well-formed document is parsed by a small parser that copies the
// document into one string and hands out slices of it for keys, strings and
// numbers. Anything it does not handle (a syntax error, escapes or invalid
// UTF-8 in a key, deep nesting, data after the value) goes to encoding/json,
// whose result and error are the reference; FuzzDecodeJSON holds the two equal.
func DecodeJSON(data []byte) (any, error) {
	v, _, err := DecodeJSONUnique(data)
	return v, err
}

// DecodeJSONUnique is DecodeJSON that also reports whether no object in the
// document repeats a key. A decoded map keeps only a repeated key's last
// value, so only then does it say all that the document says, and is a
// stand-in for the document when decoding into a typed struct. unique is
// false when it cannot tell.
func DecodeJSONUnique(data []byte) (v any, unique bool, err error) {
	p := parser{s: string(data)}
	if v, ok := p.document(); ok {
		return v, !p.repeated, nil
	}
	v, err = stdDecode(data)
	return v, false, err
}

// stdDecode is DecodeJSON with encoding/json alone.
func stdDecode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("unexpected data after the JSON value")
	}
	return v, nil
}

// maxFastDepth bounds the fast parser's recursion; deeper documents go to
// encoding/json, which has its own limit and error.
const maxFastDepth = 512

// fastDecode parses data as exactly one JSON value with optional whitespace
// around it. ok is false when it cannot give the result encoding/json would.
func fastDecode(data []byte) (v any, ok bool) {
	p := parser{s: string(data)}
	return p.document()
}

func (p *parser) document() (v any, ok bool) {
	p.space()
	v, ok = p.value(0)
	if !ok {
		return nil, false
	}
	p.space()
	if p.i != len(p.s) {
		return nil, false
	}
	return v, true
}

type parser struct {
	s        string
	i        int
	stack    []any // elements of the arrays being parsed, copied out when each ends
	repeated bool  // some object repeats a key
}

func (p *parser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (any, bool) {
	if p.i >= len(p.s) {
		return nil, false
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		s, ok := p.str()
		if !ok {
			return nil, false
		}
		return s, true
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, false
}

func (p *parser) literal(word string) bool {
	if len(p.s)-p.i < len(word) || p.s[p.i:p.i+len(word)] != word {
		return false
	}
	p.i += len(word)
	return true
}

func (p *parser) object(depth int) (any, bool) {
	if depth > maxFastDepth {
		return nil, false
	}
	p.i++ // '{'
	m := make(map[string]any)
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return m, true
	}
	for n := 1; ; n++ {
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return nil, false
		}
		key, ok := p.str()
		if !ok {
			return nil, false
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, false
		}
		p.i++
		p.space()
		v, ok := p.value(depth)
		if !ok {
			return nil, false
		}
		m[key] = v // a repeated key keeps its last value, as in encoding/json
		p.space()
		if p.i >= len(p.s) {
			return nil, false
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			p.space()
		case '}':
			p.i++
			if len(m) != n {
				p.repeated = true
			}
			return m, true
		default:
			return nil, false
		}
	}
}

func (p *parser) array(depth int) (any, bool) {
	if depth > maxFastDepth {
		return nil, false
	}
	p.i++ // '['
	base := len(p.stack)
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return make([]any, 0), true // empty, not nil, as encoding/json gives it
	}
	for {
		v, ok := p.value(depth)
		if !ok {
			return nil, false
		}
		p.stack = append(p.stack, v)
		p.space()
		if p.i >= len(p.s) {
			return nil, false
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			p.space()
		case ']':
			p.i++
			out := make([]any, len(p.stack)-base)
			copy(out, p.stack[base:])
			clear(p.stack[base:])
			p.stack = p.stack[:base]
			return out, true
		default:
			return nil, false
		}
	}
}

// str parses a string at p.i. One without escapes and in valid UTF-8 is a
// slice of the document; any other is unquoted by encoding/json, so escapes
// and invalid bytes come out exactly as it decodes them.
func (p *parser) str() (string, bool) {
	start := p.i
	p.i++ // '"'
	plain := true
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			if plain {
				return p.s[start+1 : p.i-1], true
			}
			var out string
			if err := json.Unmarshal([]byte(p.s[start:p.i]), &out); err != nil {
				return "", false
			}
			return out, true
		case c == '\\':
			plain = false
			p.i += 2
		case c < 0x20:
			return "", false
		case c < utf8.RuneSelf:
			p.i++
		default:
			r, size := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && size == 1 {
				plain = false
			}
			p.i += size
		}
	}
	return "", false
}

// number parses a number with JSON's grammar and keeps its text.
func (p *parser) number() (any, bool) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.s) && p.s[p.i] == '0':
		p.i++
	case p.i < len(p.s) && p.s[p.i] >= '1' && p.s[p.i] <= '9':
		p.digits()
	default:
		return nil, false
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if !p.digits() {
			return nil, false
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if !p.digits() {
			return nil, false
		}
	}
	return json.Number(p.s[start:p.i]), true
}

// digits skips one or more decimal digits, reporting whether there was one.
func (p *parser) digits() bool {
	start := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}
