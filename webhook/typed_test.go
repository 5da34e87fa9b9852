package webhook

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// typedCases are configs the map readers must read exactly as json.Unmarshal
// does, or leave to it; fast says whether they should read them themselves.
var typedCases = []struct {
	name   string
	plugin v1alpha1.Plugin
	config string
	fast   bool
}{
	{name: "custom-image full", plugin: v1alpha1.PluginCustomImage, fast: true,
		config: `{"image":"busybox:1.36","command":["sh","-c"],"args":[],"env":[{"name":"A","value":"1"},{"name":"B"}],"namespace":"shop","serviceAccountName":"sa","clusterRole":"view","timeoutSeconds":60}`},
	{name: "custom-image empty lists", plugin: v1alpha1.PluginCustomImage, fast: true, config: `{"command":[],"env":[]}`},
	{name: "custom-image resources", plugin: v1alpha1.PluginCustomImage, config: `{"image":"a","command":["x"],"resources":{"limits":{"cpu":"1"}}}`},
	{name: "custom-image valueFrom", plugin: v1alpha1.PluginCustomImage, config: `{"image":"a","command":["x"],"env":[{"name":"A","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}]}`},
	{name: "custom-image key in another case", plugin: v1alpha1.PluginCustomImage, config: `{"Image":"a","command":["x"],"namespace":"other"}`},
	{name: "custom-image unknown field", plugin: v1alpha1.PluginCustomImage, config: `{"image":"a","command":["x"],"imag":"b"}`},
	{name: "custom-image repeated key", plugin: v1alpha1.PluginCustomImage, config: `{"image":"a","command":["x"],"namespace":5,"namespace":"other"}`},
	{name: "custom-image null", plugin: v1alpha1.PluginCustomImage, config: `{"image":null,"command":["x"]}`},
	{name: "custom-image wrong type", plugin: v1alpha1.PluginCustomImage, config: `{"image":"a","command":"x","namespace":"other"}`},
	{name: "custom-image timeout not int64", plugin: v1alpha1.PluginCustomImage, config: `{"image":"a","command":["x"],"timeoutSeconds":1e3,"namespace":"other"}`},
	{name: "custom-image timeout string", plugin: v1alpha1.PluginCustomImage, config: `{"image":"a","command":["x"],"timeoutSeconds":"60"}`},
	{name: "custom-image retries", plugin: v1alpha1.PluginCustomImage, fast: true, config: `{"image":"a","command":["x"],"retries":3}`},
	{name: "custom-image retries past int32", plugin: v1alpha1.PluginCustomImage, config: `{"image":"a","command":["x"],"retries":4294967296}`},
	{name: "custom-image retries not an integer", plugin: v1alpha1.PluginCustomImage, config: `{"image":"a","command":["x"],"retries":1.5}`},
	{name: "custom-image escaped key", plugin: v1alpha1.PluginCustomImage, fast: true, config: `{"imag\u0065":"a","command":["x"]}`},
	{name: "custom-image pod fields", plugin: v1alpha1.PluginCustomImage, fast: true,
		config: `{"image":"a","command":["x"],"securityContext":{"runAsUser":1000,"runAsGroup":0,"runAsNonRoot":true,"readOnlyRootFilesystem":false,"allowPrivilegeEscalation":false,"privileged":false,"seccompProfile":{"type":"Localhost","localhostProfile":"p.json"},"capabilities":{"add":["NET_BIND_SERVICE"]}},"nodeSelector":{"kubernetes.io/os":"linux"},"tolerations":[{"key":"k","operator":"Equal","value":"v","effect":"NoExecute","tolerationSeconds":30},{"operator":"Exists"}],"imagePullSecrets":[{"name":"reg"}],"automountServiceAccountToken":false}`},
	{name: "custom-image empty pod fields", plugin: v1alpha1.PluginCustomImage, fast: true,
		config: `{"securityContext":{"capabilities":{"add":[]},"seccompProfile":{}},"nodeSelector":{},"tolerations":[],"imagePullSecrets":[]}`},
	{name: "custom-image empty capabilities", plugin: v1alpha1.PluginCustomImage, fast: true, config: `{"securityContext":{"capabilities":{}}}`},
	{name: "custom-image privileged unknown to the typed form", plugin: v1alpha1.PluginCustomImage, config: `{"securityContext":{"procMount":"Unmasked"}}`},
	{name: "custom-image bool not a bool", plugin: v1alpha1.PluginCustomImage, config: `{"automountServiceAccountToken":"false"}`},
	{name: "custom-image null bool", plugin: v1alpha1.PluginCustomImage, config: `{"securityContext":{"runAsNonRoot":null}}`},
	{name: "custom-image uid not int64", plugin: v1alpha1.PluginCustomImage, config: `{"securityContext":{"runAsUser":1.5}}`},
	{name: "custom-image toleration seconds null", plugin: v1alpha1.PluginCustomImage, config: `{"tolerations":[{"tolerationSeconds":null}]}`},
	{name: "custom-image null localhost profile", plugin: v1alpha1.PluginCustomImage, config: `{"securityContext":{"seccompProfile":{"type":"Localhost","localhostProfile":null}}}`},
	{name: "transformation full", plugin: v1alpha1.PluginTransformation, fast: true,
		config: `{"resources":[{"group":"apps","version":"v1","resource":"deployments"},{"version":"v1","resource":"nodes"}],"namespaces":["a","B_"],"names":["x","Y"],
		"labelSelector":{"matchLabels":{"a":"b"},"matchExpressions":[{"key":"k","operator":"In","values":["v"]},{"key":"","operator":"Bad"}]},
		"operations":[{"jsonPatch":[{"op":"add","path":"/a","value":null},{"op":"test","path":"/b"},{"op":"move","from":"/a","path":"/c"},{"op":"remove","path":"/d"}]},{"mergePatch":{"a":null}}]}`},
	{name: "transformation scopes", plugin: v1alpha1.PluginTransformation, fast: true,
		config: `{"resources":[{"group":"rbac.authorization.k8s.io","version":"v1","resource":"roles","scope":"Namespaced"},{"group":"example.com","version":"v1","resource":"widgets","scope":"Cluster"},{"version":"v1","resource":"nodes","scope":"Namespaced"}],"namespaces":["a"],"operations":[{"mergePatch":{}}]}`},
	{name: "transformation scope not a string", plugin: v1alpha1.PluginTransformation, config: `{"resources":[{"version":"v1","resource":"pods","scope":1}],"operations":[]}`},
	{name: "transformation scope null", plugin: v1alpha1.PluginTransformation, config: `{"resources":[{"version":"v1","resource":"pods","scope":null}],"operations":[]}`},
	{name: "transformation patch DecodePatch refuses", plugin: v1alpha1.PluginTransformation, config: `{"resources":[],"operations":[{"jsonPatch":[{"op":"add","path":"/a"}]}]}`},
	{name: "transformation unknown op", plugin: v1alpha1.PluginTransformation, config: `{"resources":[],"operations":[{"jsonPatch":[{"op":"jump","path":"/a"}]}]}`},
	{name: "transformation patch not a list", plugin: v1alpha1.PluginTransformation, config: `{"resources":[],"operations":[{"jsonPatch":{"op":"add"}}]}`},
	{name: "transformation null patch", plugin: v1alpha1.PluginTransformation, config: `{"resources":[],"operations":[{"jsonPatch":null}]}`},
	{name: "transformation null merge patch", plugin: v1alpha1.PluginTransformation, config: `{"resources":[],"operations":[{"mergePatch":null}]}`},
	{name: "transformation from not a string", plugin: v1alpha1.PluginTransformation, config: `{"resources":[],"operations":[{"jsonPatch":[{"op":"copy","from":1,"path":"/a"}]}]}`},
	{name: "transformation selector values wrong", plugin: v1alpha1.PluginTransformation, config: `{"resources":[],"operations":[],"labelSelector":{"matchExpressions":[{"key":"k","operator":"In","values":"v"}]}}`},
	{name: "run-synchronization full", plugin: v1alpha1.PluginRunSync, fast: true,
		config: `{"template":{"metadata":{"labels":{"a/b/c":"x"},"annotations":{}},"spec":{"restartPolicy":"Never","plugin":"kubernetes-to-kubernetes","config":{"sourceName":"a"}}}}`},
	{name: "run-synchronization no template", plugin: v1alpha1.PluginRunSync, fast: true, config: `{}`},
	{name: "run-synchronization null config", plugin: v1alpha1.PluginRunSync, config: `{"template":{"spec":{"plugin":"x","config":null}}}`},
	{name: "run-synchronization label not a string", plugin: v1alpha1.PluginRunSync, config: `{"template":{"metadata":{"labels":{"a":1}},"spec":{"plugin":"x","config":{}}}}`},
}

