package security_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

// adminGroup is bound to cluster-admin as kubeadm does since 1.29: admins
// reach cluster-admin through an ordinary group, which taskgate can act as
// (constrained impersonation refuses system:masters).
const adminGroup = "kubeadm:cluster-admins"

// user is a test identity: a name, groups, and a client that impersonates it.
type user struct {
	name   string
	groups []string
	c      client.Client
}

// as returns a client that acts as name in groups (plus system:authenticated).
func as(t *testing.T, name string, groups ...string) *user {
	t.Helper()
	c, err := testutil.Impersonating(driver, name, append(groups, "system:authenticated")...)
	must(t, err)
	return &user{name: name, groups: groups, c: c}
}

// newNamespace creates a namespace and its `default` ServiceAccount (as
// kube-controller-manager would; envtest has none).
func newNamespace(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if name == "" {
		ns.GenerateName = "sec-"
	}
	must(t, k8s.Create(ctx, ns))
	must(t, testutil.EnsureDefaultServiceAccount(ctx, k8s, ns.Name))
	return ns.Name
}

// rule is shorthand for an RBAC rule.
func rule(group, resource string, verbs ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{group}, Resources: []string{resource}, Verbs: verbs}
}

// taskRights are what every Task user here holds: Tasks and TaskRuns in
// their namespace (the aggregated edit role's share of them).
var taskRights = rbacv1.PolicyRule{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"tasks", "taskruns"},
	Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}}

// grant gives subject the rules in ns (a Role) or cluster-wide (ns == "").
func grant(t *testing.T, ns, subject string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	ctx := context.Background()
	name := "grant-" + strings.NewReplacer(":", "-", "@", "-").Replace(subject) + "-" + fmt.Sprint(time.Now().UnixNano())
	subj := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: subject}}
	if ns == "" {
		must(t, k8s.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}))
		must(t, k8s.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subj,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}}))
		return
	}
	must(t, k8s.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Rules: rules}))
	must(t, k8s.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Subjects: subj,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}}))
	waitAllowed(t, ns, subject, rules[0])
}

// waitAllowed waits until RBAC's cache answers for a fresh grant.
func waitAllowed(t *testing.T, ns, subject string, r rbacv1.PolicyRule) {
	t.Helper()
	testutil.EventuallyWithin(t, 5*time.Second, subject+" allowed to "+r.Verbs[0]+" "+r.Resources[0]+" in "+ns, func() error {
		if !allowed(context.Background(), ns, subject, r) {
			return errors.New("SubjectAccessReview not allowed yet")
		}
		return nil
	})
}

// newTask is a Task of plugin with config (JSON).
func newTask(ns, name string, plugin v1alpha1.Plugin, config string) *v1alpha1.Task {
	return &v1alpha1.Task{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       v1alpha1.TaskSpec{PluginSpec: v1alpha1.PluginSpec{Plugin: plugin, Config: runtime.RawExtension{Raw: []byte(config)}}},
	}
}

// newRun is a TaskRun of the Task named task, named name.
func newRun(ns, name, task string) *v1alpha1.TaskRun {
	return &v1alpha1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       v1alpha1.TaskRunSpec{TaskRef: &v1alpha1.TaskRef{Name: task}},
	}
}

// create writes task as u (a runbook: no check beyond RBAC and its
// schema) and then runs it as u with a TaskRun of the same name, so the
// run's children carry the names the Task's would have. It returns the
// Task's refusal, else the run's: the run is where the access checks and
// the preflight happen.
func (u *user) create(t *testing.T, task *v1alpha1.Task) error {
	t.Helper()
	ctx := context.Background()
	err := u.c.Create(ctx, task.DeepCopy())
	if apierrors.IsAlreadyExists(err) {
		// Another user's runbook of that name: edit it (a Task is a
		// runbook anyone with update rights may edit).
		err = u.edit(task.Namespace, task.Name, string(task.Spec.Config.Raw))
	}
	if err != nil {
		return err
	}
	return u.run(t, task.Namespace, task.Name, task.Name)
}

// run creates, as u, a TaskRun named name of the Task named task.
func (u *user) run(t *testing.T, ns, name, task string) error {
	t.Helper()
	return u.c.Create(context.Background(), newRun(ns, name, task))
}

// mustRefuse asserts that err is an admission refusal whose text has every want.
func mustRefuse(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("admitted; want a refusal containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("refusal %q\nwant it to contain %q", err.Error(), w)
		}
	}
}

