package controller_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/testutil"
)

// Two runs of a Task admitted together (no webhook here to refuse the
// second): with concurrencyPolicy Forbid exactly one starts, the one
// created first, and the other fails ConcurrencyForbidden naming it,
// having created nothing; once the first finished, a new run starts. With
// Allow, or no policy, both run.
func TestConcurrencyPolicyInTheController(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		policy v1alpha1.ConcurrencyPolicy
		forbid bool
	}{
		{name: "forbid", policy: v1alpha1.ConcurrencyForbid, forbid: true},
		{name: "allow", policy: v1alpha1.ConcurrencyAllow},
		{name: "unset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			task := makeTask(t, ns, "restore", v1alpha1.PluginCustomImage, customImage("busybox:1.36", "sleep", "3600"))
			task.Spec.ConcurrencyPolicy = tt.policy
			mustCreate(t, task)
			// Both stored before any controller looks: admitted together.
			mustCreate(t, runOf(task, "run-a"))
			mustCreate(t, runOf(task, "run-b"))
			startManager(t, ns)

			first := waitForPod(t, ns, "run-a")
			if !tt.forbid {
				waitForPod(t, ns, "run-b")
				waitForRun(t, ns, "run-a", v1alpha1.TaskPending)
				waitForRun(t, ns, "run-b", v1alpha1.TaskPending)
				return
			}
			refused := waitForRun(t, ns, "run-b", v1alpha1.TaskFailed)
			c := succeededCondition(t, refused)
			if c.Reason != controller.ReasonConcurrencyForbidden || !strings.Contains(c.Message, "TaskRun run-a of Task restore") {
				t.Errorf("run-b: condition %s: %s, want %s naming run-a", c.Reason, c.Message, controller.ReasonConcurrencyForbidden)
			}
			if refused.Status.StartTime != nil || refused.Status.CustomImage != nil {
				t.Errorf("run-b status %+v: want it never started", refused.Status)
			}
			wantAbsent(t, keyOf(ns, v1alpha1.PodName("run-b")), &corev1.Pod{})
			wantAbsent(t, keyOf(ns, runSA(t, ns, "run-b")), &corev1.ServiceAccount{})
			waitForRun(t, ns, "run-a", v1alpha1.TaskPending)

			setPodStatus(t, first, corev1.PodSucceeded, 0, "Completed")
			waitForRun(t, ns, "run-a", v1alpha1.TaskSucceeded)
			mustCreate(t, runOf(task, "run-c"))
			waitForPod(t, ns, "run-c")
			waitForRun(t, ns, "run-c", v1alpha1.TaskPending)
		})
	}
}

// A run carries out the snapshot admission recorded in it, not the Task as
// it is now: a Task edited after a run was admitted and before the
// controller started it runs the old image and command in that run, the new
// ones in a run admitted after the edit.
func TestRunsTheSnapshot(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	task := makeTask(t, ns, "restore", v1alpha1.PluginCustomImage, customImage("registry.example/restore:1", "restore", "--from", "dr"))
	mustCreate(t, task)
	mustCreate(t, runOf(task, "before-edit"))
	edited := task.DeepCopy()
	edited.Spec.PluginSpec = *pluginSpec(t, v1alpha1.PluginCustomImage, customImage("registry.example/restore:2", "restore", "--from", "backup"))
	if err := k8sClient.Update(t.Context(), edited); err != nil {
		t.Fatalf("edit the Task: %v", err)
	}
	mustCreate(t, runOf(edited, "after-edit"))
	startManager(t, ns)

	tests := []struct {
		run, image, command string
	}{
		{run: "before-edit", image: "registry.example/restore:1", command: "restore --from dr"},
		{run: "after-edit", image: "registry.example/restore:2", command: "restore --from backup"},
	}
	for _, tt := range tests {
		t.Run(tt.run, func(t *testing.T) {
			c := waitForPod(t, ns, tt.run).Spec.Containers[0]
			if c.Image != tt.image || strings.Join(c.Command, " ") != tt.command {
				t.Errorf("pod of %s runs %s %q, want %s %q", tt.run, c.Image, c.Command, tt.image, tt.command)
			}
		})
	}
}

