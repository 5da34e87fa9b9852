package security_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
)

// A user who may patch Roles and RoleBindings, but holds neither escalate
// nor bind, cannot grant through a Task what the API server would refuse
// her directly: a wildcard rule, or herself in another binding's subjects.
// A user who holds escalate gets her patch.
func TestTransformationCannotEscalate(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "")
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns}, Rules: []rbacv1.PolicyRule{rule("", "configmaps", "get")}}
	must(t, k8s.Create(ctx, role))
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "app-readers", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "app"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "reader"}}}
	must(t, k8s.Create(ctx, rb))
	patchRBAC := []rbacv1.PolicyRule{taskRights,
		rule(rbacv1.GroupName, "roles", "get", "list", "patch"), rule(rbacv1.GroupName, "rolebindings", "get", "list", "patch")}
	wildcard := `{"resources":[{"group":"rbac.authorization.k8s.io","version":"v1","resource":"roles"}],"names":["app"],` +
		`"operations":[{"jsonPatch":[{"op":"add","path":"/rules/-","value":{"apiGroups":["*"],"resources":["*"],"verbs":["*"]}}]}]}`
	joinBinding := `{"resources":[{"group":"rbac.authorization.k8s.io","version":"v1","resource":"rolebindings"}],"names":["app-readers"],` +
		`"operations":[{"jsonPatch":[{"op":"add","path":"/subjects/-","value":{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"rita"}}]}]}`

	grant(t, ns, "rita", patchRBAC...)
	rita := as(t, "rita")
	mustRefuse(t, rita.create(t, newTask(ns, "wildcard", v1alpha1.PluginTransformation, wildcard)), "escalate")
	mustRefuse(t, rita.create(t, newTask(ns, "join", v1alpha1.PluginTransformation, joinBinding)), "bind")
	unchanged(t, role, &rbacv1.Role{}, func(a, b client.Object) bool {
		return equality.Semantic.DeepEqual(a.(*rbacv1.Role).Rules, b.(*rbacv1.Role).Rules)
	})
	unchanged(t, rb, &rbacv1.RoleBinding{}, func(a, b client.Object) bool {
		return equality.Semantic.DeepEqual(a.(*rbacv1.RoleBinding).Subjects, b.(*rbacv1.RoleBinding).Subjects)
	})

	// With escalate, the same patch is hers to make, by hand or by Task.
	grant(t, ns, "rhea", append(patchRBAC, rule(rbacv1.GroupName, "roles", "escalate"))...)
	must(t, as(t, "rhea").create(t, newTask(ns, "wildcard", v1alpha1.PluginTransformation, wildcard)))
	if mode == actas.ModeController {
		// The manager patches as itself, and the API server's escalation
		// check holds it to its own rights: the chart gives it no escalate.
		wantOutcome(t, finished(t, ns, "wildcard"), v1alpha1.TaskFailed, "PatchFailed", "attempting to grant RBAC permissions not currently held")
		return
	}
	wantOutcome(t, finished(t, ns, "wildcard"), v1alpha1.TaskSucceeded, "", "1 patched")
	got := &rbacv1.Role{}
	must(t, k8s.Get(ctx, client.ObjectKeyFromObject(role), got))
	if len(got.Rules) != 2 {
		t.Fatalf("role rules %v; want the wildcard rule appended", got.Rules)
	}
}

// A user with every right in one namespace only cannot reach past it: no
// ClusterRole, no other namespace, and no resource whose scope admission
// cannot see (a CRD installed later could make it cluster-scoped); inside
// her namespace her Tasks run.
func TestNamespaceAdminStaysInNamespace(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "")
	other := newNamespace(t, "")
	grant(t, ns, "nadia", rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}})
	nadia := as(t, "nadia")
	must(t, k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: other}}))

	tests := []struct {
		name, config string
		plugin       v1alpha1.Plugin
		want         string
	}{
		{name: "cluster-admin", plugin: v1alpha1.PluginCustomImage,
			config: `{"image":"busybox:1.36","command":["true"],"clusterRole":"cluster-admin"}`, want: "bind"},
		{name: "other-namespace", plugin: v1alpha1.PluginTransformation,
			config: `{"resources":[{"version":"v1","resource":"configmaps"}],"namespaces":["` + other + `"],"operations":[{"mergePatch":{"metadata":{"labels":{"a":"b"}}}}]}`,
			want:   "in namespace " + other},
		{name: "unknown-scope", plugin: v1alpha1.PluginTransformation,
			config: `{"resources":[{"group":"example.com","version":"v1","resource":"widgets"}],"operations":[{"mergePatch":{"metadata":{"labels":{"a":"b"}}}}]}`,
			want:   "cluster-wide"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustRefuse(t, nadia.create(t, newTask(ns, tt.name, tt.plugin, tt.config)), tt.want)
		})
	}
	cm := &corev1.ConfigMap{}
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: other, Name: "cm"}, cm))
	if len(cm.Labels) != 0 {
		t.Fatalf("configmap in %s was labelled %v", other, cm.Labels)
	}

	must(t, k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "mine", Namespace: ns}}))
	must(t, nadia.create(t, newTask(ns, "own", v1alpha1.PluginTransformation,
		`{"resources":[{"version":"v1","resource":"configmaps"}],"names":["mine"],"operations":[{"mergePatch":{"metadata":{"labels":{"a":"b"}}}}]}`)))
	wantOutcome(t, finished(t, ns, "own"), v1alpha1.TaskSucceeded, "", "1 patched")
	must(t, nadia.create(t, newTask(ns, "pod", v1alpha1.PluginCustomImage, `{"image":"busybox:1.36","command":["true"]}`)))
	waitPod(t, ns, v1alpha1.PodName("pod"))
}

// unchanged asserts that obj, read again, still equals what it was.
func unchanged(t *testing.T, want, got client.Object, same func(a, b client.Object) bool) {
	t.Helper()
	must(t, k8s.Get(context.Background(), client.ObjectKeyFromObject(want), got))
	if !same(want, got) {
		t.Fatalf("%T %s changed: %+v", got, want.GetName(), got)
	}
}
