package controller_test

import (
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/children"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/testutil"
)

// The ClusterRoleBinding is created as the requester: bind on the role alone
// is not enough (Kubernetes also wants create clusterrolebindings), bind and
// create together get the binding, labelled with the run's UID and removed
// when the run finishes.
func TestClusterRoleBindingAsRequester(t *testing.T) {
	ns := parallelWithManager(t)

	bindView := rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, ResourceNames: []string{"view"}, Verbs: []string{"bind"}}
	createCRBs := rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterrolebindings"}, Verbs: []string{"create"}}
	tests := []struct {
		name     string
		nsRules  []rbacv1.PolicyRule
		cluster  []rbacv1.PolicyRule
		wantBind bool
		wantText string
	}{
		{name: "bind-only", nsRules: []rbacv1.PolicyRule{createTaskRuns, createPods}, cluster: []rbacv1.PolicyRule{bindView},
			wantText: `cannot create resource "clusterrolebindings"`},
		{name: "bind-and-create", nsRules: []rbacv1.PolicyRule{createTaskRuns, createPods}, cluster: []rbacv1.PolicyRule{bindView, createCRBs}, wantBind: true},
		// The binding is made, the Pod is refused: the run fails, and
		// failing is a way of finishing, so the binding goes.
		{name: "binding-but-no-pods", nsRules: []rbacv1.PolicyRule{createTaskRuns}, cluster: []rbacv1.PolicyRule{bindView, createCRBs},
			wantText: `cannot create resource "pods"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			requester := newRequester(t, ns, tt.name, tt.nsRules, tt.cluster)
			cfg := customImage("bitnami/kubectl:1.37", "kubectl", "get", "pods", "-A")
			cfg.ClusterRole = "view"
			mustCreate(t, withRequester(makeRun(t, ns, tt.name, v1alpha1.PluginCustomImage, cfg), requester))
			crbKey := client.ObjectKey{Name: v1alpha1.ClusterRoleBindingName(ns, tt.name)}
			if !tt.wantBind {
				task := waitForRun(t, ns, tt.name, v1alpha1.TaskFailed)
				c := succeededCondition(t, task)
				if c.Reason != controller.ReasonForbidden || !strings.Contains(c.Message, tt.wantText) {
					t.Errorf("condition = %s: %s, want Forbidden saying %s", c.Reason, c.Message, tt.wantText)
				}
				waitForAbsent(t, crbKey, &rbacv1.ClusterRoleBinding{})
				wantAbsent(t, client.ObjectKey{Namespace: ns, Name: v1alpha1.PodName(tt.name)}, &corev1.Pod{})
				waitForFinalizerGone(t, task)
				return
			}
			pod := waitForPod(t, ns, tt.name)
			task := &v1alpha1.TaskRun{}
			mustGet(t, ns, tt.name, task)
			crb := &rbacv1.ClusterRoleBinding{}
			mustGet(t, "", crbKey.Name, crb)
			if crb.Labels[v1alpha1.TaskRunUIDLabel] != string(task.UID) || crb.RoleRef.Name != "view" {
				t.Errorf("binding labels %v, role %s; want the run's UID %s and view", crb.Labels, crb.RoleRef.Name, task.UID)
			}
			setPodStatus(t, pod, corev1.PodSucceeded, 0, "Completed")
			waitForRun(t, ns, tt.name, v1alpha1.TaskSucceeded)
			waitForAbsent(t, crbKey, &rbacv1.ClusterRoleBinding{})
		})
	}
}

// A ServiceAccount that a namespace editor prepared under a name a run's
// could have (the old "<run>-task", "<run>-sa"), labelled as the run's and
// its Task's or not, is never used nor bound: a run's own ServiceAccount
// holds part of the run's UID, which exists only once the run does. (One
// squatting the real name after the run exists fails the run NameConflict:
// controller/ensure_stale_test.go.)
func TestServiceAccountSquatting(t *testing.T) {
	ns := parallelWithManager(t)

	tests := []struct {
		name   string
		labels map[string]string
	}{
		{name: "unlabelled"},
		{name: "labelled", labels: map[string]string{v1alpha1.TaskRunLabel: "labelled"}},
		{name: "task-labelled", labels: map[string]string{v1alpha1.TaskLabel: "task-labelled", v1alpha1.TaskRunLabel: "task-labelled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			guesses := []string{v1alpha1.ChildName(tt.name, "task"), v1alpha1.ServiceAccountName(tt.name, "")}
			for _, g := range guesses {
				mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: g, Labels: tt.labels}})
			}
			cfg := customImage("busybox:1.36", "true")
			cfg.ClusterRole = "cluster-admin"
			mustCreate(t, makeRun(t, ns, tt.name, v1alpha1.PluginCustomImage, cfg))
			pod := waitForPod(t, ns, tt.name)
			own := runSA(t, ns, tt.name)
			crb := &rbacv1.ClusterRoleBinding{}
			mustGet(t, "", v1alpha1.ClusterRoleBindingName(ns, tt.name), crb)
			if pod.Spec.ServiceAccountName != own || len(crb.Subjects) != 1 || crb.Subjects[0].Name != own || slices.Contains(guesses, own) {
				t.Errorf("pod runs as %s, binding subjects %v; want only the run's own %s, none of the prepared %v",
					pod.Spec.ServiceAccountName, crb.Subjects, own, guesses)
			}
		})
	}
}

// The finalizer is put back by the controller when someone strips it from a
// run still going; a binding left by a run deleted without its finalizer while
// no controller ran is removed by the sweeper, and a new run of the same
// name does not inherit it.
func TestStrippedFinalizerAndSweeper(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	opts := managerOptions{controller: controller.Options{SweepInterval: 300 * time.Millisecond}}
	stop := startManagerWith(t, ns, opts)

	cfg := customImage("busybox:1.36", "sleep", "3600")
	cfg.ClusterRole = "view"
	mustCreate(t, makeRun(t, ns, "job", v1alpha1.PluginCustomImage, cfg))
	pod := waitForPod(t, ns, "job")
	crbKey := client.ObjectKey{Name: v1alpha1.ClusterRoleBindingName(ns, "job")}
	old := &rbacv1.ClusterRoleBinding{}
	mustGet(t, "", crbKey.Name, old)
	task := &v1alpha1.TaskRun{}
	mustGet(t, ns, "job", task)

	stripFinalizer(t, task)
	testutil.Eventually(t, "finalizer re-asserted", func() error {
		if err := get(t, client.ObjectKeyFromObject(task), task); err != nil {
			return err
		}
		if !slices.Contains(task.Finalizers, v1alpha1.Finalizer) {
			return errNotYet("finalizers %v", task.Finalizers)
		}
		return nil
	})

	// With no controller running, strip it again and delete the run: it
	// is gone at once and its binding stays behind.
	stop()
	stripFinalizer(t, task)
	if err := k8sClient.Delete(t.Context(), task); err != nil {
		t.Fatal(err)
	}
	waitForAbsent(t, client.ObjectKeyFromObject(task), &v1alpha1.TaskRun{})
	mustGet(t, "", crbKey.Name, &rbacv1.ClusterRoleBinding{})
	// envtest has no garbage collector: remove the old run's Pod and
	// ServiceAccount as it would.
	for _, obj := range []client.Object{pod, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: v1alpha1.ServiceAccountName(task.Name, task.UID)}}} {
		if err := k8sClient.Delete(t.Context(), obj, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate(t, makeRun(t, ns, "job", v1alpha1.PluginCustomImage, customImage("busybox:1.36", "true")))

	startManagerWith(t, ns, opts)
	waitForAbsent(t, crbKey, &rbacv1.ClusterRoleBinding{})
	waitForPod(t, ns, "job")
	fresh := waitForRun(t, ns, "job", v1alpha1.TaskPending)
	if fresh.UID == task.UID || fresh.Status.CustomImage.ClusterRoleBindingName != "" {
		t.Errorf("new task %s: status %+v, want its own run without a binding", fresh.UID, fresh.Status.CustomImage)
	}
	crbs := &rbacv1.ClusterRoleBindingList{}
	if err := k8sClient.List(t.Context(), crbs, client.MatchingLabels{v1alpha1.TaskRunLabel: "job"}); err != nil {
		t.Fatal(err)
	}
	for _, crb := range crbs.Items {
		for _, s := range crb.Subjects {
			if s.Namespace == ns && s.Name == runSA(t, ns, "job") {
				t.Errorf("binding %s still binds %s to the new Task's service account", crb.Name, crb.RoleRef.Name)
			}
		}
	}
}

// stripFinalizer removes the run's finalizers, as a user who may update
// TaskRuns could without the webhook.
func stripFinalizer(t *testing.T, task *v1alpha1.TaskRun) {
	t.Helper()
	testutil.Eventually(t, "finalizer stripped", func() error {
		if err := get(t, client.ObjectKeyFromObject(task), task); err != nil {
			return err
		}
		task.Finalizers = nil
		return k8sClient.Update(t.Context(), task)
	})
}

// waitForAbsent waits until no object of obj's kind exists at key.
func waitForAbsent(t *testing.T, key client.ObjectKey, obj client.Object) {
	t.Helper()
	testutil.Eventually(t, "removal of "+key.String(), func() error {
		if err := get(t, key, obj); !apierrors.IsNotFound(err) {
			return errNotYet("still there (%v)", err)
		}
		return nil
	})
}

// waitForFinalizerGone waits until the controller removed its finalizer.
func waitForFinalizerGone(t *testing.T, task *v1alpha1.TaskRun) {
	t.Helper()
	testutil.Eventually(t, "finalizer removed", func() error {
		if err := get(t, client.ObjectKeyFromObject(task), task); err != nil {
			return err
		}
		if slices.Contains(task.Finalizers, v1alpha1.Finalizer) {
			return errNotYet("finalizers %v", task.Finalizers)
		}
		return nil
	})
}

// A ServiceAccount under the run's default name that claims the run as
// its controller, created by someone who read the run's UID and raced the
// controller, is never bound: taskgate records the UID of the one it
// creates before binding anything, and replaces one it did not record.
// Once the binding exists, replacing the ServiceAccount fails the run and
// removes the binding, so the replacement's tokens never hold the role.
func TestServiceAccountRace(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	cfg := customImage("busybox:1.36", "sleep", "3600")
	cfg.ClusterRole = "view"
	task := makeRun(t, ns, "raced", v1alpha1.PluginCustomImage, cfg)
	mustCreate(t, task) // no controller runs yet: the squatter wins the race
	squat := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: runSA(t, ns, "raced"),
		Labels:          map[string]string{v1alpha1.TaskRunLabel: "raced"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "TaskRun", Name: "raced", UID: task.UID, Controller: ptr.To(true)}}}}
	mustCreate(t, squat)
	startManager(t, ns)

	waitForPod(t, ns, "raced")
	sa := &corev1.ServiceAccount{}
	mustGet(t, ns, squat.Name, sa)
	if sa.UID == squat.UID {
		t.Fatalf("service account %s is the squatter's (UID %s); want it replaced before anything was bound", sa.Name, sa.UID)
	}
	mustGet(t, ns, "raced", task)
	if got := task.Status.CustomImage.ServiceAccountUID; got != sa.UID {
		t.Fatalf("status.customImage.serviceAccountUID = %q, want the replacement's %q", got, sa.UID)
	}
	mustGet(t, "", v1alpha1.ClusterRoleBindingName(ns, "raced"), &rbacv1.ClusterRoleBinding{})

	// Replaced while the run runs: the run fails and the binding goes.
	if err := k8sClient.Delete(t.Context(), sa); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: squat.Name,
		Labels: map[string]string{v1alpha1.TaskRunLabel: "raced"}}})
	failed := waitForRun(t, ns, "raced", v1alpha1.TaskFailed)
	if c := succeededCondition(t, failed); c.Reason != controller.ReasonServiceAccountReplaced {
		t.Errorf("condition = %s: %s, want ServiceAccountReplaced", c.Reason, c.Message)
	}
	testutil.Eventually(t, "binding removed", func() error {
		err := get(t, client.ObjectKey{Name: v1alpha1.ClusterRoleBindingName(ns, "raced")}, &rbacv1.ClusterRoleBinding{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return errNotYet("binding still there: %v", err)
	})
}

// The sweeper alone (its manager watches another namespace, so no reconcile
// of these runs or Tasks runs) removes a binding whose run finished a while
// ago, and one an earlier taskgate made for a Task (labelled with the Task's
// UID) whose own run finished; it keeps one whose run still runs, in either
// form, and one that only looks like a run's (a name taskgate never gives,
// whatever its labels).
func TestSweeperRemovesBindingsOfFinishedRuns(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	finishedLongAgo := metav1.NewTime(time.Now().Add(-10 * time.Minute).Truncate(time.Second))
	tests := []struct {
		name        string
		legacy      bool // a Task of an earlier taskgate, not a TaskRun
		finished    bool
		bindingName string
		wantRemoved bool
	}{
		{name: "finished", finished: true, wantRemoved: true},
		{name: "running"},
		{name: "lookalike", finished: true, bindingName: "lookalike-" + ns},
		{name: "legacy-finished", legacy: true, finished: true, wantRemoved: true},
		{name: "legacy-running", legacy: true},
	}
	for _, tt := range tests {
		status := runningStatus(ns, tt.name)
		if tt.finished {
			status = succeededStatus(finishedLongAgo)
		}
		if tt.legacy {
			legacyBinding(t, ns, tt.name, legacyTask(t, ns, tt.name, status).UID)
			continue
		}
		run := makeRun(t, ns, tt.name, v1alpha1.PluginCustomImage, customImage("busybox:1.36", "true"))
		mustCreate(t, run)
		run.Status = status
		if err := k8sClient.Status().Update(t.Context(), run); err != nil {
			t.Fatal(err)
		}
		crb := children.ClusterRoleBinding(run, "view", "someone")
		if tt.bindingName != "" {
			crb.Name = tt.bindingName
		}
		mustCreate(t, crb)
	}
	// Each sweep lists the bindings of runs, then the legacy ones, from the
	// API server: counting the latter tells when a whole sweep has run
	// after the removals.
	var sweeps atomic.Int64
	cfg := rest.CopyConfig(managerCfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/clusterrolebindings") && r.URL.Query().Get("watch") == "" &&
				strings.Contains(r.URL.Query().Get("labelSelector"), v1alpha1.TaskUIDLabel) {
				sweeps.Add(1)
			}
			return rt.RoundTrip(r)
		})
	})
	startManagerWith(t, newNamespace(t), managerOptions{config: cfg, controller: controller.Options{SweepInterval: 200 * time.Millisecond}})

	for _, tt := range tests {
		if tt.wantRemoved {
			waitForAbsent(t, client.ObjectKey{Name: v1alpha1.ClusterRoleBindingName(ns, tt.name)}, &rbacv1.ClusterRoleBinding{})
		}
	}
	// The sweep that removed them may still be going; the one after next
	// starts only once the next has finished.
	removedBy := sweeps.Load()
	testutil.Eventually(t, "two more sweeps", func() error {
		if n := sweeps.Load() - removedBy; n < 2 {
			return errNotYet("%d sweeps since the removal, want 2", n)
		}
		return nil
	})
	for _, tt := range tests {
		if tt.wantRemoved {
			continue
		}
		name := tt.bindingName
		if name == "" {
			name = v1alpha1.ClusterRoleBindingName(ns, tt.name)
		}
		if err := get(t, client.ObjectKey{Name: name}, &rbacv1.ClusterRoleBinding{}); err != nil {
			t.Errorf("%s: binding %s: %v, want it kept", tt.name, name, err)
		}
	}
}

// roundTripperFunc is an http.RoundTripper of a function.
type roundTripperFunc func(*http.Request) (*http.Response, error)

// RoundTrip implements http.RoundTripper.
func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
