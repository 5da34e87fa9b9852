package schemas

import (
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"
)

// Member is one top-level member of a JSON object, its value as raw JSON.
type Member struct {
	Key   string
	Value string
}

// CanonicalMembers returns the top-level members of data when data is a
// JSON object written exactly as EncodeJSON writes its decoding: no
// whitespace, keys sorted and unique at every level, strings escaped as
// json.Marshal escapes them, nested no deeper than maxDepth. Then
// EncodeJSON(DecodeJSON(data)) is data itself, and a member can be replaced
// or added by writing the members back in key order, without decoding the
// rest. ok is false for any other data (which may be valid JSON all the same).
func CanonicalMembers(data []byte, maxDepth int, into []Member) (members []Member, ok bool) {
	if len(data) == 0 || data[0] != '{' {
		return nil, false
	}
	c := canonical{s: string(data), maxDepth: maxDepth}
	members = into[:0]
	ok = c.object(1, func(key, value string) {
		members = append(members, Member{Key: key, Value: value})
	})
	if !ok || c.i != len(data) {
		return nil, false
	}
	return members, true
}

type canonical struct {
	s        string
	i        int
	maxDepth int
}

func (c *canonical) value(depth int) bool {
	if c.i >= len(c.s) {
		return false
	}
	switch b := c.s[c.i]; {
	case b == '{':
		return c.object(depth+1, nil)
	case b == '[':
		return c.array(depth + 1)
	case b == '"':
		_, _, ok := c.str()
		return ok
	case b == '-' || (b >= '0' && b <= '9'):
		// EncodeJSON writes a json.Number as it was read: any number is canonical.
		p := parser{s: c.s, i: c.i}
		_, ok := p.number()
		c.i = p.i
		return ok
	}
	for _, word := range [...]string{"true", "false", "null"} {
		if strings.HasPrefix(c.s[c.i:], word) {
			c.i += len(word)
			return true
		}
	}
	return false
}

// object checks an object at c.i; member, when not nil, gets each member.
func (c *canonical) object(depth int, member func(key, value string)) bool {
	if depth > c.maxDepth {
		return false
	}
	c.i++ // '{'
	if c.i < len(c.s) && c.s[c.i] == '}' {
		c.i++
		return true
	}
	prev, first := "", true
	for {
		if c.i >= len(c.s) || c.s[c.i] != '"' {
			return false
		}
		key, escaped, ok := c.str()
		// Keys must be plain (no escapes, so the text is the key) and ascending.
		if !ok || escaped || !first && key <= prev {
			return false
		}
		if c.i >= len(c.s) || c.s[c.i] != ':' {
			return false
		}
		c.i++
		start := c.i
		if !c.value(depth) {
			return false
		}
		if member != nil {
			member(key, c.s[start:c.i])
		}
		prev, first = key, false
		if c.i >= len(c.s) {
			return false
		}
		switch c.s[c.i] {
		case ',':
			c.i++
		case '}':
			c.i++
			return true
		default:
			return false
		}
	}
}

func (c *canonical) array(depth int) bool {
	if depth > c.maxDepth {
		return false
	}
	c.i++ // '['
	if c.i < len(c.s) && c.s[c.i] == ']' {
		c.i++
		return true
	}
	for {
		if !c.value(depth) || c.i >= len(c.s) {
			return false
		}
		switch c.s[c.i] {
		case ',':
			c.i++
		case ']':
			c.i++
			return true
		default:
			return false
		}
	}
}

