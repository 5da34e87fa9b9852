package webhook

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/schemas"
)

// withSyncDefaults returns an Admitter whose synchronization plugins include
// one with defaults, nested and behind a $ref, so run-synchronization Tasks
// have something to default.
func withSyncDefaults(t testing.TB) *Admitter {
	t.Helper()
	dir := t.TempDir()
	schema := `{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
	  "properties": {
	    "bucket": {"description": "Bucket.", "type": "string"},
	    "retries": {"description": "Retries.", "type": "integer", "default": 3},
	    "options": {"description": "Options.", "$ref": "#/$defs/options"},
	    "targets": {"description": "Targets.", "type": "array", "items": {"$ref": "#/$defs/options"}}},
	  "$defs": {"options": {"type": "object", "properties": {
	    "mode": {"description": "Mode.", "type": "string", "default": "copy<&>"},
	    "ratio": {"description": "Ratio.", "type": "number", "default": 0.5}}}}}`
	if err := os.WriteFile(filepath.Join(dir, "with-defaults.json"), []byte(schema), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := schemas.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return NewAdmitter(set)
}

var defaultCases = []struct {
	name   string
	plugin v1alpha1.Plugin
	config string
}{
	{name: "custom-image all defaults", plugin: v1alpha1.PluginCustomImage, config: `{"command":["echo"],"image":"busybox"}`},
	{name: "custom-image none missing", plugin: v1alpha1.PluginCustomImage, config: `{"command":["echo"],"image":"busybox","namespace":"x","serviceAccountName":"s","timeoutSeconds":5}`},
	{name: "custom-image not canonical", plugin: v1alpha1.PluginCustomImage, config: `{"image": "busybox", "command": ["echo"]}`},
	{name: "custom-image escaped", plugin: v1alpha1.PluginCustomImage, config: `{"command":["a\u003cb\n"],"image":"busybox"}`},
	{name: "transformation namespaced", plugin: v1alpha1.PluginTransformation, config: `{"operations":[],"resources":[{"group":"apps","resource":"deployments","version":"v1"}]}`},
	{name: "transformation cluster-scoped", plugin: v1alpha1.PluginTransformation, config: `{"operations":[],"resources":[{"resource":"nodes","version":"v1"}]}`},
	{name: "transformation resources not a list", plugin: v1alpha1.PluginTransformation, config: `{"resources":5}`},
	{name: "run-synchronization with defaults", plugin: v1alpha1.PluginRunSync,
		config: `{"template":{"spec":{"config":{"options":{},"targets":[{},{"mode":"m"}]},"plugin":"with-defaults"}}}`},
	{name: "run-synchronization no sync config", plugin: v1alpha1.PluginRunSync, config: `{"template":{"spec":{"plugin":"with-defaults"}}}`},
	{name: "run-synchronization other plugin", plugin: v1alpha1.PluginRunSync, config: `{"template":{"spec":{"config":{},"plugin":"kubernetes-to-kubernetes"}}}`},
	{name: "not an object", plugin: v1alpha1.PluginCustomImage, config: `[]`},
	{name: "null", plugin: v1alpha1.PluginCustomImage, config: `null`},
	{name: "too deep", plugin: v1alpha1.PluginCustomImage, config: `{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`},
	{name: "unknown plugin", plugin: "nope", config: `{}`},
}

func TestDefaultCanonicalIsDefaultDecoded(t *testing.T) {
	for _, a := range []*Admitter{newTestAdmitter(t), withSyncDefaults(t)} {
		for _, tt := range defaultCases {
			t.Run(tt.name, func(t *testing.T) {
				checkDefaultPaths(t, a, tt.plugin, []byte(tt.config))
			})
		}
		for name, tk := range sampleTasks(t) {
			t.Run(name, func(t *testing.T) {
				checkDefaultPaths(t, a, tk.Spec.Plugin, tk.Spec.Config.Raw)
			})
		}
	}
	// The seed samples are canonical: they take the path without decoding.
	a := newTestAdmitter(t)
	for name, tk := range sampleTasks(t) {
		if !a.defaultCanonical(tk.DeepCopy()) {
			t.Errorf("%s: not defaulted member by member", name)
		}
	}
}

// FuzzDefaultCanonical holds Default to what defaulting the decoded config
// gives: the same bytes and the same errors.
func FuzzDefaultCanonical(f *testing.F) {
	for _, tt := range defaultCases {
		f.Add(string(tt.plugin), []byte(tt.config))
	}
	a := withSyncDefaults(f)
	f.Fuzz(func(t *testing.T, plugin string, config []byte) {
		checkDefaultPaths(t, a, v1alpha1.Plugin(plugin), config)
	})
}

func checkDefaultPaths(t *testing.T, a *Admitter, plugin v1alpha1.Plugin, config []byte) {
	t.Helper()
	newTask := func() *v1alpha1.Task {
		tk := &v1alpha1.Task{Spec: v1alpha1.TaskSpec{Plugin: plugin, Config: runtime.RawExtension{Raw: append([]byte(nil), config...)}}}
		tk.Name, tk.Namespace = "t1", "shop"
		return tk
	}
	got, want := newTask(), newTask()
	gotErrs, wantErrs := a.Default(got), a.defaultDecoded(want)
	if !reflect.DeepEqual(gotErrs, wantErrs) || string(got.Spec.Config.Raw) != string(want.Spec.Config.Raw) {
		t.Fatalf("%s %s: Default = %s %v, decoded %s %v", plugin, config, got.Spec.Config.Raw, gotErrs, want.Spec.Config.Raw, wantErrs)
	}
}
