package admission_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/test/testutil"
)

// managerValues are the chart values of the harness's manager: the chart's
// ClusterRole for --act-as=requester with its defaults, rendered by helm
// template (one source of truth: charts/taskgate/templates/rbac.yaml, no
// copy here to drift): its own rights carry none of a requester's (no pods
// create, no clusterrolebindings create or bind), and the impersonation
// rules let it act as requesters on exactly the children. certs.mode is
// cert-manager because envtest serves the certificates: the built-in
// rotator, and its webhook-configuration rules, do not run here.
func managerValues() string {
	return fmt.Sprintf("actAs: requester\ncerts:\n  mode: cert-manager\nwebhook:\n  singleCall: %t\n", singleCall)
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
	c, err := testutil.Impersonating(adminCfg, user, groups...)
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