func TestTypedReaders(t *testing.T) {
	a := newTestAdmitter(t)
	for _, tt := range typedCases {
		t.Run(tt.name, func(t *testing.T) {
			tk := task(tt.plugin, "{}")
			tk.Spec.Config.Raw = []byte(tt.config) // as written: YAML would merge repeated keys
			if fast := checkTypedReaders(t, a, tk); fast != tt.fast {
				t.Errorf("read from the map = %v, want %v", fast, tt.fast)
			}
		})
	}
	// Every seed sample and schema test case, as sent and as defaulted.
	tasks := []*v1alpha1.Task{}
	for _, tk := range sampleTasks(t) {
		tasks = append(tasks, tk)
	}
	files, _ := filepath.Glob("../schemas/testdata/*/*/*.yaml")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tk := &v1alpha1.Task{}
		if err := yaml.Unmarshal(data, tk); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		tasks = append(tasks, tk)
	}
	for _, tk := range tasks {
		checkTypedReaders(t, a, tk.DeepCopy())
		defaulted := tk.DeepCopy()
		if errs := a.Default(defaulted); len(errs) == 0 {
			checkTypedReaders(t, a, defaulted)
		}
	}
}

// FuzzTypedReaders holds the map readers to json.Unmarshal, and the plugins'
// checks to what they say when the config is decoded with json.Unmarshal.
func FuzzTypedReaders(f *testing.F) {
	for _, tt := range typedCases {
		f.Add(string(tt.plugin), []byte(tt.config))
	}
	for _, tk := range sampleTasks(f) {
		f.Add(string(tk.Spec.Plugin), tk.Spec.Config.Raw)
	}
	a := newTestAdmitter(f)
	f.Fuzz(func(t *testing.T, plugin string, config []byte) {
		tk := &v1alpha1.Task{Spec: v1alpha1.TaskSpec{Plugin: v1alpha1.Plugin(plugin), Config: runtime.RawExtension{Raw: config}}}
		tk.Name, tk.Namespace = "fuzz", "default"
		checkTypedReaders(t, a, tk)
	})
}

