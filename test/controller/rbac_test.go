package controller_test

import (
	"context"
	"fmt"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// The manager runs as a user outside system:masters, holding exactly the
// chart's rules: a masters identity would impersonate anyone through the
// legacy impersonation path and prove nothing about the constrained one.
const (
	managerUser           = "taskgate-manager"
	controllerModeUser    = "taskgate-manager-controller-mode"
	adminGroup            = "test:cluster-admins"
	scopeTestGroup        = "scope.example.com"
	impersonateUserInfo   = "impersonate:user-info"
	impersonateSA         = "impersonate:serviceaccount"
	impersonateOnUserInfo = "impersonate-on:user-info:"
	impersonateOnSA       = "impersonate-on:serviceaccount:"
)

// adminRequester is an administrator as kubeadm makes them since 1.29:
// cluster-admin through an ordinary group, not system:masters. Tests whose
// point is not who may do what run their Tasks as this requester.
var adminRequester = &v1alpha1.Requester{Username: "test-admin", Groups: []string{adminGroup}}

// transformationRules are the harness's chart value transformationRules:
// the chart's defaults plus what the tests transform.
var transformationRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets"}},
	{APIGroups: []string{""}, Resources: []string{"configmaps", "namespaces"}},
	{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles"}},
	{APIGroups: []string{scopeTestGroup}, Resources: []string{"*"}},
}

// managerOwnRules are what the manager does as itself. Together with
// managerImpersonationRules they mirror charts/taskgate/templates/rbac.yaml
// in --act-as=requester mode (and the brief's list of it): keep them in step.
func managerOwnRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"tasks"}, Verbs: []string{"get", "list", "watch", "update", "patch"}},
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"tasks/status"}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"tasks/finalizers"}, Verbs: []string{"update"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get", "list", "watch", "create"}},
		{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterrolebindings"}, Verbs: []string{"get", "list", "watch", "delete"}},
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"synchronizations"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"selfsubjectreviews"}, Verbs: []string{"create"}},
	}
}

// managerImpersonationRules let the manager send the child writes as the
// requester, and nothing else.
func managerImpersonationRules() []rbacv1.PolicyRule {
	on := func(verbs ...string) []string {
		var out []string
		for _, v := range verbs {
			out = append(out, impersonateOnUserInfo+v, impersonateOnSA+v)
		}
		return out
	}
	rules := []rbacv1.PolicyRule{
		// "*": RBAC cannot name userextras/<key> otherwise (see the brief).
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"*"}, Verbs: []string{impersonateUserInfo, impersonateSA}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: on("create")},
		{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterrolebindings"}, Verbs: on("create")},
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"synchronizations"}, Verbs: on("create")},
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"selfsubjectreviews"}, Verbs: []string{impersonateOnUserInfo + "create"}},
	}
	for _, r := range transformationRules {
		r.Verbs = on("list", "patch")
		rules = append(rules, r)
	}
	return rules
}

// controllerModeRules are the chart's rules in --act-as=controller mode:
// the manager's own rights to create the children, no impersonation.
func controllerModeRules() []rbacv1.PolicyRule {
	rules := append(managerOwnRules(),
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterrolebindings"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"synchronizations"}, Verbs: []string{"create"}},
	)
	for _, r := range transformationRules {
		r.Verbs = []string{"get", "list", "patch"}
		rules = append(rules, r)
	}
	return rules
}

// setUpIdentities creates the admin group's binding and the two manager
// users, returning the managers' configs.
func setUpIdentities(env *envtest.Environment, admin client.Client) (requesterMode, controllerMode *rest.Config, err error) {
	ctx := context.Background()
	if err := bindCluster(ctx, admin, "test-cluster-admins", "cluster-admin", rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: adminGroup}); err != nil {
		return nil, nil, err
	}
	for _, u := range []struct {
		name  string
		rules []rbacv1.PolicyRule
		cfg   **rest.Config
	}{
		{managerUser, append(managerOwnRules(), managerImpersonationRules()...), &requesterMode},
		{controllerModeUser, controllerModeRules(), &controllerMode},
	} {
		user, err := env.AddUser(envtest.User{Name: u.name}, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("add user %s: %w", u.name, err)
		}
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: u.name}, Rules: u.rules}
		if err := admin.Create(ctx, role); err != nil {
			return nil, nil, fmt.Errorf("create cluster role %s: %w", u.name, err)
		}
		if err := bindCluster(ctx, admin, u.name, u.name, rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: u.name}); err != nil {
			return nil, nil, err
		}
		*u.cfg = user.Config()
	}
	return requesterMode, controllerMode, nil
}

// newRequester makes a user who holds nsRules in ns and clusterRules
// cluster-wide, and nothing else (beyond what every authenticated user
// has), and returns them as a Task's requester. The name is made unique
// by ns.
func newRequester(t *testing.T, ns, name string, nsRules, clusterRules []rbacv1.PolicyRule) *v1alpha1.Requester {
	t.Helper()
	user := name + "@" + ns
	subject := rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}
	if len(nsRules) > 0 {
		mustCreate(t, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: nsRules})
		mustCreate(t, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}, Subjects: []rbacv1.Subject{subject}})
	}
	if len(clusterRules) > 0 {
		mustCreate(t, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name}, Rules: clusterRules})
		if err := bindCluster(t.Context(), k8sClient, ns+"-"+name, ns+"-"+name, subject); err != nil {
			t.Fatal(err)
		}
	}
	return &v1alpha1.Requester{Username: user, Groups: []string{"test:requesters"}}
}

func bindCluster(ctx context.Context, c client.Client, name, role string, subject rbacv1.Subject) error {
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role}, Subjects: []rbacv1.Subject{subject}}
	if err := c.Create(ctx, crb); err != nil {
		return fmt.Errorf("create cluster role binding %s: %w", name, err)
	}
	return nil
}