// A TaskRun that names a Task but has no spec.taskSpec (created while the
// webhook was not installed: no requester, label or owner either) fails
// NoSnapshot, whether or not its Task exists, and creates nothing: taskgate
// never reads what to run from the Task at run time. The API server refuses
// a TaskRun that names neither a Task nor a spec.
func TestNoSnapshot(t *testing.T) {
	ns := parallelWithManager(t)
	cfg := customImage("busybox:1.36", "true")
	cfg.ClusterRole = "view"
	task := makeTask(t, ns, "book", v1alpha1.PluginCustomImage, cfg)
	mustCreate(t, task)

	tests := []struct {
		name    string
		taskRef string
	}{
		{name: "task-exists", taskRef: "book"},
		{name: "task-missing", taskRef: "no-such-task"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mustCreate(t, &v1alpha1.TaskRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tt.name},
				Spec: v1alpha1.TaskRunSpec{TaskRef: &v1alpha1.TaskRef{Name: tt.taskRef}}})
			failed := waitForRun(t, ns, tt.name, v1alpha1.TaskFailed)
			if c := succeededCondition(t, failed); c.Reason != controller.ReasonNoSnapshot || !strings.Contains(c.Message, "no spec.taskSpec") {
				t.Errorf("condition %s: %s, want %s", c.Reason, c.Message, controller.ReasonNoSnapshot)
			}
			wantEventNote(t, failed, controller.EventFailed, "no spec.taskSpec")
			wantAbsent(t, keyOf(ns, v1alpha1.PodName(tt.name)), &corev1.Pod{})
			wantAbsent(t, keyOf(ns, runSA(t, ns, tt.name)), &corev1.ServiceAccount{})
			wantAbsent(t, keyOf("", v1alpha1.ClusterRoleBindingName(ns, tt.name)), &rbacv1.ClusterRoleBinding{})
			if failed.Status.CustomImage != nil || slices.Contains(failed.Finalizers, v1alpha1.Finalizer) {
				t.Errorf("status.customImage %+v, finalizers %v: want nothing started", failed.Status.CustomImage, failed.Finalizers)
			}
		})
	}
	t.Run("neither", func(t *testing.T) {
		t.Parallel()
		run := &v1alpha1.TaskRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "neither"}, Spec: v1alpha1.TaskRunSpec{Requester: adminRequester}}
		if err := k8sClient.Create(t.Context(), run); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "set spec.taskRef.name") {
			t.Errorf("a TaskRun with neither taskRef nor taskSpec: %v, want Invalid", err)
		}
	})
}

// Two runs of one Task each have their own ServiceAccount and binding of
// the Task's clusterRole: the end of one removes its own binding and never
// the other's, neither by its cleanup nor by the sweeper.
func TestRunsHaveTheirOwnBinding(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManagerWith(t, ns, managerOptions{controller: controller.Options{SweepInterval: 200 * time.Millisecond}})
	cfg := customImage("bitnami/kubectl:1.37", "kubectl", "get", "pods", "-A")
	cfg.ClusterRole = "view"
	task := makeTask(t, ns, "audit", v1alpha1.PluginCustomImage, cfg)
	mustCreate(t, task)
	runs := []string{"run-1", "run-2"}
	pods := map[string]*corev1.Pod{}
	for _, name := range runs {
		mustCreate(t, runOf(task, name))
	}
	for _, name := range runs {
		pods[name] = waitForPod(t, ns, name)
		run := waitForRun(t, ns, name, v1alpha1.TaskPending)
		sa := &corev1.ServiceAccount{}
		mustGet(t, ns, pods[name].Spec.ServiceAccountName, sa)
		isControlledBy(t, sa, run)
		isControlledBy(t, pods[name], run)
		wantBinding(t, run, sa.Name)
	}
	if pods["run-1"].Spec.ServiceAccountName == pods["run-2"].Spec.ServiceAccountName {
		t.Fatalf("both runs' Pods run as %s, want a ServiceAccount each", pods["run-1"].Spec.ServiceAccountName)
	}

	setPodStatus(t, pods["run-1"], corev1.PodSucceeded, 0, "Completed")
	waitForRun(t, ns, "run-1", v1alpha1.TaskSucceeded)
	waitForAbsent(t, keyOf("", v1alpha1.ClusterRoleBindingName(ns, "run-1")), &rbacv1.ClusterRoleBinding{})
	second := waitForRun(t, ns, "run-2", v1alpha1.TaskPending)
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(testutil.PollInterval) {
		wantBinding(t, second, pods["run-2"].Spec.ServiceAccountName) // several sweeps long
	}

	setPodStatus(t, pods["run-2"], corev1.PodSucceeded, 0, "Completed")
	waitForRun(t, ns, "run-2", v1alpha1.TaskSucceeded)
	waitForAbsent(t, keyOf("", v1alpha1.ClusterRoleBindingName(ns, "run-2")), &rbacv1.ClusterRoleBinding{})
}

// wantBinding checks that run's binding exists, binds view to the run's
// ServiceAccount sa alone, and names the run, its UID and its Task.
func wantBinding(t *testing.T, run *v1alpha1.TaskRun, sa string) {
	t.Helper()
	crb := &rbacv1.ClusterRoleBinding{}
	if err := get(t, client.ObjectKey{Name: v1alpha1.ClusterRoleBindingName(run.Namespace, run.Name)}, crb); err != nil {
		t.Fatalf("binding of %s: %v", run.Name, err)
	}
	want := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: run.Namespace, Name: sa}
	l := crb.Labels
	if crb.RoleRef.Name != "view" || len(crb.Subjects) != 1 || crb.Subjects[0] != want || l[v1alpha1.TaskRunUIDLabel] != string(run.UID) ||
		l[v1alpha1.TaskRunLabel] != run.Name || l[v1alpha1.TaskLabel] != run.TaskName() {
		t.Errorf("binding %s: role %s, subjects %+v, labels %v; want view bound to %s, labelled with run %s (%s) of Task %s",
			crb.Name, crb.RoleRef.Name, crb.Subjects, l, sa, run.Name, run.UID, run.TaskName())
	}
}