// finished waits for the TaskRun to reach Succeeded or Failed and returns it.
func finished(t *testing.T, ns, name string) *v1alpha1.TaskRun {
	t.Helper()
	task := &v1alpha1.TaskRun{}
	testutil.Eventually(t, "taskrun "+ns+"/"+name+" finished", func() error {
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, task); err != nil {
			return err
		}
		if task.Status.Phase != v1alpha1.TaskSucceeded && task.Status.Phase != v1alpha1.TaskFailed {
			return fmt.Errorf("phase %q, message %q; want Succeeded or Failed", task.Status.Phase, task.Status.Message)
		}
		return nil
	})
	return task
}

// reason is the run's Succeeded condition reason.
func reason(task *v1alpha1.TaskRun) string {
	for _, c := range task.Status.Conditions {
		if c.Type == v1alpha1.ConditionSucceeded {
			return c.Reason
		}
	}
	return ""
}

// wantOutcome asserts the run's phase, reason and that its message has msg.
func wantOutcome(t *testing.T, task *v1alpha1.TaskRun, phase v1alpha1.TaskPhase, why, msg string) {
	t.Helper()
	if task.Status.Phase != phase || (why != "" && reason(task) != why) || !strings.Contains(task.Status.Message, msg) {
		t.Fatalf("task %s: phase %s reason %s message %q; want phase %s reason %s message containing %q",
			task.Name, task.Status.Phase, reason(task), task.Status.Message, phase, why, msg)
	}
}

// absent asserts that obj does not exist.
func absent(t *testing.T, obj client.Object, key client.ObjectKey) {
	t.Helper()
	if err := k8s.Get(context.Background(), key, obj); !apierrors.IsNotFound(err) {
		t.Fatalf("%T %s exists (err %v); the attack must not create it", obj, key, err)
	}
}

// requesterOf reads the stored TaskRun's spec.requester.
func requesterOf(t *testing.T, ns, name string) *v1alpha1.Requester {
	t.Helper()
	task := &v1alpha1.TaskRun{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, task))
	return task.Spec.Requester
}

// runUID is the stored TaskRun's UID, which its ClusterRoleBinding carries.
func runUID(t *testing.T, ns, name string) string {
	t.Helper()
	run := &v1alpha1.TaskRun{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, run))
	return string(run.UID)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// allowed asks the API server whether subject may do r's first verb on its
// first resource in ns.
func allowed(ctx context.Context, ns, subject string, r rbacv1.PolicyRule) bool {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   subject,
		Groups: []string{"system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: ns, Verb: r.Verbs[0], Group: r.APIGroups[0], Resource: r.Resources[0],
		},
	}}
	if err := k8s.Create(ctx, sar); err != nil {
		return false
	}
	return sar.Status.Allowed
}

// waitPod waits until the Pod exists and returns it.
func waitPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{}
	waitExists(t, pod, client.ObjectKey{Namespace: ns, Name: name})
	return pod
}

// waitBinding waits until the run's ClusterRoleBinding exists.
func waitBinding(t *testing.T, ns, task string) *rbacv1.ClusterRoleBinding {
	t.Helper()
	crb := &rbacv1.ClusterRoleBinding{}
	waitExists(t, crb, client.ObjectKey{Name: v1alpha1.ClusterRoleBindingName(ns, task)})
	return crb
}

func waitExists(t *testing.T, obj client.Object, key client.ObjectKey) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("%T %s to appear", obj, key), func() error {
		if err := k8s.Get(context.Background(), key, obj); err != nil {
			return fmt.Errorf("%w\n%s", err, taskStates(key.Namespace))
		}
		return nil
	})
}

func waitGone(t *testing.T, obj client.Object, key client.ObjectKey) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("%T %s to be gone", obj, key), func() error {
		if err := k8s.Get(context.Background(), key, obj); !apierrors.IsNotFound(err) {
			return fmt.Errorf("get: %v, want NotFound", err)
		}
		return nil
	})
}

// taskStates describes the TaskRuns in ns (all namespaces if ns is empty),
// for failure messages.
func taskStates(ns string) string {
	var list v1alpha1.TaskRunList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		return "list taskruns: " + err.Error()
	}
	var b strings.Builder
	for _, task := range list.Items {
		fmt.Fprintf(&b, "taskrun %s/%s: phase %q reason %q message %q\n", task.Namespace, task.Name, task.Status.Phase, reason(&task), task.Status.Message)
	}
	return b.String()
}
