package admission_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

const plainImage = "image: busybox:1.36\ncommand: [echo]"

func getTask(t *testing.T, ns, name string) *v1alpha1.Task {
	t.Helper()
	var task v1alpha1.Task
	must(t, k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &task))
	return &task
}

// TestRequesterRecorded: the user who creates a Task is recorded in
// spec.requester, visible in kubectl get -o yaml; one supplied in the
// manifest is replaced, with a warning.
func TestRequesterRecorded(t *testing.T) {
	ns := namespace(t, "requester")
	grant(t, ns, "rita", tasksRule, rule("", "pods", "create"))
	out, err := kubectl(t, taskYAML("rec", ns, v1alpha1.PluginCustomImage, plainImage), "--as", "rita", "--as-group", "team-x", "apply", "-f", "-")
	if err != nil {
		t.Fatalf("apply as rita: %v\n%s", err, out)
	}
	out, err = kubectl(t, "", "get", "task", "-n", ns, "rec", "-o", "yaml")
	if err != nil || !strings.Contains(out, "  requester:\n") || !strings.Contains(out, "    username: rita\n") || !strings.Contains(out, "    - team-x\n") {
		t.Errorf("kubectl get -o yaml does not show spec.requester rita in team-x: %v\n%s", err, out)
	}

	forged := taskYAML("forged", ns, v1alpha1.PluginCustomImage, plainImage) + "  requester:\n    username: boss\n    groups: [system:masters]\n"
	out, err = kubectl(t, forged, "--as", "rita", "--as-group", "team-x", "apply", "-f", "-")
	if err != nil {
		t.Fatalf("apply as rita: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Warning: spec.requester is recorded by taskgate as the user who creates the Task (rita (groups team-x, system:authenticated)); the value supplied was replaced") {
		t.Errorf("no warning about the replaced requester:\n%s", out)
	}
	if r := getTask(t, ns, "forged").Spec.Requester; r == nil || r.Username != "rita" || slices.Contains(r.Groups, "system:masters") {
		t.Errorf("stored requester %+v, want rita's own userInfo", r)
	}
}

// TestRequesterCannotChange: nobody, the admin included, changes
// spec.requester; a pair refuses it in the API server's CEL rule before
// the validating webhook, the single call names spec.requester.
func TestRequesterCannotChange(t *testing.T) {
	ns := namespace(t, "requester-change")
	grant(t, ns, "rita", tasksRule, rule("", "pods", "create"))
	if out, err := kubectlAsUser(t, "rita", taskYAML("mine", ns, v1alpha1.PluginCustomImage, plainImage), "apply", "-f", "-"); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	want := "spec is immutable"
	if singleCall {
		want = "spec.requester: Forbidden: spec.requester records who created the Task"
	}
	for _, user := range []string{"rita", adminUser} {
		out, err := kubectlAsUser(t, user, "", "patch", "task", "-n", ns, "mine", "--type=merge", "-p", `{"spec":{"requester":{"username":"boss"}}}`)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("%s changed the requester: %v\n%s\nwant %q", user, err, out, want)
		}
	}
	if r := getTask(t, ns, "mine").Spec.Requester; r == nil || r.Username != "rita" {
		t.Errorf("stored requester %+v, want rita", r)
	}
}

