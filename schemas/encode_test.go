package schemas

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestEncodeJSONMatchesMarshal(t *testing.T) {
	tests := []struct {
		name string
		in   any
	}{
		{name: "nil", in: nil},
		{name: "sorted keys", in: map[string]any{"b": "1", "a": json.Number("2"), "c": []any{true, false, nil}}},
		{name: "many keys", in: map[string]any{"q": 1.5, "w": "", "e": "", "r": "", "t": "", "y": "", "u": "", "i": "", "o": "", "p": "", "a": "", "s": "", "d": "", "f": "", "g": "", "h": "", "j": ""}},
		{name: "empty containers", in: map[string]any{"m": map[string]any{}, "s": []any{}}},
		{name: "nil containers", in: map[string]any{"m": map[string]any(nil), "s": []any(nil)}},
		{name: "html and controls", in: "<a href=\"x\">&amp;</a>\\\b\f\n\r\t\x00\x1f\x7f"},
		{name: "unicode", in: "é ✓ \u2028 \u2029 😀"},
		{name: "invalid utf-8", in: "a\xffb\xe2\x82"},
		{name: "key escaping", in: map[string]any{"<k>\n": "v"}},
		{name: "empty number", in: json.Number("")},
		{name: "invalid number", in: map[string]any{"n": json.Number("1x")}},
		{name: "float falls back", in: map[string]any{"f": 0.1}},
		{name: "other types fall back", in: map[string]any{"i": 3, "s": []string{"a"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkEncodeSame(t, tt.in)
		})
	}
}

// FuzzEncodeJSON holds EncodeJSON to json.Marshal for decoded documents and
// for arbitrary strings as keys and values.
func FuzzEncodeJSON(f *testing.F) {
	for _, tt := range decodeCases {
		f.Add([]byte(tt.in), "k<&>\u2028")
	}
	f.Fuzz(func(t *testing.T, data []byte, s string) {
		checkEncodeSame(t, map[string]any{s: s, "n": []any{s}})
		if v, err := DecodeJSON(data); err == nil {
			checkEncodeSame(t, v)
		}
	})
}

func checkEncodeSame(t *testing.T, v any) {
	t.Helper()
	want, wantErr := json.Marshal(v)
	got, err := EncodeJSON(v)
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("EncodeJSON(%#v) error = %v, json.Marshal says %v", v, err, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("EncodeJSON(%#v) = %s, json.Marshal gives %s", v, got, want)
	}
}

func BenchmarkEncodeJSON(b *testing.B) {
	doc := []byte(`{"resources":[{"group":"apps","version":"v1","resource":"deployments"}],"labelSelector":{"matchLabels":{"tier":"frontend"}},"operations":[{"jsonPatch":[{"op":"replace","path":"/spec/replicas","value":1}]},{"mergePatch":{"metadata":{"annotations":{"drill":"2026-q4"}}}}],"namespaces":["default"]}`)
	v, err := DecodeJSON(doc)
	if err != nil {
		b.Fatal(err)
	}
	for _, enc := range []struct {
		name string
		f    func(any) ([]byte, error)
	}{{"EncodeJSON", EncodeJSON}, {"json.Marshal", json.Marshal}} {
		b.Run(enc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc.f(v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
