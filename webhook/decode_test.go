package webhook

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// TestValidateAsWritten validates configs as sent, without defaulting (which
// would write them back with each key once): keys match case-sensitively, as
// the API server matches them, and a repeated key is refused, as the API
// server's strict field validation refuses it, so that no check reads a
// value the schema did not see.
func TestValidateAsWritten(t *testing.T) {
	const rest = `"image":"a:1","command":["x"],"serviceAccountName":"s","timeoutSeconds":5,"retries":0`
	tests := []struct {
		name   string
		plugin v1alpha1.Plugin
		config string
		want   []string // every error, in order
	}{
		{name: "repeated key", plugin: v1alpha1.PluginCustomImage, config: `{` + rest + `,"namespace":"shop","namespace":"other"}`,
			want: []string{`spec.config.namespace: Invalid value: "other": the Pod runs in the Task's namespace`,
				"spec.config.namespace: Duplicate value: written more than once (the API server keeps only the last); write it once"}},
		{name: "repeated key, the first of another type", plugin: v1alpha1.PluginCustomImage, config: `{` + rest + `,"namespace":5,"namespace":"shop"}`,
			want: []string{"spec.config: Invalid value: does not decode as the plugin's configuration: json: cannot unmarshal number into Go struct field CustomImageConfig.namespace of type string"}},
		// An integer to the schema, not to int64: the plugin's checks
		// cannot run, so the Task is refused rather than let through.
		{name: "integer with an exponent", plugin: v1alpha1.PluginCustomImage, config: `{"image":"a:1","command":["x"],"serviceAccountName":"s","retries":0,"timeoutSeconds":1e3,"namespace":"other"}`,
			want: []string{"spec.config: Invalid value: does not decode as the plugin's configuration: json: cannot unmarshal number 1e3 into Go struct field CustomImageConfig.timeoutSeconds of type int64"}},
		{name: "repeated nested key", plugin: v1alpha1.PluginCustomImage, config: `{` + rest + `,"env":[{"name":"A","name":"B"}]}`,
			want: []string{"spec.config.env[0].name: Duplicate value: written more than once (the API server keeps only the last); write it once"}},
		{name: "key in another case is unknown, not read", plugin: v1alpha1.PluginCustomImage, config: `{` + rest + `,"Namespace":"other"}`,
			want: []string{`spec.config.Namespace: Forbidden: unknown field "Namespace"; did you mean "namespace"?`}},
		{name: "key in another case, nested", plugin: v1alpha1.PluginRunSync,
			config: `{"template":{"spec":{"plugin":"kubernetes-to-kubernetes","config":{"sourceName":"a","destinationName":"b"},"Plugin":"x"}}}`,
			want:   []string{`spec.config.template.spec.Plugin: Forbidden: unknown field "Plugin"; did you mean "plugin"?`}},
		{name: "each key once", plugin: v1alpha1.PluginCustomImage, config: `{` + rest + `,"namespace":"shop"}`},
	}
	a := newTestAdmitter(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk := &v1alpha1.Task{Spec: v1alpha1.TaskSpec{PluginSpec: v1alpha1.PluginSpec{Plugin: tt.plugin, Config: runtime.RawExtension{Raw: []byte(tt.config)}}}}
			tk.Name, tk.Namespace = "t1", "shop"
			errs, _ := a.Validate(tk)
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors %v, want %q", len(errs), errs, tt.want)
			}
			for i, e := range errs {
				if got := e.Error(); len(got) < len(tt.want[i]) || got[:len(tt.want[i])] != tt.want[i] {
					t.Errorf("error %d = %s, want it to start %s", i, got, tt.want[i])
				}
			}
		})
	}
}
