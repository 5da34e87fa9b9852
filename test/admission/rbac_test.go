package admission_test

import (
	"context"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// managerRBAC is the chart's ClusterRole for --act-as=requester, bound to
// the harness's manager user: its own rights carry none of a requester's
// (no pods create, no clusterrolebindings create or bind), and the
// impersonation rules let it act as requesters on exactly the children.
func managerRBAC() []client.Object {
	const (
		imp   = "impersonate-on:user-info:"
		impSA = "impersonate-on:serviceaccount:"
	)
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: managerUser},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"automation.astronetes.io"}, Resources: []string{"tasks"}, Verbs: []string{"get", "list", "watch", "update", "patch"}},
			{APIGroups: []string{"automation.astronetes.io"}, Resources: []string{"tasks/status"}, Verbs: []string{"get", "update", "patch"}},
			{APIGroups: []string{"automation.astronetes.io"}, Resources: []string{"tasks/finalizers"}, Verbs: []string{"update"}},
			{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "delete"}},
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get", "list", "watch", "create"}},
			{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterrolebindings"}, Verbs: []string{"get", "list", "watch", "delete"}},
			{APIGroups: []string{"automation.astronetes.io"}, Resources: []string{"synchronizations"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
			{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"selfsubjectreviews"}, Verbs: []string{"create"}},
			// Impersonation.
			{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"*"}, Verbs: []string{"impersonate:user-info", "impersonate:serviceaccount"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{imp + "create", impSA + "create"}},
			{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterrolebindings"}, Verbs: []string{imp + "create", impSA + "create"}},
			{APIGroups: []string{"automation.astronetes.io"}, Resources: []string{"synchronizations"}, Verbs: []string{imp + "create", impSA + "create"}},
			{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"selfsubjectreviews"}, Verbs: []string{imp + "create"}},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets"},
				Verbs: []string{imp + "list", imp + "patch", impSA + "list", impSA + "patch"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{imp + "list", imp + "patch", impSA + "list", impSA + "patch"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: managerUser},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: managerUser},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: managerUser}},
	}
	return []client.Object{role, binding}
}

// rule is a PolicyRule in one line: rule("apps", "deployments", "list", "patch").
func rule(group, resource string, verbs ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{group}, Resources: []string{resource}, Verbs: verbs}
}

// tasksRule lets a user create, read and change Tasks.
var tasksRule = rule("automation.astronetes.io", "tasks", "get", "list", "watch", "create", "update", "patch", "delete")

// grant gives user the rules in namespace ns, through a Role and a RoleBinding named for the user.
func grant(t *testing.T, ns, user string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	ctx := context.Background()
	name := "grant-" + strings.ReplaceAll(user, ":", "-")
	must(t, k8s.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Rules: rules}))
	must(t, k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{subject(user)},
	}))
}

// grantCluster gives user the rules cluster-wide.
func grantCluster(t *testing.T, user string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	ctx := context.Background()
	name := "grant-" + strings.ReplaceAll(user, ":", "-")
	must(t, k8s.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}))
	must(t, k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{subject(user)},
	}))
}

func subject(user string) rbacv1.Subject {
	if parts := strings.Split(user, ":"); len(parts) == 4 && parts[0] == "system" && parts[1] == "serviceaccount" {
		return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: parts[2], Name: parts[3]}
	}
	return rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}
}

// as is a client that impersonates user (and groups) from the admin.
func as(t *testing.T, user string, groups ...string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(adminCfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	c, err := client.New(cfg, client.Options{Scheme: newScheme()})
	must(t, err)
	return c
}

// kubectlAsUser runs kubectl as the admin impersonating user (--as), or
// as the admin itself for adminUser.
func kubectlAsUser(t *testing.T, user, stdin string, args ...string) (string, error) {
	t.Helper()
	if user == adminUser {
		return kubectl(t, stdin, args...)
	}
	return kubectl(t, stdin, append([]string{"--as", user}, args...)...)
}
