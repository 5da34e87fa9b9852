package webhook

import (
	"os"
	"path/filepath"
	"strings"
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

// TestDefaultCases defaults each config once (the result, or the error, as
// the table says) and then again, which must change nothing. The wanted
// configs are what json.Marshal writes for the defaulted value: keys
// sorted, <, > and & escaped.
func TestDefaultCases(t *testing.T) {
	tests := []struct {
		name    string
		plugin  v1alpha1.Plugin
		config  string
		want    string // the config after Default; "" for the config unchanged
		wantErr string
	}{
		{name: "custom-image all defaults", plugin: v1alpha1.PluginCustomImage, config: `{"command":["echo"],"image":"busybox"}`,
			want: `{"command":["echo"],"image":"busybox","namespace":"shop","retries":0,"timeoutSeconds":3600}`},
		{name: "custom-image none missing", plugin: v1alpha1.PluginCustomImage,
			config: `{"command":["echo"],"image":"busybox","namespace":"x","retries":0,"serviceAccountName":"s","timeoutSeconds":5}`},
		{name: "custom-image spaced, keys unsorted", plugin: v1alpha1.PluginCustomImage, config: `{"image": "busybox", "command": ["echo"]}`,
			want: `{"command":["echo"],"image":"busybox","namespace":"shop","retries":0,"timeoutSeconds":3600}`},
		{name: "custom-image escaped", plugin: v1alpha1.PluginCustomImage, config: `{"command":["a\u003cb\n"],"image":"busybox"}`,
			want: `{"command":["a\u003cb\n"],"image":"busybox","namespace":"shop","retries":0,"timeoutSeconds":3600}`},
		{name: "custom-image numbers kept as written", plugin: v1alpha1.PluginCustomImage, config: `{"command":["echo"],"image":"busybox","timeoutSeconds":6e1}`,
			want: `{"command":["echo"],"image":"busybox","namespace":"shop","retries":0,"timeoutSeconds":6e1}`},
		// As the API server stores it with fieldValidation Ignore or Warn:
		// the last value (Validate refuses it as written, see admitter_test).
		{name: "custom-image repeated key keeps the last", plugin: v1alpha1.PluginCustomImage, config: `{"command":["echo"],"image":"busybox","namespace":5,"namespace":"other"}`,
			want: `{"command":["echo"],"image":"busybox","namespace":"other","retries":0,"timeoutSeconds":3600}`},
		{name: "transformation namespaced", plugin: v1alpha1.PluginTransformation, config: `{"operations":[],"resources":[{"group":"apps","resource":"deployments","version":"v1"}]}`,
			want: `{"namespaces":["shop"],"operations":[],"resources":[{"group":"apps","resource":"deployments","scope":"Namespaced","version":"v1"}]}`},
		{name: "transformation cluster-scoped", plugin: v1alpha1.PluginTransformation, config: `{"operations":[],"resources":[{"resource":"nodes","version":"v1"}]}`,
			want: `{"operations":[],"resources":[{"resource":"nodes","scope":"Cluster","version":"v1"}]}`},
		{name: "transformation resources not a list", plugin: v1alpha1.PluginTransformation, config: `{"resources":5}`},
		{name: "run-synchronization with defaults", plugin: v1alpha1.PluginRunSync,
			config: `{"template":{"spec":{"config":{"options":{},"targets":[{},{"mode":"m"}]},"plugin":"with-defaults"}}}`,
			want:   `{"template":{"spec":{"config":{"options":{"mode":"copy\u003c\u0026\u003e","ratio":0.5},"retries":3,"targets":[{"mode":"copy\u003c\u0026\u003e","ratio":0.5},{"mode":"m","ratio":0.5}]},"plugin":"with-defaults"}}}`},
		{name: "run-synchronization no sync config", plugin: v1alpha1.PluginRunSync, config: `{"template":{"spec":{"plugin":"with-defaults"}}}`},
		{name: "run-synchronization other plugin", plugin: v1alpha1.PluginRunSync, config: `{"template":{"spec":{"config":{},"plugin":"kubernetes-to-kubernetes"}}}`},
		{name: "not an object", plugin: v1alpha1.PluginCustomImage, config: `[]`, wantErr: "spec.config: Invalid value: must be an object"},
		{name: "null", plugin: v1alpha1.PluginCustomImage, config: `null`, wantErr: "spec.config: Required value"},
		{name: "not JSON", plugin: v1alpha1.PluginCustomImage, config: `{"image":"a",}`, wantErr: "spec.config: Invalid value: not valid JSON"},
		{name: "data after the value", plugin: v1alpha1.PluginCustomImage, config: `{"image":"a"} {}`, wantErr: "spec.config: Invalid value: not valid JSON"},
		{name: "too deep", plugin: v1alpha1.PluginCustomImage, config: `{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
			wantErr: "nested more than 32 levels deep"},
		{name: "unknown plugin", plugin: "nope", config: `{}`, wantErr: `spec.plugin: Unsupported value: "nope"`},
	}
	a := withSyncDefaults(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk := &v1alpha1.Task{Spec: v1alpha1.TaskSpec{PluginSpec: v1alpha1.PluginSpec{Plugin: tt.plugin, Config: runtime.RawExtension{Raw: []byte(tt.config)}}}}
			tk.Name, tk.Namespace = "t1", "shop"
			errs := a.Default(tk)
			if tt.wantErr != "" {
				if agg := errs.ToAggregate(); agg == nil || !strings.Contains(agg.Error(), tt.wantErr) {
					t.Fatalf("Default = %v, want an error containing %q", agg, tt.wantErr)
				}
				if string(tk.Spec.Config.Raw) != tt.config {
					t.Errorf("a config Default refuses was changed to %s", tk.Spec.Config.Raw)
				}
				return
			}
			if len(errs) > 0 {
				t.Fatalf("Default: %v", errs)
			}
			want := tt.want
			if want == "" {
				want = tt.config
			}
			if got := string(tk.Spec.Config.Raw); got != want {
				t.Fatalf("defaulted\n got %s\nwant %s", got, want)
			}
			if errs := a.Default(tk); len(errs) > 0 || string(tk.Spec.Config.Raw) != want {
				t.Errorf("second Default: %s %v", tk.Spec.Config.Raw, errs)
			}
		})
	}
}
