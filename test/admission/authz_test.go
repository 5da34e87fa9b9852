package admission_test

import (
	"context"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// TestNamespaceEditorCannotEscalate impersonates a namespace editor: a user
// who may edit Tasks, run them and edit Deployments in one namespace (and
// not create Pods). (The built-in "edit" ClusterRole is filled by the
// aggregation controller, which envtest does not run, so the test grants the
// same rights with a Role.) They may write any Task; a run of theirs may not
// bind cluster-admin, nor patch or create where they could not themselves.
func TestNamespaceEditorCannotEscalate(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "team-a")
	namespace(t, "team-b")
	must(t, k8s.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "tasks-editor", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"automation.astronetes.io"}, Resources: []string{"tasks", "taskruns"},
			Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments"},
				Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}}},
	}))
	for _, role := range []struct{ kind, name string }{{"Role", "tasks-editor"}} {
		must(t, k8s.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "alice-" + strings.ToLower(role.name), Namespace: ns},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "alice"}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: role.kind, Name: role.name},
		}))
	}
	alice := as(t, "alice", "system:authenticated")

	tests := []struct {
		name, config string
		plugin       v1alpha1.Plugin
		want         string // empty: admitted
	}{
		// The editor may not create Pods, so a run may not start one for them.
		{name: "plain task", plugin: v1alpha1.PluginCustomImage, config: `{"image":"busybox:1.36","command":["echo"]}`,
			want: `spec.taskSpec.config: Forbidden: user "alice" may not create pods in namespace team-a`},
		{name: "cluster-admin", plugin: v1alpha1.PluginCustomImage, config: `{"image":"busybox:1.36","command":["echo"],"clusterRole":"cluster-admin"}`,
			want: `spec.taskSpec.config.clusterRole: Forbidden: user "alice" may not bind clusterroles.rbac.authorization.k8s.io cluster-admin`},
		{name: "patch own namespace", plugin: v1alpha1.PluginTransformation,
			config: `{"resources":[{"group":"apps","version":"v1","resource":"deployments"}],"operations":[{"mergePatch":{"metadata":{"labels":{"a":"b"}}}}]}`},
		{name: "patch other namespace", plugin: v1alpha1.PluginTransformation,
			config: `{"resources":[{"group":"apps","version":"v1","resource":"deployments"}],"namespaces":["team-b"],"operations":[{"mergePatch":{"metadata":{"labels":{"a":"b"}}}}]}`,
			want:   `spec.taskSpec.config.resources[0]: Forbidden: user "alice" may not patch deployments.apps in namespace team-b`},
		{name: "patch nodes", plugin: v1alpha1.PluginTransformation,
			config: `{"resources":[{"version":"v1","resource":"nodes"}],"operations":[{"mergePatch":{"metadata":{"labels":{"a":"b"}}}}]}`,
			want:   `may not patch nodes cluster-wide`},
		{name: "create synchronization", plugin: v1alpha1.PluginRunSync,
			config: `{"template":{"spec":{"plugin":"kubernetes-to-kubernetes","config":{"sourceName":"a","destinationName":"b"}}}}`,
			want:   `spec.taskSpec.config.template: Forbidden: user "alice" may not create synchronizations.automation.astronetes.io in namespace team-a`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "alice-" + string(rune('a'+i))
			must(t, alice.Create(ctx, newTask(ns, name, tt.plugin, tt.config))) // a Task runs nothing
			err := alice.Create(ctx, runOf(ns, name, name))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "":
				refused(t, err, tt.want)
				absentRun(t, ns, name)
			}
		})
	}

	// The admin who may bind cluster-admin runs alice's Task that binds it.
	if err := k8s.Create(ctx, runOf(ns, "admin-binds", "alice-b")); err != nil {
		t.Errorf("cluster admin refused: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
