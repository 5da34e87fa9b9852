package controller_test

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/children"
	"github.com/astronetes/taskgate/controller"
)

// legacyTask creates a Task as a taskgate before TaskRuns left it: its
// requester in the spec, the finalizer, and status, the status of its own
// run, on the Task itself. It returns the Task as stored.
func legacyTask(t *testing.T, ns, name string, status v1alpha1.TaskRunStatus) *v1alpha1.Task {
	t.Helper()
	cfg := customImage("busybox:1.36", "sleep", "3600")
	cfg.ClusterRole = "view"
	task := makeTask(t, ns, name, v1alpha1.PluginCustomImage, cfg)
	task.Spec.Requester = adminRequester.DeepCopy()
	task.Finalizers = []string{v1alpha1.Finalizer}
	mustCreate(t, task)
	task.Status.TaskRunStatus = status
	if err := k8sClient.Status().Update(t.Context(), task); err != nil {
		t.Fatalf("write the legacy status: %v", err)
	}
	return task
}

// runningStatus is the status of a custom-image run of name in ns, started
// an hour ago, whose Pod runs.
func runningStatus(ns, name string) v1alpha1.TaskRunStatus {
	started := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
	msg := "pod " + v1alpha1.PodName(name) + " is running"
	return v1alpha1.TaskRunStatus{
		Phase: v1alpha1.TaskRunning, Message: msg, StartTime: &started,
		Conditions: []metav1.Condition{{Type: v1alpha1.ConditionSucceeded, Status: metav1.ConditionUnknown, Reason: controller.ReasonRunning,
			Message: msg, LastTransitionTime: started}},
		CustomImage: &v1alpha1.CustomImageStatus{PodName: v1alpha1.PodName(name), ServiceAccountName: v1alpha1.ChildName(name, "task"),
			ClusterRoleBindingName: v1alpha1.ClusterRoleBindingName(ns, name)},
	}
}

// succeededStatus is the status of a run that succeeded at.
func succeededStatus(at metav1.Time) v1alpha1.TaskRunStatus {
	return v1alpha1.TaskRunStatus{Phase: v1alpha1.TaskSucceeded, Message: "done", StartTime: &at, CompletionTime: &at,
		Conditions: []metav1.Condition{{Type: v1alpha1.ConditionSucceeded, Status: metav1.ConditionTrue,
			Reason: controller.ReasonCompleted, Message: "done", LastTransitionTime: at}}}
}

// legacyBinding creates the ClusterRoleBinding an earlier taskgate made for
// Task name's clusterRole, labelled with the Task UID uid.
func legacyBinding(t *testing.T, ns, name string, uid types.UID) *rbacv1.ClusterRoleBinding {
	t.Helper()
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.ClusterRoleBindingName(ns, name), Labels: map[string]string{
			v1alpha1.TaskLabel: name, children.TaskNamespaceLabel: ns, v1alpha1.TaskUIDLabel: string(uid)}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: v1alpha1.ChildName(name, "task")}},
	}
	mustCreate(t, crb)
	return crb
}

// A Task created by a taskgate before TaskRuns, with its finalizer and the
// binding of its own run (labelled with its UID): the Task controller
// removes that binding and the finalizer, runs nothing, and keeps the
// status the Task holds. A binding under the Task's binding name that
// carries another Task's UID is not its own, and is left alone (that other
// Task, still running, keeps the sweeper off it too).
func TestLegacyTaskReleased(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	holder := legacyTask(t, ns, "holder", runningStatus(ns, "holder"))
	tests := []struct {
		name        string
		bindingUID  func(task *v1alpha1.Task) types.UID
		wantRemoved bool
	}{
		{name: "own", bindingUID: func(task *v1alpha1.Task) types.UID { return task.UID }, wantRemoved: true},
		{name: "another-uid", bindingUID: func(*v1alpha1.Task) types.UID { return holder.UID }},
	}
	tasks := map[string]*v1alpha1.Task{}
	for _, tt := range tests {
		tasks[tt.name] = legacyTask(t, ns, tt.name, runningStatus(ns, tt.name))
		legacyBinding(t, ns, tt.name, tt.bindingUID(tasks[tt.name]))
	}
	startManager(t, ns)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tasks[tt.name]
			after := waitForTaskStatus(t, ns, tt.name, "finalizer removed", func(task *v1alpha1.Task) error {
				if slices.Contains(task.Finalizers, v1alpha1.Finalizer) {
					return errNotYet("finalizers %v", task.Finalizers)
				}
				return nil
			})
			key := keyOf("", v1alpha1.ClusterRoleBindingName(ns, tt.name))
			if tt.wantRemoved {
				waitForAbsent(t, key, &rbacv1.ClusterRoleBinding{})
			} else if err := get(t, key, &rbacv1.ClusterRoleBinding{}); err != nil {
				t.Errorf("binding %s carrying another Task's UID: %v, want it left alone", key.Name, err)
			}
			if !equality.Semantic.DeepEqual(after.Status, before.Status) {
				t.Errorf("status = %+v, want the legacy status kept: %+v", after.Status, before.Status)
			}
			wantAbsent(t, keyOf(ns, v1alpha1.PodName(tt.name)), &corev1.Pod{})
			wantAbsent(t, keyOf(ns, v1alpha1.ChildName(tt.name, "task")), &corev1.ServiceAccount{}) // the old taskgate's name for it
		})
	}
	if runs := runNames(t, ns); len(runs) != 0 {
		t.Errorf("TaskRuns %v, want none: a legacy Task is never run again", runs)
	}
}
