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
// who may edit Tasks and Deployments in one namespace (and not create Pods). (The built-in "edit"
// ClusterRole is filled by the aggregation controller, which envtest does not
// run, so the test grants the same rights with a Role.) A Task of theirs may
// not bind cluster-admin, nor patch or create where they could not themselves.
func TestNamespaceEditorCannotEscalate(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "team-a")
	namespace(t, "team-b")
	must(t, k8s.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "tasks-editor", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"automation.astronetes.io"}, Resources: []string{"tasks"},
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
		// The editor may not create Pods, so a Task may not run one for them.
		{name: "plain task", plugin: v1alpha1.PluginCustomImage, config: `{"image":"busybox:1.36","command":["echo"]}`,
			want: `spec.config: Forbidden: user "alice" may not create pods in namespace team-a`},
		{name: "cluster-admin", plugin: v1alpha1.PluginCustomImage, config: `{"image":"busybox:1.36","command":["echo"],"clusterRole":"cluster-admin"}`,
			want: `spec.config.clusterRole: Forbidden: user "alice" may not bind clusterroles.rbac.authorization.k8s.io cluster-admin`},
		{name: "patch own namespace", plugin: v1alpha1.PluginTransformation,
			config: `{"resources":[{"group":"apps","version":"v1","resource":"deployments"}],"operations":[{"mergePatch":{"metadata":{"labels":{"a":"b"}}}}]}`},
		{name: "patch other namespace", plugin: v1alpha1.PluginTransformation,
			config: `{"resources":[{"group":"apps","version":"v1","resource":"deployments"}],"namespaces":["team-b"],"operations":[{"mergePatch":{"metadata":{"labels":{"a":"b"}}}}]}`,
			want:   `spec.config.resources[0]: Forbidden: user "alice" may not patch deployments.apps in namespace team-b`},
		{name: "patch nodes", plugin: v1alpha1.PluginTransformation,
			config: `{"resources":[{"version":"v1","resource":"nodes"}],"operations":[{"mergePatch":{"metadata":{"labels":{"a":"b"}}}}]}`,
			want:   `may not patch nodes cluster-wide`},
		{name: "create synchronization", plugin: v1alpha1.PluginRunSync,
			config: `{"template":{"spec":{"plugin":"kubernetes-to-kubernetes","config":{"sourceName":"a","destinationName":"b"}}}}`,
			want:   `spec.config.template: Forbidden: user "alice" may not create synchronizations.automation.astronetes.io in namespace team-a`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := &v1alpha1.Task{ObjectMeta: metav1.ObjectMeta{Name: "alice-" + string(rune('a'+i)), Namespace: ns},
				Spec: v1alpha1.TaskSpec{Plugin: tt.plugin}}
			task.Spec.Config.Raw = []byte(tt.config)
			err := alice.Create(ctx, task)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want refusal containing %q", err, tt.want)
			}
		})
	}

	// The admin who may bind cluster-admin is admitted.
	task := &v1alpha1.Task{ObjectMeta: metav1.ObjectMeta{Name: "admin-binds", Namespace: ns},
		Spec: v1alpha1.TaskSpec{Plugin: v1alpha1.PluginCustomImage}}
	task.Spec.Config.Raw = []byte(`{"image":"busybox:1.36","command":["echo"],"clusterRole":"cluster-admin"}`)
	if err := k8s.Create(ctx, task); err != nil {
		t.Errorf("cluster admin refused: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
