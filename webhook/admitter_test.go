package webhook

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestDefaultsGolden defaults each seed sample and compares it with its
// golden file in testdata/golden (go test ./webhook -update rewrites them).
func TestDefaultsGolden(t *testing.T) {
	a := newTestAdmitter(t)
	for name, tk := range sampleTasks(t) {
		t.Run(name, func(t *testing.T) {
			if errs := a.Default(tk); len(errs) > 0 {
				t.Fatalf("default: %v", errs)
			}
			if errs, _ := a.Validate(tk); len(errs) > 0 {
				t.Fatalf("defaulted sample invalid: %v", errs)
			}
			got, err := yaml.Marshal(tk.Spec)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "golden", name)
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./webhook -run TestDefaultsGolden -update)", err)
			}
			if string(got) != string(want) {
				t.Errorf("defaulted spec differs from %s:\n--- got\n%s--- want\n%s", golden, got, want)
			}
			before := string(tk.Spec.Config.Raw)
			if errs := a.Default(tk); len(errs) > 0 || string(tk.Spec.Config.Raw) != before {
				t.Errorf("defaulting twice changed the config: %s -> %s", before, tk.Spec.Config.Raw)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	long := strings.Repeat("a", 80)
	tests := []struct {
		name string
		task *v1alpha1.Task
		want map[string]string // key in spec.config -> JSON value
		none []string          // keys that must stay unset
	}{
		{name: "custom-image namespace; the ServiceAccount is the run's",
			task: task(v1alpha1.PluginCustomImage, "{image: busybox:1.36, command: [echo]}"),
			want: map[string]string{"namespace": `"shop"`, "timeoutSeconds": "3600", "retries": "0"},
			none: []string{"serviceAccountName"}},
		{name: "custom-image keeps user values",
			task: task(v1alpha1.PluginCustomImage, "{image: busybox:1.36, command: [echo], serviceAccountName: runner, timeoutSeconds: 5}"),
			want: map[string]string{"serviceAccountName": `"runner"`, "timeoutSeconds": "5"}},
		{name: "transformation namespaces",
			task: task(v1alpha1.PluginTransformation, "{resources: [{group: apps, version: v1, resource: deployments}], operations: [{mergePatch: {a: 1}}]}"),
			want: map[string]string{"namespaces": `["shop"]`}},
		{name: "cluster-scoped transformation takes no namespaces",
			task: task(v1alpha1.PluginTransformation, "{resources: [{version: v1, resource: namespaces}], operations: [{mergePatch: {a: 1}}]}"),
			none: []string{"namespaces"}},
	}

	a := newTestAdmitter(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if errs := a.Default(tt.task); len(errs) > 0 {
				t.Fatal(errs)
			}
			var cfg map[string]runtime.RawExtension
			if err := yaml.Unmarshal(tt.task.Spec.Config.Raw, &cfg); err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if got := string(cfg[k].Raw); got != v {
					t.Errorf("%s = %s, want %s", k, got, v)
				}
			}
			for _, k := range tt.none {
				if _, ok := cfg[k]; ok {
					t.Errorf("%s set to %s, want unset", k, cfg[k].Raw)
				}
			}
		})
	}
	if n := len(v1alpha1.ServiceAccountName(long, "0f8c2a4e-1b2d-4c3e-9f00-123456789abc")); n > 63 {
		t.Errorf("service account name of %d characters", n)
	}
}

func TestValidateTaskLevel(t *testing.T) {
	big := "{image: busybox:1.36, command: [" + strings.Repeat(`"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",`, 3000) + "x]}"
	deep := strings.Repeat("{a: ", 40) + "1" + strings.Repeat("}", 40)
	tests := []struct {
		name string
		task *v1alpha1.Task
		want string
	}{
		{name: "unknown plugin", task: task("custom-imag", "{}"), want: `spec.plugin: Unsupported value: "custom-imag": did you mean "custom-image"?`},
		{name: "no plugin", task: task("", "{}"), want: "spec.plugin: Required value"},
		{name: "no config", task: &v1alpha1.Task{Spec: v1alpha1.TaskSpec{PluginSpec: v1alpha1.PluginSpec{Plugin: v1alpha1.PluginCustomImage}}}, want: "spec.config: Required value"},
		{name: "config not an object", task: task(v1alpha1.PluginCustomImage, "[1, 2]"), want: "spec.config: Invalid value"},
		{name: "oversized", task: task(v1alpha1.PluginCustomImage, big), want: "spec.config: Too long"},
		{name: "too deep", task: task(v1alpha1.PluginCustomImage, deep), want: "nested more than 32 levels deep"},
		{name: "clusterRole not allowed", task: task(v1alpha1.PluginCustomImage, "{image: a:1, command: [x], clusterRole: edit}"), want: `spec.config.clusterRole: Unsupported value: "edit"`},
	}
	a := newTestAdmitter(t)
	a.AllowedClusterRoles = []string{"view"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs, _ := a.Validate(tt.task)
			if !strings.Contains(errs.ToAggregate().Error(), tt.want) {
				t.Errorf("got %v, want %q", errs, tt.want)
			}
			if errs := a.Default(tt.task.DeepCopy()); tt.name != "clusterRole not allowed" && len(errs) == 0 {
				t.Errorf("Default accepted a Task it cannot default")
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		image, role string
		want        string
	}{
		{image: "busybox", want: "has no tag"},
		{image: "registry:5000/busybox", want: "has no tag"},
		{image: "busybox:latest", want: ":latest"},
		{image: "busybox:1.36", role: "cluster-admin", want: "cluster-admin"},
		{image: "busybox@sha256:" + strings.Repeat("ab", 32), want: ""},
		{image: "registry:5000/busybox:1.36", want: ""},
	}
	a := newTestAdmitter(t)
	for _, tt := range tests {
		t.Run(tt.image+tt.role, func(t *testing.T) {
			cfg := "{image: " + tt.image + ", command: [x]"
			if tt.role != "" {
				cfg += ", clusterRole: " + tt.role
			}
			errs, warnings := a.Validate(task(v1alpha1.PluginCustomImage, cfg+"}"))
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			got := strings.Join(warnings, "\n")
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("warnings %q, want one containing %q", warnings, tt.want)
			}
		})
	}
}