// str checks a string at c.i that appendString would write as it is, and
// returns its text between the quotes. One with escapes is canonical when
// re-quoting its decoding gives it back.
func (c *canonical) str() (text string, escaped, ok bool) {
	start := c.i
	c.i++ // '"'
	for c.i < len(c.s) {
		b := c.s[c.i]
		switch {
		case b == '"':
			c.i++
			text = c.s[start+1 : c.i-1]
			if !escaped {
				return text, false, true
			}
			var s string
			if err := json.Unmarshal([]byte(c.s[start:c.i]), &s); err != nil {
				return "", true, false
			}
			return text, true, string(appendString(nil, s)) == c.s[start:c.i]
		case b == '\\':
			escaped = true
			c.i += 2
		case b < 0x20 || b == '<' || b == '>' || b == '&':
			return "", escaped, false // appendString escapes these
		case b < utf8.RuneSelf:
			c.i++
		default:
			r, size := utf8.DecodeRuneInString(c.s[c.i:])
			if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
				return "", escaped, false // written as \ufffd, \u2028, \u2029
			}
			c.i += size
		}
	}
	return "", escaped, false
}

// MemberFields is a canonical document's top-level members as Fields (see
// CanonicalMembers). A member is decoded when it is first read; Encode
// writes the document back with the members read or set re-encoded.
type MemberFields struct {
	members []Member // in key order
	touched []touched
	// storage for most documents, so that one allocation holds it all
	memberBuf  [8]Member
	touchedBuf [4]touched
}

type touched struct {
	key string
	v   any
}

// CanonicalFields is CanonicalMembers as Fields.
func CanonicalFields(data []byte, maxDepth int) (*MemberFields, bool) {
	f := &MemberFields{}
	members, ok := CanonicalMembers(data, maxDepth, f.memberBuf[:0])
	if !ok {
		return nil, false
	}
	f.members, f.touched = members, f.touchedBuf[:0]
	return f, true
}

func (f *MemberFields) member(key string) (string, bool) {
	for _, m := range f.members {
		if m.Key == key {
			return m.Value, true
		}
	}
	return "", false
}

func (f *MemberFields) find(key string) *touched {
	for i := range f.touched {
		if f.touched[i].key == key {
			return &f.touched[i]
		}
	}
	return nil
}

// Has implements Fields.
func (f *MemberFields) Has(key string) bool {
	if f.find(key) != nil {
		return true
	}
	_, ok := f.member(key)
	return ok
}

// Get implements Fields.
func (f *MemberFields) Get(key string) (any, bool) {
	if t := f.find(key); t != nil {
		return t.v, true
	}
	raw, ok := f.member(key)
	if !ok {
		return nil, false
	}
	v, err := DecodeJSON([]byte(raw))
	if err != nil {
		// CanonicalMembers took it, so it decodes; keep it as it is if not.
		return nil, false
	}
	f.touched = append(f.touched, touched{key: key, v: v})
	return v, true
}

// Set implements Fields.
func (f *MemberFields) Set(key string, v any) {
	if t := f.find(key); t != nil {
		t.v = v
		return
	}
	f.touched = append(f.touched, touched{key: key, v: v})
}

// Encode writes the object back in canonical form: what EncodeJSON writes
// for the decoded document with the same reads and sets applied.
func (f *MemberFields) Encode() ([]byte, error) {
	size := 2
	for _, m := range f.members {
		size += len(m.Key) + len(m.Value) + 4
	}
	var buf [8]string
	added := buf[:0] // keys set that the document did not have, in order
	for _, t := range f.touched {
		if _, ok := f.member(t.key); !ok {
			added = append(added, t.key)
		}
	}
	slices.Sort(added)
	b := make([]byte, 0, size+64*len(f.touched))
	b = append(b, '{')
	for i, j, n := 0, 0, 0; i < len(f.members) || j < len(added); n++ {
		var k string // the next key of the two sorted lists
		if j == len(added) || i < len(f.members) && f.members[i].Key < added[j] {
			k, i = f.members[i].Key, i+1
		} else {
			k, j = added[j], j+1
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		if t := f.find(k); t != nil {
			mark := len(b)
			var ok bool
			if b, ok = appendJSON(b, t.v); !ok {
				b = b[:mark] // as EncodeJSON, leave what it cannot write to json.Marshal
				enc, err := json.Marshal(t.v)
				if err != nil {
					return nil, err
				}
				b = append(b, enc...)
			}
			continue
		}
		raw, _ := f.member(k)
		b = append(b, raw...)
	}
	return append(b, '}'), nil
}
