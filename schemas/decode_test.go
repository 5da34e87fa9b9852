package schemas

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"testing"
)

// decodeCases are documents DecodeJSON must decode exactly as encoding/json
// does; fast says whether the fast parser should take them itself.
var decodeCases = []struct {
	name, in string
	fast     bool
}{
	{name: "object", in: `{"image":"busybox","command":["echo","hello world"]}`, fast: true},
	{name: "nested and spaced", in: " \t\n{ \"a\" : [ 1 , -2.5e+3 , {\"b\":null} ] ,\r\"c\":{}, \"d\":[]} \n", fast: true},
	{name: "literals", in: `[true,false,null,0,-0,0.5,1E9,1e-9]`, fast: true},
	{name: "top-level string", in: `"x"`, fast: true},
	{name: "top-level number", in: `12345678901234567890123`, fast: true},
	{name: "utf-8", in: `{"ключ":"значение ✓"}`, fast: true},
	{name: "repeated key keeps the last", in: `{"a":1,"a":2}`, fast: true},
	{name: "escapes", in: `{"a\"b":"tab\tnew\nline \u00e9 \ud83d\ude00 \/"}`, fast: true},
	{name: "lone surrogate", in: `"\ud800"`, fast: true},
	{name: "invalid utf-8", in: "{\"a\":\"\xff\xfe\"}", fast: true},
	{name: "empty", in: ``},
	{name: "only space", in: "  \n"},
	{name: "trailing value", in: `{} {}`},
	{name: "trailing close is what the decoder allows", in: `{"a":1}]`},
	{name: "trailing garbage", in: `{"a":1}x`},
	{name: "leading zero", in: `[01]`},
	{name: "bare minus", in: `[-]`},
	{name: "dot without digits", in: `[1.]`},
	{name: "exponent without digits", in: `[1e+]`},
	{name: "plus sign", in: `[+1]`},
	{name: "control character", in: "\"a\x01b\""},
	{name: "bad escape", in: `"\x"`},
	{name: "short unicode escape", in: `"\u12"`},
	{name: "unterminated string", in: `{"a":"b`},
	{name: "unterminated object", in: `{"a":1`},
	{name: "trailing comma", in: `{"a":1,}`},
	{name: "missing colon", in: `{"a" 1}`},
	{name: "non-string key", in: `{1:2}`},
	{name: "truncated literal", in: `[tru]`},
	{name: "word after literal", in: `[truex]`},
	{name: "byte order mark", in: "\xef\xbb\xbf{}"},
	{name: "single quotes", in: `{'a':1}`},
}

func TestDecodeJSONMatchesEncodingJSON(t *testing.T) {
	for _, tt := range decodeCases {
		t.Run(tt.name, func(t *testing.T) {
			checkDecodeSame(t, []byte(tt.in))
			if _, ok := fastDecode([]byte(tt.in)); ok != tt.fast {
				t.Errorf("fast path taken = %v, want %v", ok, tt.fast)
			}
		})
	}
}

func TestDecodeJSONUnique(t *testing.T) {
	tests := []struct {
		in     string
		unique bool
	}{
		{in: `{"a":1,"b":{"a":2,"c":[{"a":3},{"a":4}]}}`, unique: true},
		{in: `{"a":1,"a":1}`},
		{in: `{"a":{"x":1,"y":2,"x":3}}`},
		{in: `[{"k":1},{"k":2,"k":3}]`},
		{in: `{"\u0061":1,"a":2}`}, // the same key, spelt two ways
		{in: `{"a":1} x`},          // not decoded by the fast parser: cannot tell
	}
	for _, tt := range tests {
		_, unique, _ := DecodeJSONUnique([]byte(tt.in))
		if unique != tt.unique {
			t.Errorf("DecodeJSONUnique(%s) unique = %v, want %v", tt.in, unique, tt.unique)
		}
	}
}

func TestDecodeJSONDeepNesting(t *testing.T) {
	for _, depth := range []int{maxFastDepth, maxFastDepth + 1, 10001} {
		doc := make([]byte, 0, 2*depth)
		for range depth {
			doc = append(doc, '[')
		}
		for range depth {
			doc = append(doc, ']')
		}
		checkDecodeSame(t, doc)
	}
}

// FuzzDecodeJSON holds DecodeJSON to encoding/json: the same value, or the
// same error.
func FuzzDecodeJSON(f *testing.F) {
	for _, tt := range decodeCases {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecodeSame(t, data)
	})
}

func checkDecodeSame(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := stdDecode(data)
	got, unique, err := DecodeJSONUnique(data)
	if unique && repeatsKey(data) {
		t.Fatalf("DecodeJSONUnique(%q) says unique, but an object repeats a key", data)
	}
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("DecodeJSON(%q) error = %v, encoding/json says %v", data, err, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeJSON(%q) = %#v, encoding/json gives %#v", data, got, want)
	}
}

// repeatsKey reports whether an object in a valid document repeats a key,
// reading it token by token with encoding/json.
func repeatsKey(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		keys     map[string]bool
		isObject bool
		wantKey  bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF || err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if top != nil && top.isObject {
					top.wantKey = true
				}
				stack = append(stack, &frame{keys: map[string]bool{}, isObject: d == '{', wantKey: true})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if top == nil || !top.isObject {
			continue
		}
		if top.wantKey {
			k := tok.(string)
			if top.keys[k] {
				return true
			}
			top.keys[k] = true
			top.wantKey = false
		} else {
			top.wantKey = true
		}
	}
}
