package security_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// runRights let a user run the Tasks of a namespace, and nothing more on them.
var runRights = []rbacv1.PolicyRule{
	rule(v1alpha1.GroupVersion.Group, "tasks", "get", "list"),
	rule(v1alpha1.GroupVersion.Group, "taskruns", "get", "list", "create"),
}

// A user who may edit a Task, and run it, but not do what it does (bind
// cluster-admin) cannot run it: the run is refused at admission and nothing
// is created. The Task's author, who may bind it, runs the same Task.
func TestEditorCannotRunWhatTheTaskDoes(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "")
	admin := as(t, "root", adminGroup)
	kubectl := `{"image":"bitnami/kubectl:1.27","command":["kubectl","cluster-info"],"clusterRole":"cluster-admin"}`
	must(t, admin.c.Create(ctx, newTask(ns, "kubectl", v1alpha1.PluginCustomImage, kubectl)))

	grant(t, ns, "ed", taskRights, rule("", "pods", "create"))
	ed := as(t, "ed")
	// Editing a runbook runs nothing and needs no right beyond update tasks.
	must(t, ed.edit(ns, "kubectl", `{"image":"bitnami/kubectl:1.27","command":["kubectl","get","secrets","-A"],"clusterRole":"cluster-admin"}`))
	mustRefuse(t, ed.run(t, ns, "ed-run", "kubectl"), "bind", "cluster-admin")
	absent(t, &v1alpha1.TaskRun{}, client.ObjectKey{Namespace: ns, Name: "ed-run"})
	absent(t, &corev1.Pod{}, client.ObjectKey{Namespace: ns, Name: v1alpha1.PodName("ed-run")})
	absent(t, &rbacv1.ClusterRoleBinding{}, client.ObjectKey{Name: v1alpha1.ClusterRoleBindingName(ns, "ed-run")})

	must(t, admin.run(t, ns, "admin-run", "kubectl"))
	waitBinding(t, ns, "admin-run")
	if r := requesterOf(t, ns, "admin-run"); r == nil || r.Username != "root" {
		t.Fatalf("spec.requester = %+v, want root", r)
	}
}

// A run acts with its creator's rights, never its author's: a runner who
// may not create Pods gets no Pod from the admin's Task (which names a
// ServiceAccount bound to cluster-admin and a Secret); one who may gets the
// Pod, created as themselves.
func TestRunnerGetsOwnRightsNotAuthors(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "")
	must(t, k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: ns}}))
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns}, StringData: map[string]string{"password": "s3cret"}}))
	admin := as(t, "root", adminGroup)
	must(t, admin.c.Create(ctx, newTask(ns, "diag", v1alpha1.PluginCustomImage, `{"image":"busybox:1.36","command":["sh","-c","env"],`+
		`"serviceAccountName":"deployer","env":[{"name":"PW","valueFrom":{"secretKeyRef":{"name":"db","key":"password"}}}]}`)))

	grant(t, ns, "rita", runRights...)
	mustRefuse(t, as(t, "rita").run(t, ns, "rita-run", "diag"), "create pods")
	absent(t, &v1alpha1.TaskRun{}, client.ObjectKey{Namespace: ns, Name: "rita-run"})
	absent(t, &corev1.Pod{}, client.ObjectKey{Namespace: ns, Name: v1alpha1.PodName("rita-run")})

	grant(t, ns, "ron", append(runRights, rule("", "pods", "create"))...)
	must(t, as(t, "ron").run(t, ns, "ron-run", "diag"))
	if r := requesterOf(t, ns, "ron-run"); r == nil || r.Username != "ron" {
		t.Fatalf("spec.requester = %+v, want ron (the runner, not the Task's author)", r)
	}
	waitPod(t, ns, v1alpha1.PodName("ron-run"))
}

// A user cannot run a Task they may not read: get on the Task is checked
// at admission. With it, the same user runs it.
func TestRunNeedsGetOnTask(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "")
	must(t, as(t, "root", adminGroup).c.Create(ctx, newTask(ns, "secret-runbook", v1alpha1.PluginCustomImage, `{"image":"busybox:1.36","command":["true"]}`)))

	grant(t, ns, "gus", rule(v1alpha1.GroupVersion.Group, "taskruns", "create", "get"), rule("", "pods", "create"))
	gus := as(t, "gus")
	mustRefuse(t, gus.run(t, ns, "peek", "secret-runbook"), "get", "tasks")
	absent(t, &v1alpha1.TaskRun{}, client.ObjectKey{Namespace: ns, Name: "peek"})

	grant(t, ns, "gus", rule(v1alpha1.GroupVersion.Group, "tasks", "get"))
	must(t, gus.run(t, ns, "peek", "secret-runbook"))
	waitPod(t, ns, v1alpha1.PodName("peek"))
}

// What runs is what admission checked: the TaskRun records the Task's spec
// at its admission, and an edit made afterwards changes later runs only.
// (Whether the edit lands before or after the controller starts the run,
// the run's Pod is the snapshot's; test/controller pins the order.)
func TestEditedTaskRunsAdmittedSnapshot(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "")
	admin := as(t, "root", adminGroup)
	must(t, admin.c.Create(ctx, newTask(ns, "snap", v1alpha1.PluginCustomImage, `{"image":"busybox:1.36","command":["echo","first"]}`)))
	must(t, admin.run(t, ns, "snap-1", "snap"))
	must(t, admin.edit(ns, "snap", `{"image":"busybox:1.37","command":["echo","second"]}`))
	must(t, admin.run(t, ns, "snap-2", "snap"))

	for run, want := range map[string]string{"snap-1": "first", "snap-2": "second"} {
		pod := waitPod(t, ns, v1alpha1.PodName(run))
		if got := pod.Spec.Containers[0].Command; len(got) != 2 || got[1] != want {
			t.Errorf("run %s: pod command %v, want echo %s (the Task as it was when the run was admitted)", run, got, want)
		}
	}
	// The snapshot cannot be changed after admission.
	first := &v1alpha1.TaskRun{}
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "snap-1"}, first))
	changed := first.DeepCopy()
	changed.Spec.TaskSpec.Config.Raw = []byte(`{"image":"busybox:1.36","command":["sh","-c","evil"]}`)
	mustRefuse(t, admin.c.Patch(ctx, changed, client.MergeFrom(first)), "immutable")
}

// edit sets the config of Task ns/name as u, as kubectl edit would: read,
// change, write, again if the Task changed meanwhile (its status moves as
// its runs do).
func (u *user) edit(ns, name, config string) error {
	ctx := context.Background()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		stored := &v1alpha1.Task{}
		if err := u.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, stored); err != nil {
			return err
		}
		stored.Spec.Config.Raw = []byte(config)
		return u.c.Update(ctx, stored)
	})
}
