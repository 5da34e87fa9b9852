package schemas_test

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v5"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// bundle is the embedded schemas' Bundle, failing the test on error.
func bundle(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := load(t, "").Bundle()
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// compileBundle compiles one schema of the bundle from memory, every
// file at its path under a base URL, as a validator reading the files
// would see them.
func compileBundle(t *testing.T, files map[string][]byte, ref string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	c.LoadURL = func(s string) (rc io.ReadCloser, err error) {
		t.Errorf("bundle asked for %s, which it does not hold", s)
		return nil, os.ErrNotExist
	}
	for name, src := range files {
		if err := c.AddResource("mem:///bundle/"+name, bytes.NewReader(src)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	s, err := c.Compile("mem:///bundle/" + ref)
	if err != nil {
		t.Fatalf("compile %s: %v", ref, err)
	}
	return s
}

// corpus is strings around the edges of Kubernetes' name formats, and
// random ones from the characters those formats treat specially.
func corpus() []string {
	out := []string{"", "a", "A", "-", ".", "..", "...", "_", "a-", "-a", "a.", ".a", "a..b", "a.b", "a_b", "a/b", "/a", "a/", "a//b",
		"example.com/a", "Example.com/a", "example.com/A_b.c", "ex_ample.com/a", "-ex.com/a", "ex.com/-a", "a:b", "system:auth-delegator",
		"MY_ENV", "my.env-name", "1abc", "./x", "../x", "..x", ".x", "a b", "ä", "nightly-", "Nightly-", "a.-", "a--", "--", "ab.-",
		strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 253), strings.Repeat("a", 254),
		strings.Repeat("a", 62) + "-", strings.Repeat("a.", 126) + "a", strings.Repeat("a", 63) + "/b", "b/" + strings.Repeat("a", 63), "b/" + strings.Repeat("a", 64),
		"1", "0", "-0", "+1", "1.5", ".5", "5.", "1e3", "1E-3", "1.5e3", "1e", "e3", "100m", "64Mi", "1Gi", "1gi", "1k", "1K", "1Ki", "2Ei", "1.5Gi", "-1", "-1m", "-0.0", "-.0", "1..2", "0x10", "1 ", " 1"}
	r := rand.New(rand.NewSource(11))
	const alphabet = "aZ09-._/:"
	for i := 0; i < 3000; i++ {
		b := make([]byte, r.Intn(9))
		for j := range b {
			b[j] = alphabet[r.Intn(len(alphabet))]
		}
		out = append(out, string(b))
	}
	const numeric = "0123456789.+-eEmkMGiK"
	for i := 0; i < 3000; i++ {
		b := make([]byte, 1+r.Intn(6))
		for j := range b {
			b[j] = numeric[r.Intn(len(numeric))]
		}
		out = append(out, string(b))
	}
	return out
}

// TestTaskSchemaFormats holds each format task.json states to the Go
// function the webhook or the API server checks it with.
func TestTaskSchemaFormats(t *testing.T) {
	files := bundle(t)
	none := func(msgs []string) bool { return len(msgs) == 0 }
	tests := []struct {
		def   string
		valid func(s string) bool
	}{
		{def: "dnsLabel", valid: func(s string) bool { return none(validation.IsDNS1123Label(s)) }},
		{def: "dnsSubdomain", valid: func(s string) bool { return none(validation.IsDNS1123Subdomain(s)) }},
		{def: "labelKey", valid: func(s string) bool { return none(validation.IsQualifiedName(s)) }},
		{def: "annotationKey", valid: func(s string) bool { return none(validation.IsQualifiedName(strings.ToLower(s))) }},
		{def: "labelValue", valid: func(s string) bool { return none(validation.IsValidLabelValue(s)) }},
		{def: "envVarName", valid: func(s string) bool { return none(validation.IsEnvVarName(s)) }},
		{def: "quantity", valid: func(s string) bool {
			// task.json also wants a digit before the suffix (see PatternQuantity).
			num := strings.TrimLeft(s, "+-")
			num = num[:len(num)-len(strings.TrimLeft(num, "0123456789."))]
			q, err := resource.ParseQuantity(s)
			return err == nil && q.Sign() >= 0 && strings.ContainsAny(num, "0123456789")
		}},
		{def: "objectMeta/properties/generateName", valid: func(s string) bool {
			// The API server checks the prefix, then the name it generates from it.
			gen := s
			if len(gen) > 58 {
				gen = gen[:58]
			}
			return none(apivalidation.NameIsDNSSubdomain(s, true)) && none(apivalidation.NameIsDNSSubdomain(gen+"x2b4z", false))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.def, func(t *testing.T) {
			sc := compileBundle(t, files, "task.json#/$defs/"+tt.def)
			for _, s := range corpus() {
				if s == "" && tt.def == "objectMeta/properties/generateName" {
					continue // no generateName at all: metadata.name decides
				}
				want, got := tt.valid(s), sc.Validate(s) == nil
				if want != got {
					t.Errorf("%q: Go says valid=%v, task.json says valid=%v", s, want, got)
				}
			}
		})
	}
}

// TestBundleReferences checks that the bundle's files name each other
// by relative paths and that each file's $id is its own path.
func TestBundleReferences(t *testing.T) {
	files := bundle(t)
	want := []string{"task.json", "taskrun.json", "custom-image.json", "kubernetes-object-transformation.json", "run-synchronization.json",
		"synchronization/kubernetes-to-kubernetes.json", "synchronization/kubernetes-to-bucket.json"}
	if len(files) != len(want) {
		t.Errorf("bundle holds %d files, want %v", len(files), want)
	}
	for _, name := range want {
		src, ok := files[name]
		if !ok {
			t.Errorf("bundle lacks %s", name)
			continue
		}
		var doc map[string]any
		if err := json.Unmarshal(src, &doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if doc["$id"] != name {
			t.Errorf("%s: $id %v, want %q", name, doc["$id"], name)
		}
		for _, r := range refs(doc, nil) {
			if strings.Contains(r, "://") || strings.HasPrefix(r, "/") {
				t.Errorf("%s: $ref %q is not relative", name, r)
			}
			if file, _, _ := strings.Cut(r, "#"); file != "" {
				if _, ok := files[file]; !ok {
					t.Errorf("%s: $ref %q names no file of the bundle", name, r)
				}
			}
		}
	}
	for _, p := range v1alpha1.Plugins {
		for _, f := range []string{"task.json", "taskrun.json"} {
			if !bytes.Contains(files[f], []byte(`"$ref": "`+string(p)+`.json"`)) {
				t.Errorf("%s does not dispatch to %s.json", f, p)
			}
		}
	}
	compileBundle(t, files, "task.json")
	compileBundle(t, files, "taskrun.json")
}

func refs(v any, out []string) []string {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "$ref" {
				out = append(out, s)
			}
			out = refs(e, out)
		}
	case []any:
		for _, e := range x {
			out = refs(e, out)
		}
	}
	return out
}

// TestBundleWithSyncOverride: a synchronization plugin from
// --sync-schema-dir joins run-synchronization's dispatch, and its own
// absolute $id gives way to its path in the bundle.
func TestBundleWithSyncOverride(t *testing.T) {
	set := load(t, overrideDir(t, "s3-export.json", `{"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://example.com/s3.json", "type": "object",
	  "additionalProperties": false, "required": ["bucket"],
	  "properties": {"bucket": {"description": "Bucket name.", "type": "string"}}}`))
	out := t.TempDir()
	written, err := set.WriteBundle(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 8 {
		t.Errorf("wrote %v, want 8 files", written)
	}
	files := map[string][]byte{}
	for _, p := range written {
		rel, _ := filepath.Rel(out, p)
		files[filepath.ToSlash(rel)], _ = os.ReadFile(p)
	}
	if !bytes.Contains(files["synchronization/s3-export.json"], []byte(`"$id": "synchronization/s3-export.json"`)) {
		t.Errorf("override's $id not rewritten:\n%s", files["synchronization/s3-export.json"])
	}
	sc := compileBundle(t, files, "run-synchronization.json")
	tests := []struct {
		name  string
		spec  string
		valid bool
	}{
		{name: "override plugin", spec: `{"plugin": "s3-export", "config": {"bucket": "b"}}`, valid: true},
		{name: "override plugin's config checked", spec: `{"plugin": "s3-export", "config": {"bucket": 1}}`},
		{name: "embedded plugin", spec: `{"plugin": "kubernetes-to-kubernetes", "config": {"sourceName": "a", "destinationName": "b"}}`, valid: true},
		{name: "embedded plugin's config checked", spec: `{"plugin": "kubernetes-to-kubernetes", "config": {"sourceName": "a"}}`},
		{name: "unknown plugin", spec: `{"plugin": "kuberentes-to-kubernetes", "config": {}}`},
		{name: "config required", spec: `{"plugin": "s3-export"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var spec any
			d := json.NewDecoder(strings.NewReader(tt.spec))
			d.UseNumber()
			if err := d.Decode(&spec); err != nil {
				t.Fatal(err)
			}
			err := sc.Validate(map[string]any{"template": map[string]any{"spec": spec}})
			if (err == nil) != tt.valid {
				t.Errorf("valid=%v, want %v (%v)", err == nil, tt.valid, err)
			}
		})
	}
}
