package registry_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/registry"
	"github.com/astronetes/taskgate/schemas"
	"github.com/astronetes/taskgate/webhook"
)

// TestEveryPluginIsComplete fails for each plugin in v1alpha1.Plugins that
// lacks a part docs/adding-a-plugin.md lists, and for each part that names a
// plugin v1alpha1.Plugins lacks.
func TestEveryPluginIsComplete(t *testing.T) {
	set, err := schemas.Load("")
	if err != nil {
		t.Fatal(err)
	}
	crdEnum := crdPluginEnum(t)
	testdata := dirNames(t, "../schemas/testdata")
	samples := samplePlugins(t)
	for _, p := range v1alpha1.Plugins {
		t.Run(string(p), func(t *testing.T) {
			if _, ok := set.Plugin(string(p)); !ok {
				t.Errorf("no schema: write schemas/%s.json", p)
			}
			for _, kind := range []string{"valid", "invalid"} {
				cases, _ := filepath.Glob(filepath.Join("../schemas/testdata", string(p), kind, "*.yaml"))
				if len(cases) == 0 {
					t.Errorf("no %s test cases: add schemas/testdata/%s/%s/*.yaml", kind, p, kind)
				}
			}
			if !slices.Contains(webhook.Plugins(), p) {
				t.Errorf("no admission rules: add webhook/plugin_<name>.go and its entry in webhook/plugins.go")
			}
			if !slices.Contains(controller.Plugins(), p) {
				t.Errorf("no runner: add controller/run_<name>.go and its entry in controller/runner.go")
			}
			if !slices.Contains(samples, p) {
				t.Errorf("no sample: add config/samples/<name>.yaml and its golden file (go test ./webhook -run TestDefaultsGolden -update)")
			}
			if !slices.Contains(crdEnum, string(p)) {
				t.Errorf("the CRD's spec.plugin enum lacks it: add it to the +kubebuilder:validation:Enum marker of Plugin (api/v1alpha1/task_types.go) and run make manifests")
			}
		})
	}
	known := func(name string) bool { return slices.Contains(v1alpha1.Plugins, v1alpha1.Plugin(name)) }
	for _, n := range set.PluginNames() {
		if !known(n) {
			t.Errorf("schemas/%s.json is not the schema of a plugin in v1alpha1.Plugins", n)
		}
	}
	for _, n := range testdata {
		if !known(n) {
			t.Errorf("schemas/testdata/%s is not a plugin in v1alpha1.Plugins", n)
		}
	}
	for _, n := range crdEnum {
		if !known(n) {
			t.Errorf("the CRD's spec.plugin enum names %q, which is not in v1alpha1.Plugins", n)
		}
	}
}

// crdPluginEnum is the enum of spec.plugin in the generated Task CRD.
func crdPluginEnum(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../config/crd/automation.astronetes.io_tasks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range crd.Spec.Versions {
		plugin := v.Schema.OpenAPIV3Schema.Properties["spec"].Properties["plugin"]
		for _, e := range plugin.Enum {
			out = append(out, strings.Trim(string(e.Raw), `"`))
		}
	}
	if len(out) == 0 {
		t.Fatal("the Task CRD has no enum on spec.plugin")
	}
	return out
}

// samplePlugins are the plugins of the Tasks in config/samples, which make
// run applies and webhook's TestDefaultsGolden defaults.
func samplePlugins(t *testing.T) []v1alpha1.Plugin {
	t.Helper()
	files, err := filepath.Glob("../config/samples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out []v1alpha1.Plugin
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var task v1alpha1.Task
		if err := yaml.Unmarshal(data, &task); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, task.Spec.Plugin)
	}
	return out
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestCheck(t *testing.T) {
	all := map[v1alpha1.Plugin]int{}
	for _, p := range v1alpha1.Plugins {
		all[p] = 1
	}
	lacking := map[v1alpha1.Plugin]int{v1alpha1.PluginCustomImage: 1, v1alpha1.PluginRunSync: 1}
	extra := map[v1alpha1.Plugin]int{"made-up": 1}
	for p := range all {
		extra[p] = 1
	}
	tests := []struct {
		name  string
		table map[v1alpha1.Plugin]int
		want  []string // substrings of the error; none: no error
	}{
		{name: "every plugin", table: all},
		{name: "one lacking", table: lacking, want: []string{
			`plugin "kubernetes-object-transformation" has no runner: add its entry to controller/runner.go`, "docs/adding-a-plugin.md"}},
		{name: "one not in v1alpha1.Plugins", table: extra, want: []string{
			`controller/runner.go has a runner for "made-up", which is not in v1alpha1.Plugins`}},
		{name: "empty", table: nil, want: []string{`plugin "custom-image" has no runner`, `plugin "run-synchronization" has no runner`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := registry.Check("runner", "controller/runner.go", tt.table)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Check() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check() = nil, want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Check() = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestMustPanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(error).Error(), `plugin "custom-image" has no admission`) {
			t.Errorf("Must() recovered %v, want the Check error", r)
		}
	}()
	registry.Must("admission", "webhook/plugins.go", map[v1alpha1.Plugin]int{})
}

func TestLabel(t *testing.T) {
	tests := []struct {
		name   string
		plugin v1alpha1.Plugin
		want   string
	}{
		{name: "known", plugin: v1alpha1.PluginTransformation, want: "kubernetes-object-transformation"},
		{name: "made up", plugin: "kubernetes-object-transformation-x", want: registry.Unknown},
		{name: "empty", plugin: "", want: registry.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := registry.Label(tt.plugin); got != tt.want {
				t.Errorf("Label(%q) = %q, want %q", tt.plugin, got, tt.want)
			}
		})
	}
}
