package webhook

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/schemas"
)

func newTestAdmitter(t testing.TB) *Admitter {
	t.Helper()
	set, err := schemas.Load("")
	if err != nil {
		t.Fatal(err)
	}
	return NewAdmitter(set)
}

func testScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	return s
}

// sampleTasks reads the seed samples in config/samples, keyed by file name.
func sampleTasks(t testing.TB) map[string]*v1alpha1.Task {
	t.Helper()
	files, err := filepath.Glob("../config/samples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	out := map[string]*v1alpha1.Task{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		task := &v1alpha1.Task{}
		if err := yaml.UnmarshalStrict(data, task); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if task.Namespace == "" {
			task.Namespace = "default"
		}
		out[filepath.Base(f)] = task
	}
	return out
}

// task builds a Task with a YAML config, for readable test tables.
func task(plugin v1alpha1.Plugin, configYAML string) *v1alpha1.Task {
	raw, err := yaml.YAMLToJSON([]byte(configYAML))
	if err != nil {
		panic(err)
	}
	t := &v1alpha1.Task{Spec: v1alpha1.TaskSpec{PluginSpec: v1alpha1.PluginSpec{Plugin: plugin, Config: runtime.RawExtension{Raw: raw}}}}
	t.Name, t.Namespace = "t1", "shop"
	return t
}

// inline builds a one-off TaskRun with a YAML config (spec.taskSpec), named
// and placed as task names and places a Task.
func inline(plugin v1alpha1.Plugin, configYAML string) *v1alpha1.TaskRun {
	tk := task(plugin, configYAML)
	return &v1alpha1.TaskRun{ObjectMeta: tk.ObjectMeta, Spec: v1alpha1.TaskRunSpec{TaskSpec: &tk.Spec.PluginSpec}}
}
