package schemas_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/schemas"
	"github.com/astronetes/taskgate/webhook"
)

// TestCases runs every Task under testdata/<plugin>/{valid,invalid} through
// defaulting and validation, as admission does. Each invalid case lists the
// errors it must produce in "# want:" lines.
func TestCases(t *testing.T) {
	set := load(t, "")
	a := webhook.NewAdmitter(set)
	files, err := filepath.Glob("testdata/*/*/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test cases found: %v", err)
	}
	perPlugin := map[string]int{}
	for _, file := range files {
		parts := strings.Split(filepath.ToSlash(file), "/")
		plugin, kind := parts[1], parts[2]
		perPlugin[plugin+"/"+kind]++
		t.Run(plugin+"/"+kind+"/"+strings.TrimSuffix(parts[3], ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var task v1alpha1.Task
			if err := yaml.UnmarshalStrict(data, &task); err != nil {
				t.Fatalf("test case is not a Task: %v", err)
			}
			if string(task.Spec.Plugin) != plugin {
				t.Fatalf("case under %s names plugin %s", plugin, task.Spec.Plugin)
			}
			errs := a.Default(&task)
			if len(errs) == 0 {
				errs, _ = a.Validate(&task)
			}
			got := errs.ToAggregate()
			switch kind {
			case "valid":
				if got != nil {
					t.Fatalf("want valid, got: %v", got)
				}
			case "invalid":
				wants := wantLines(string(data))
				if len(wants) == 0 {
					t.Fatal("invalid case has no '# want:' line")
				}
				if got == nil {
					t.Fatalf("want errors %q, got none", wants)
				}
				for _, w := range wants {
					if !strings.Contains(got.Error(), w) {
						t.Errorf("want an error containing\n  %s\ngot\n  %v", w, got)
					}
				}
			default:
				t.Fatalf("unknown case kind %q", kind)
			}
		})
	}
	for _, p := range v1alpha1.Plugins {
		for _, k := range []string{"valid", "invalid"} {
			if perPlugin[string(p)+"/"+k] == 0 {
				t.Errorf("no %s cases for plugin %s", k, p)
			}
		}
	}
}

func wantLines(doc string) []string {
	var out []string
	for _, line := range strings.Split(doc, "\n") {
		if w, ok := strings.CutPrefix(line, "# want: "); ok {
			out = append(out, w)
		}
	}
	return out
}

func TestEverySchemaPropertyIsDescribed(t *testing.T) {
	set := load(t, "")
	check := func(name string, s *schemas.Schema) {
		for _, missing := range s.UndescribedProperties() {
			t.Errorf("%s: property %s has no description", name, missing)
		}
	}
	for _, n := range set.PluginNames() {
		s, _ := set.Plugin(n)
		check(n, s)
	}
	for _, n := range set.SyncPluginNames() {
		s, _ := set.SyncPlugin(n)
		check("synchronization/"+n, s)
	}
	if got := set.SyncPluginNames(); len(got) < 2 {
		t.Errorf("synchronization plugins = %v, want kubernetes-to-kubernetes and kubernetes-to-bucket", got)
	}
}

func TestOverrideDir(t *testing.T) {
	dir := overrideDir(t, "bucket-to-bucket.json", `{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
	  "additionalProperties": false, "required": ["bucket"],
	  "properties": {"bucket": {"description": "Bucket name.", "type": "string"}}}`)
	set := load(t, dir)
	s, ok := set.SyncPlugin("bucket-to-bucket")
	if !ok {
		t.Fatalf("override plugin not loaded; have %v", set.SyncPluginNames())
	}
	if errs := s.Validate(map[string]any{"bukket": "x"}, nil); len(errs) != 2 {
		t.Errorf("want required + unknown field errors, got %v", errs)
	}
	if _, ok := set.SyncPlugin("kubernetes-to-kubernetes"); !ok {
		t.Error("embedded plugins lost when an override dir is given")
	}

	if err := os.WriteFile(filepath.Join(dir, "broken.json"), []byte(`{"type": 3}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := schemas.Load(dir); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("a broken override schema must fail loading and name the file, got %v", err)
	}
}

func TestNearest(t *testing.T) {
	candidates := []string{"kubernetes-to-kubernetes", "kubernetes-to-bucket"}
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{name: "swapped letters", in: "kuberentes-to-kubernetes", want: "kubernetes-to-kubernetes", ok: true},
		{name: "missing letter", in: "kubernetes-to-buckt", want: "kubernetes-to-bucket", ok: true},
		{name: "case", in: "Kubernetes-To-Bucket", want: "kubernetes-to-bucket", ok: true},
		{name: "far away", in: "s3-sync", ok: false},
		{name: "empty", in: "", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := schemas.Nearest(tt.in, candidates)
			if ok != tt.ok || (ok && got != tt.want) {
				t.Errorf("Nearest(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestApplyDefaultsDoesNotCreateParents(t *testing.T) {
	s, err := schemas.Compile("t", []byte(`{"type": "object", "properties": {
	  "a": {"type": "integer", "default": 3},
	  "opt": {"type": "object", "properties": {"b": {"type": "string", "default": "x"}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	v := map[string]any{}
	if !s.ApplyDefaults(v) {
		t.Fatal("ApplyDefaults reported no change")
	}
	if _, ok := v["opt"]; ok {
		t.Errorf("optional parent created: %v", v)
	}
	if v["a"] == nil || v["a"].(interface{ String() string }).String() != "3" {
		t.Errorf("a = %v, want 3", v["a"])
	}
	w := map[string]any{"opt": map[string]any{}}
	s.ApplyDefaults(w)
	if w["opt"].(map[string]any)["b"] != "x" {
		t.Errorf("nested default not applied: %v", w)
	}
	if s.ApplyDefaults(w) {
		t.Error("second ApplyDefaults changed something: defaults must be idempotent")
	}
}

func TestApplyDefaultsThroughRefs(t *testing.T) {
	s, err := schemas.Compile("t", []byte(`{"$ref": "#/$defs/node", "$defs": {
	  "node": {"type": "object", "properties": {
	    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
	    "leaf": {"$ref": "#/$defs/leaf"},
	    "plain": {"type": "object", "properties": {"x": {"type": "string"}}}}},
	  "leaf": {"type": "object", "properties": {"n": {"type": "integer", "default": 1}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !s.HasDefaults() {
		t.Fatal("HasDefaults = false for a schema with a nested default")
	}
	v := map[string]any{"children": []any{map[string]any{"leaf": map[string]any{}, "plain": map[string]any{}}}, "leaf": map[string]any{}}
	if !s.ApplyDefaults(v) {
		t.Fatal("ApplyDefaults reported no change")
	}
	got, _ := json.Marshal(v)
	if want := `{"children":[{"leaf":{"n":1},"plain":{}}],"leaf":{"n":1}}`; string(got) != want {
		t.Errorf("defaulted = %s, want %s", got, want)
	}
	none, err := schemas.Compile("none", []byte(`{"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if none.HasDefaults() || none.ApplyDefaults(map[string]any{"a": map[string]any{}}) {
		t.Error("a schema without defaults defaulted something")
	}
}

// load is schemas.Load(dir), failing the test on error.
func load(t *testing.T, dir string) *schemas.Set {
	t.Helper()
	set, err := schemas.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// overrideDir is a new --sync-schema-dir holding one schema file.
func overrideDir(t *testing.T, file, schema string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, file), []byte(schema), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
