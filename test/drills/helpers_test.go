package drills_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/test/testutil"
)

// newNamespace creates a namespace of the test's own, with the "default"
// ServiceAccount kube-controller-manager would create (envtest has none, and
// the webhook's preflight dry-runs Pods that ServiceAccount admission refuses
// without it). envtest has no namespace controller, so the test's TaskRuns
// and Tasks are deleted when it ends: otherwise a later drill's manager,
// which watches every namespace, would first work through them.
func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := cp.Client.Create(t.Context(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	if err := cp.EnsureDefaultServiceAccount(t.Context(), ns.Name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, kind := range []client.Object{&v1alpha1.TaskRun{}, &v1alpha1.Task{}} {
			if err := cp.Client.DeleteAllOf(ctx, kind, client.InNamespace(ns.Name)); err != nil {
				t.Errorf("delete the %Ts of %s: %v", kind, ns.Name, err)
			}
		}
	})
	return ns.Name
}

// The plugin specs the drills run.
var (
	customImageSpec = v1alpha1.PluginSpec{Plugin: v1alpha1.PluginCustomImage,
		Config: runtime.RawExtension{Raw: []byte(`{"image":"busybox:1.36","command":["true"]}`)}}
	runSyncSpec = v1alpha1.PluginSpec{Plugin: v1alpha1.PluginRunSync, Config: runtime.RawExtension{Raw: []byte(
		`{"template":{"spec":{"plugin":"kubernetes-to-kubernetes","config":{"sourceName":"dr","destinationName":"main"}}}}`)}}
	// bindSpec binds the ClusterRole view while it runs.
	bindSpec = v1alpha1.PluginSpec{Plugin: v1alpha1.PluginCustomImage,
		Config: runtime.RawExtension{Raw: []byte(`{"image":"busybox:1.36","command":["true"],"clusterRole":"view"}`)}}
)

// customImageTask is a custom-image Task (a runbook) named name in ns.
func customImageTask(ns, name string) *v1alpha1.Task {
	return newTask(ns, name, customImageSpec)
}

func newTask(ns, name string, spec v1alpha1.PluginSpec) *v1alpha1.Task {
	return &v1alpha1.Task{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.TaskSpec{PluginSpec: *spec.DeepCopy()}}
}

// createRunbook creates, through the webhooks, a Task of spec named name in
// ns that keeps every one of up to keep runs (its history limits), so that
// a drill can count all its runs when they are done.
func createRunbook(t *testing.T, ns, name string, spec v1alpha1.PluginSpec, keep int32) *v1alpha1.Task {
	t.Helper()
	task := newTask(ns, name, spec)
	task.Spec.SuccessfulRunsHistoryLimit, task.Spec.FailedRunsHistoryLimit = &keep, &keep
	if err := admin.Client.Create(t.Context(), task); err != nil {
		t.Fatalf("create task %s: %v", name, err)
	}
	return task
}

// taskgateBinary builds ./cmd/taskgate once per test binary.
func taskgateBinary(t *testing.T) string { return testutil.TaskgateBinary(t, root, "") }

// startManager runs `taskgate manager` with only the controller, as a
// subprocess, as the manager user with the default --act-as=requester; its
// output is logged if the test fails.
func startManager(t *testing.T, label string) *testutil.Process {
	t.Helper()
	p, err := testutil.StartProcess(taskgateBinary(t), manager.Kubeconfig, nil, append(kit.ManagerArgs, "--log-format=console")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !p.Exited() {
			p.Stop(15 * time.Second)
		}
		if t.Failed() || os.Getenv("TASKGATE_DRILL_DEBUG") != "" {
			t.Logf("output of manager %s:\n%s", label, tail(p.Output(), 8000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("[...%d bytes...]\n%s", len(s)-n, s[len(s)-n:])
}