// TestFinalizerProtected: a user who may update Tasks, and the admin, cannot
// strip the cleanup finalizer (so a deleted Task's binding cannot be left
// behind); the manager's own identity can.
func TestFinalizerProtected(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "finalizer")
	grant(t, ns, "rita", tasksRule, rule("", "pods", "create"))
	task := &v1alpha1.Task{ObjectMeta: metav1.ObjectMeta{Name: "guarded", Namespace: ns, Finalizers: []string{v1alpha1.Finalizer}},
		Spec: v1alpha1.TaskSpec{Plugin: v1alpha1.PluginCustomImage}}
	task.Spec.Config.Raw = []byte(`{"image":"busybox:1.36","command":["echo"]}`)
	must(t, as(t, "rita").Create(ctx, task))

	strip := `[{"op":"remove","path":"/metadata/finalizers"}]`
	want := "metadata.finalizers: Forbidden: only taskgate's manager (" + managerUser + ") may remove the " + v1alpha1.Finalizer + " finalizer"
	for _, user := range []string{"rita", adminUser} {
		out, err := kubectlAsUser(t, user, "", "patch", "task", "-n", ns, "guarded", "--type=json", "-p", strip)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("%s stripped the finalizer: %v\n%s", user, err, out)
		}
	}
	// Deleted, the Task waits for its finalizer; rita still cannot strip it.
	if out, err := kubectlAsUser(t, "rita", "", "delete", "task", "-n", ns, "guarded", "--wait=false"); err != nil {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	if out, err := kubectlAsUser(t, "rita", "", "patch", "task", "-n", ns, "guarded", "--type=json", "-p", strip); err == nil || !strings.Contains(out, want) {
		t.Errorf("rita stripped the finalizer of a deleted Task: %v\n%s", err, out)
	}
	if got := getTask(t, ns, "guarded"); got.DeletionTimestamp == nil || !controllerutil.ContainsFinalizer(got, v1alpha1.Finalizer) {
		t.Fatalf("Task %+v, want deleting and still finalized", got.ObjectMeta)
	}
	// The manager removes it, as the controller does once cleanup is done.
	manager, err := client.New(managerCfg, client.Options{Scheme: testutil.Scheme()})
	must(t, err)
	got := getTask(t, ns, "guarded")
	controllerutil.RemoveFinalizer(got, v1alpha1.Finalizer)
	if err := manager.Update(ctx, got); err != nil {
		t.Fatalf("the manager may not remove its finalizer: %v", err)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(got), &v1alpha1.Task{}); err == nil {
		t.Errorf("Task still there after the manager removed the finalizer")
	}
}

// TestCustomImageAccess: a Task runs its Pod, and binds its clusterRole, only
// for a user who could do so by hand.
func TestCustomImageAccess(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "ci-access")
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "ci-access-reader"}, Rules: []rbacv1.PolicyRule{rule("", "configmaps", "get")}}
	must(t, k8s.Create(ctx, role))
	bindRole := rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, Verbs: []string{"bind"}, ResourceNames: []string{role.Name}}
	pods := rule("", "pods", "create")
	grant(t, ns, "tasks-only", tasksRule)
	grant(t, ns, "pod-maker", tasksRule, pods)
	grant(t, ns, "binder", tasksRule, pods)
	grantCluster(t, "binder", bindRole)
	grant(t, ns, "binder-creator", tasksRule, pods)
	grantCluster(t, "binder-creator", bindRole, rule(rbacv1.GroupName, "clusterrolebindings", "create"))
	gitops := "system:serviceaccount:" + ns + ":gitops"
	must(t, k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "gitops", Namespace: ns}}))
	grant(t, ns, gitops, tasksRule, pods)

	withRole := `{"image":"busybox:1.36","command":["echo"],"clusterRole":"` + role.Name + `"}`
	plain := `{"image":"busybox:1.36","command":["echo"]}`
	tests := []struct {
		name, user, config string
		want               string // empty: admitted
	}{
		{name: "tasks-only user may not run a Pod", user: "tasks-only", config: plain,
			want: `spec.config: Forbidden: user "tasks-only" may not create pods in namespace ci-access`},
		{name: "a user who may create Pods gets their Task", user: "pod-maker", config: plain},
		{name: "a ServiceAccount (GitOps) that may create Pods too", user: gitops, config: plain},
		{name: "creating Pods does not let one bind", user: "pod-maker", config: withRole,
			want: `spec.config.clusterRole: Forbidden: user "pod-maker" may not bind clusterroles.rbac.authorization.k8s.io ci-access-reader`},
		{name: "bind alone does not create a binding", user: "binder", config: withRole,
			want: `spec.config.clusterRole: Forbidden: user "binder" may not create clusterrolebindings.rbac.authorization.k8s.io cluster-wide`},
		{name: "bind and create clusterrolebindings get the binding", user: "binder-creator", config: withRole},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := &v1alpha1.Task{ObjectMeta: metav1.ObjectMeta{Name: "ci-" + string(rune('a'+i)), Namespace: ns},
				Spec: v1alpha1.TaskSpec{Plugin: v1alpha1.PluginCustomImage}}
			task.Spec.Config.Raw = []byte(tt.config)
			err := as(t, tt.user).Create(ctx, task)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want refusal containing %q", err, tt.want)
			case tt.want == "" && getTask(t, ns, task.Name).Spec.Requester.Username != tt.user:
				t.Errorf("requester %+v, want %s", getTask(t, ns, task.Name).Spec.Requester, tt.user)
			}
		})
	}
}
