package admission_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

const plainImage = "image: busybox:1.36\ncommand: [echo]"

func getTask(t *testing.T, ns, name string) *v1alpha1.Task {
	t.Helper()
	var task v1alpha1.Task
	must(t, k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &task))
	return &task
}

// TestCustomImageAccess: a run starts its Pod, and binds its clusterRole,
// only for a user who could do so by hand; whoever wrote the config. The
// users run one-off TaskRuns (spec.taskSpec); runs of a Task are checked the
// same (TestTaskRunNeedsTheTaskAndItsRights).
func TestCustomImageAccess(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "ci-access")
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "ci-access-reader"}, Rules: []rbacv1.PolicyRule{rule("", "configmaps", "get")}}
	must(t, k8s.Create(ctx, role))
	bindRole := rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, Verbs: []string{"bind"}, ResourceNames: []string{role.Name}}
	pods := rule("", "pods", "create")
	grant(t, ns, "tasks-only", tasksRule, runsRule)
	grant(t, ns, "pod-maker", runsRule, pods)
	grant(t, ns, "binder", runsRule, pods)
	grantCluster(t, "binder", bindRole)
	grant(t, ns, "binder-creator", runsRule, pods)
	grantCluster(t, "binder-creator", bindRole, rule(rbacv1.GroupName, "clusterrolebindings", "create"))
	gitops := "system:serviceaccount:" + ns + ":gitops"
	must(t, k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "gitops", Namespace: ns}}))
	grant(t, ns, gitops, runsRule, pods)

	withRole := `{"image":"busybox:1.36","command":["echo"],"clusterRole":"` + role.Name + `"}`
	plain := `{"image":"busybox:1.36","command":["echo"]}`
	tests := []struct {
		name, user, config string
		want               string // empty: admitted
	}{
		{name: "tasks-only user may not run a Pod", user: "tasks-only", config: plain,
			want: `spec.taskSpec.config: Forbidden: user "tasks-only" may not create pods in namespace ci-access`},
		{name: "a user who may create Pods gets their run", user: "pod-maker", config: plain},
		{name: "a ServiceAccount (GitOps) that may create Pods too", user: gitops, config: plain},
		{name: "creating Pods does not let one bind", user: "pod-maker", config: withRole,
			want: `spec.taskSpec.config.clusterRole: Forbidden: user "pod-maker" may not bind clusterroles.rbac.authorization.k8s.io ci-access-reader`},
		{name: "bind alone does not create a binding", user: "binder", config: withRole,
			want: `spec.taskSpec.config.clusterRole: Forbidden: user "binder" may not create clusterrolebindings.rbac.authorization.k8s.io cluster-wide`},
		{name: "bind and create clusterrolebindings get the binding", user: "binder-creator", config: withRole},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := inlineRun(ns, "ci-"+string(rune('a'+i)), v1alpha1.PluginCustomImage, tt.config)
			err := as(t, tt.user).Create(ctx, run)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "":
				refused(t, err, tt.want)
				absentRun(t, ns, run.Name)
			case getRun(t, ns, run.Name).Spec.Requester.Username != tt.user:
				t.Errorf("requester %+v, want %s", getRun(t, ns, run.Name).Spec.Requester, tt.user)
			}
			if tt.user == "tasks-only" {
				// Writing the same as a Task needs no such right: a Task runs nothing.
				must(t, as(t, tt.user).Create(ctx, newTask(ns, run.Name, v1alpha1.PluginCustomImage, tt.config)))
			}
		})
	}
}