// checkTypedReaders compares, for one Task, what its plugin's map reader
// gives with json.Unmarshal of the raw config, and the plugin's Validate and
// Access with the map reader and without it. It reports whether the reader
// read the config.
func checkTypedReaders(t *testing.T, a *Admitter, tk *v1alpha1.Task) bool {
	t.Helper()
	c, errs := a.load(tk)
	if len(errs) > 0 {
		return false
	}
	var fast bool
	switch tk.Spec.Plugin {
	case v1alpha1.PluginCustomImage:
		got, ok := customImageFromMap(c)
		fast = ok
		compareTyped(t, c, ok, got, nil)
	case v1alpha1.PluginTransformation:
		got, _, ok := transformationFromMap(c)
		fast = ok
		compareTyped(t, c, ok, got, func(want *v1alpha1.TransformationConfig) { want.Operations = nil })
	case v1alpha1.PluginRunSync:
		got, ok := runSyncFromMap(c)
		fast = ok
		compareTyped(t, c, ok, got, func(want *v1alpha1.RunSynchronizationConfig) { want.Template.Spec.Config = nil })
	}
	slow := *c
	slow.unique = false // the readers then leave everything to json.Unmarshal
	gotErrs, gotWarn := c.plugin.Validate(a, tk, c)
	wantErrs, wantWarn := slow.plugin.Validate(a, tk, &slow)
	if !reflect.DeepEqual(gotErrs, wantErrs) || !reflect.DeepEqual(gotWarn, wantWarn) {
		t.Fatalf("%s %s: Validate = %v %q, with json.Unmarshal %v %q", tk.Spec.Plugin, tk.Spec.Config.Raw, gotErrs, gotWarn, wantErrs, wantWarn)
	}
	if got, want := c.plugin.Access(a, tk, c), slow.plugin.Access(a, tk, &slow); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s %s: Access = %v, with json.Unmarshal %v", tk.Spec.Plugin, tk.Spec.Config.Raw, got, want)
	}
	return fast
}

// compareTyped checks a map reader's result against json.Unmarshal; skip
// clears in json.Unmarshal's result what the reader does not read.
func compareTyped[T any](t *testing.T, c *config, ok bool, got *T, skip func(*T)) {
	t.Helper()
	if !ok {
		return
	}
	want := new(T)
	if err := json.Unmarshal(c.raw, want); err != nil {
		t.Fatalf("%s: read from the map, but json.Unmarshal fails: %v", c.raw, err)
	}
	if skip != nil {
		skip(want)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: read from the map as\n%#v\njson.Unmarshal gives\n%#v", c.raw, got, want)
	}
}
