package admission_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

// namespace creates a namespace for one test, with the ServiceAccount
// "default" that kube-controller-manager (which envtest does not run)
// creates in every namespace.
func namespace(t *testing.T, name string) string {
	t.Helper()
	bareNamespace(t, name, nil)
	if err := testutil.EnsureDefaultServiceAccount(context.Background(), k8s, name); err != nil {
		t.Fatal(err)
	}
	return name
}

// bareNamespace creates a namespace with labels and no ServiceAccount, as a
// namespace is before kube-controller-manager got to it.
func bareNamespace(t *testing.T, name string, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := k8s.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

// taskYAML is a Task manifest with the config indented under spec.config.
func taskYAML(name, ns string, plugin v1alpha1.Plugin, config string) string {
	var b strings.Builder
	b.WriteString("apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nmetadata:\n  name: " + name + "\n  namespace: " + ns + "\nspec:\n  plugin: " + string(plugin) + "\n  config:\n")
	for _, line := range strings.Split(strings.TrimRight(config, "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}

// runsRule lets a user create and read TaskRuns, as the chart's aggregated
// edit role does.
var runsRule = rule("automation.astronetes.io", "taskruns", "get", "list", "watch", "create", "delete")

// readTasksRule lets a user read Tasks, as the chart's aggregated view role does.
var readTasksRule = rule("automation.astronetes.io", "tasks", "get", "list", "watch")

// newTask is a Task with a JSON config.
func newTask(ns, name string, plugin v1alpha1.Plugin, config string) *v1alpha1.Task {
	task := &v1alpha1.Task{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: v1alpha1.TaskSpec{PluginSpec: v1alpha1.PluginSpec{Plugin: plugin}}}
	task.Spec.Config.Raw = []byte(config)
	return task
}

// runOf is a TaskRun of the named Task.
func runOf(ns, name, task string) *v1alpha1.TaskRun {
	return &v1alpha1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.TaskRunSpec{TaskRef: &v1alpha1.TaskRef{Name: task}}}
}

// inlineRun is a one-off TaskRun of a JSON config (spec.taskSpec).
func inlineRun(ns, name string, plugin v1alpha1.Plugin, config string) *v1alpha1.TaskRun {
	run := &v1alpha1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.TaskRunSpec{TaskSpec: &v1alpha1.PluginSpec{Plugin: plugin}}}
	run.Spec.TaskSpec.Config.Raw = []byte(config)
	return run
}

// runYAML is a TaskRun manifest of the named Task.
func runYAML(name, ns, task string) string {
	return "apiVersion: automation.astronetes.io/v1alpha1\nkind: TaskRun\nmetadata:\n  name: " + name + "\n  namespace: " + ns +
		"\nspec:\n  taskRef:\n    name: " + task + "\n"
}

// getRun reads a TaskRun as the admin.
func getRun(t *testing.T, ns, name string) *v1alpha1.TaskRun {
	t.Helper()
	var run v1alpha1.TaskRun
	must(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &run))
	return &run
}

// absentRun fails the test when the TaskRun was stored.
func absentRun(t *testing.T, ns, name string) {
	t.Helper()
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &v1alpha1.TaskRun{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("TaskRun %s/%s: %v, want not stored", ns, name, err)
	}
}

// refused fails the test unless err is a refusal containing want.
func refused(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want a refusal containing %q", err, want)
	}
}