// fakeAuthz allows what is in allowed, keyed "verb resource namespace name".
type fakeAuthz struct{ allowed map[string]bool }

func (f fakeAuthz) Allowed(_ context.Context, _ authenticationv1.UserInfo, a authorizationv1.ResourceAttributes) (bool, string, error) {
	return f.allowed[a.Verb+" "+a.Resource+" "+a.Namespace+" "+a.Name], "", nil
}

func TestAccessChecks(t *testing.T) {
	tests := []struct {
		name    string
		task    *v1alpha1.Task
		allowed []string
		denied  []string // fields that must be refused
	}{
		{name: "tasks-only user may not create the Pod", task: task(v1alpha1.PluginCustomImage, "{image: a:1, command: [x]}"),
			denied: []string{"spec.config"}},
		{name: "create pods is enough without clusterRole", task: task(v1alpha1.PluginCustomImage, "{image: a:1, command: [x]}"),
			allowed: []string{"create pods shop "}},
		{name: "bind alone refused: a binding needs create clusterrolebindings", task: task(v1alpha1.PluginCustomImage, "{image: a:1, command: [x], clusterRole: cluster-admin}"),
			allowed: []string{"create pods shop ", "bind clusterroles  cluster-admin"}, denied: []string{"spec.config.clusterRole"}},
		{name: "create clusterrolebindings alone refused: needs bind", task: task(v1alpha1.PluginCustomImage, "{image: a:1, command: [x], clusterRole: cluster-admin}"),
			allowed: []string{"create pods shop ", "create clusterrolebindings  "}, denied: []string{"spec.config.clusterRole"}},
		{name: "bind and create clusterrolebindings allowed", task: task(v1alpha1.PluginCustomImage, "{image: a:1, command: [x], clusterRole: cluster-admin}"),
			allowed: []string{"create pods shop ", "bind clusterroles  cluster-admin", "create clusterrolebindings  "}},
		{name: "patch in one namespace of two", task: task(v1alpha1.PluginTransformation,
			"{resources: [{group: apps, version: v1, resource: deployments}], namespaces: [shop, prod], operations: [{mergePatch: {a: 1}}]}"),
			allowed: []string{"list deployments shop ", "patch deployments shop ", "list deployments prod "},
			denied:  []string{"spec.config.resources[0]"}},
		{name: "create synchronizations", task: task(v1alpha1.PluginRunSync,
			"{template: {spec: {plugin: kubernetes-to-kubernetes, config: {sourceName: a, destinationName: b}}}}"),
			denied: []string{"spec.config.template"}},
	}
	a := newTestAdmitter(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if errs := a.Default(tt.task); len(errs) > 0 {
				t.Fatal(errs)
			}
			allowed := map[string]bool{}
			for _, k := range tt.allowed {
				allowed[k] = true
			}
			errs, err := authorize(context.Background(), fakeAuthz{allowed}, authenticationv1.UserInfo{Username: "alice"}, a.AccessChecks(tt.task), "")
			if err != nil {
				t.Fatal(err)
			}
			if len(errs) != len(tt.denied) {
				t.Fatalf("got %d refusals %v, want %v", len(errs), errs, tt.denied)
			}
			for i, f := range tt.denied {
				if errs[i].Field != f || !strings.Contains(errs[i].Detail, `user "alice" may not`) {
					t.Errorf("refusal %d = %v, want on field %s naming the user", i, errs[i], f)
				}
			}
		})
	}
}

// TestValidateUpdate: a Task is editable; an edit is checked again, an
// unchanged spec (even re-encoded) is not.
func TestValidateUpdate(t *testing.T) {
	v := &Validator{Admitter: newTestAdmitter(t)}
	old := task(v1alpha1.PluginCustomImage, "{image: a:1, command: [x]}")
	same := old.DeepCopy()
	same.Spec.Config.Raw = []byte(`{"command":["x"],  "image":"a:1"}`) // same JSON, other bytes
	same.Labels = map[string]string{"new": "label"}
	if _, err := v.ValidateUpdate(context.Background(), old, same); err != nil {
		t.Errorf("metadata-only update refused: %v", err)
	}
	changed := old.DeepCopy()
	changed.Spec.Config.Raw = []byte(`{"command":["y"],"image":"a:1"}`)
	if _, err := v.ValidateUpdate(context.Background(), old, changed); err != nil {
		t.Errorf("edit refused: %v", err)
	}
	wrong := old.DeepCopy()
	wrong.Spec.Config.Raw = []byte(`{"comand":["y"],"image":"a:1"}`)
	_, err := v.ValidateUpdate(context.Background(), old, wrong)
	if err == nil || !strings.Contains(err.Error(), "spec.config.comand") {
		t.Errorf("wrong edit: got %v, want the schema's refusal of spec.config.comand", err)
	}
}
