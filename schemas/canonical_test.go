package schemas

import (
	"strings"
	"testing"
)

func TestCanonicalMembers(t *testing.T) {
	tests := []struct {
		in    string
		keys  []string
		depth int
	}{
		{in: `{}`, keys: []string{}},
		{in: `{"a":1,"b":[true,false,null,-1.5e3],"c":{"d":"x"}}`, keys: []string{"a", "b", "c"}},
		{in: `{"a":"tab\there \u003c\u0026\u003e \"q\" \\ é \u2028 \u0001"}`, keys: []string{"a"}},
		{in: `{"a":[[]],"b":{"c":{}}}`, keys: []string{"a", "b"}, depth: 3},
		{in: `{"a":[[[]]]}`, depth: 3}, // too deep
		{in: `{"b":1,"a":2}`},          // not sorted
		{in: `{"a":1,"a":2}`},          // repeated
		{in: `{"a": 1}`},               // space
		{in: ` {"a":1}`},               // space
		{in: `{"a":1} `},               // space
		{in: `{"a":"<"}`},              // json.Marshal escapes <
		{in: `{"a":"\u0041"}`},         // json.Marshal writes A
		{in: `{"a":"\/"}`},             // json.Marshal writes /
		{in: `{"a":"\uFFFD"}`},         // json.Marshal writes the character
		{in: "{\"a\":\"\xff\"}"},       // invalid UTF-8 becomes \ufffd
		{in: "{\"a\":\"\u2028\"}"},     // json.Marshal escapes U+2028
		{in: `{"\u0061":1}`},           // escaped key
		{in: `{"a":01}`},               // not JSON
		{in: `{"a":1}]`},               // trailing data
		{in: `[1]`},                    // not an object
		{in: `{"a":tru}`},              // not JSON
		{in: `{"a":"unterminated}`},    // not JSON
		{in: `{"a":{"c":1,"b":2}}`},    // nested keys not sorted
		{in: `{"a":[{"b":1,"b":1}]}`},  // nested repeat
		{in: `{"a":"\x"}`},             // bad escape
		{in: "{\"a\":\"\x01\"}"},       // raw control character
		{in: `{"":1,"a":2}`, keys: []string{"", "a"}},
	}
	for _, tt := range tests {
		depth := tt.depth
		if depth == 0 {
			depth = 32
		}
		members, ok := CanonicalMembers([]byte(tt.in), depth, nil)
		if ok != (tt.keys != nil) {
			t.Errorf("CanonicalMembers(%s) ok = %v, want %v", tt.in, ok, tt.keys != nil)
			continue
		}
		checkCanonical(t, []byte(tt.in), depth)
		for i, k := range tt.keys {
			if members[i].Key != k {
				t.Errorf("CanonicalMembers(%s) key %d = %q, want %q", tt.in, i, members[i].Key, k)
			}
		}
	}
}

// FuzzCanonicalMembers holds CanonicalMembers to its promise: what it takes
// decodes to an object that EncodeJSON writes back as the same bytes.
func FuzzCanonicalMembers(f *testing.F) {
	for _, tt := range decodeCases {
		f.Add([]byte(tt.in))
	}
	f.Add([]byte(`{"a":"\u003c","b":[{"c":1e5}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkCanonical(t, data, 8)
		// Re-encoded, any shallow object is canonical unless a key needs escaping.
		v, err := DecodeJSON(data)
		m, isObj := v.(map[string]any)
		if err != nil || !isObj {
			return
		}
		enc, err := EncodeJSON(m)
		if err != nil || strings.Contains(string(enc), `\`) || depthOf(m) > 8 {
			return
		}
		if _, ok := CanonicalMembers(enc, 8, nil); !ok {
			t.Fatalf("CanonicalMembers(%s) = false for EncodeJSON's own output", enc)
		}
	})
}

func checkCanonical(t *testing.T, data []byte, maxDepth int) {
	t.Helper()
	members, ok := CanonicalMembers(data, maxDepth, nil)
	if !ok {
		return
	}
	v, err := DecodeJSON(data)
	if err != nil {
		t.Fatalf("CanonicalMembers(%q) ok, but it does not decode: %v", data, err)
	}
	m, isObj := v.(map[string]any)
	if !isObj || len(m) != len(members) {
		t.Fatalf("CanonicalMembers(%q) = %d members, decoded %#v", data, len(members), v)
	}
	if depthOf(m) > maxDepth {
		t.Fatalf("CanonicalMembers(%q) ok, but it is nested deeper than %d", data, maxDepth)
	}
	enc, err := EncodeJSON(m)
	if err != nil || string(enc) != string(data) {
		t.Fatalf("CanonicalMembers(%q) ok, but EncodeJSON writes %s (%v)", data, enc, err)
	}
	for _, mem := range members {
		want, _ := EncodeJSON(m[mem.Key])
		if string(want) != mem.Value {
			t.Fatalf("CanonicalMembers(%q) member %q = %s, want %s", data, mem.Key, mem.Value, want)
		}
	}
}

func depthOf(v any) int {
	d := 0
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			d = max(d, depthOf(e))
		}
		return d + 1
	case []any:
		for _, e := range x {
			d = max(d, depthOf(e))
		}
		return d + 1
	}
	return 0
}
