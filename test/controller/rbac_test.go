package controller_test

import (
	"context"
	"encoding/json"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

// The manager runs as a user outside system:masters, holding exactly the
// chart's ClusterRole: a masters identity would impersonate anyone through
// the legacy impersonation path and prove nothing about the constrained one.
const (
	managerUser        = "taskgate-manager"
	controllerModeUser = "taskgate-manager-controller-mode"
	adminGroup         = "test:cluster-admins"
	scopeTestGroup     = "scope.example.com"
)

// adminRequester is an administrator as kubeadm makes them since 1.29:
// cluster-admin through an ordinary group, not system:masters. Tests whose
// point is not who may do what create their runs as this requester.
var adminRequester = &v1alpha1.Requester{Username: "test-admin", Groups: []string{adminGroup}}

// transformationRules are the harness's chart value transformationRules:
// the chart's defaults plus what the tests transform.
var transformationRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets"}},
	{APIGroups: []string{""}, Resources: []string{"configmaps", "namespaces"}},
	{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles"}},
	{APIGroups: []string{scopeTestGroup}, Resources: []string{"*"}},
}

// chartValues are the chart values of the manager for actAs (one source of
// truth: charts/taskgate/templates/rbac.yaml, no copy here to drift) with
// the harness's transformationRules. Both halves run as in an
// installation; certs.mode=cert-manager leaves out the built-in rotator's
// webhook-configuration rules, since envtest serves the certificates.
// allowedClusterRoles stays the chart's default (empty): no controller-mode
// test binds a ClusterRole, so that manager holds no bind.
func chartValues(actAs actas.Mode) (string, error) {
	values, err := json.Marshal(map[string]any{
		"actAs":               string(actAs),
		"certs":               map[string]string{"mode": "cert-manager"},
		"transformationRules": testutil.ChartRules(transformationRules),
	})
	return string(values), err
}

// setUpIdentities creates the admin group's binding and the two manager
// users, each holding the chart's ClusterRole for its mode, returning the
// managers' configs.
func setUpIdentities(cp *testutil.ControlPlane) (requesterMode, controllerMode *rest.Config, err error) {
	ctx := context.Background()
	if err := cp.BindClusterRole(ctx, "test-cluster-admins", "cluster-admin", testutil.GroupSubject(adminGroup)); err != nil {
		return nil, nil, err
	}
	for _, u := range []struct {
		name  string
		actAs actas.Mode
		cfg   **rest.Config
	}{
		{managerUser, actas.ModeRequester, &requesterMode},
		{controllerModeUser, actas.ModeController, &controllerMode},
	} {
		values, err := chartValues(u.actAs)
		if err != nil {
			return nil, nil, err
		}
		id, err := cp.AddChartUser(ctx, u.name, values)
		if err != nil {
			return nil, nil, err
		}
		*u.cfg = id.Config
	}
	return requesterMode, controllerMode, nil
}

// newRequester makes a user who holds nsRules in ns and clusterRules
// cluster-wide, and nothing else (beyond what every authenticated user
// has), and returns them as a run's requester. The name is made unique
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
		if err := cp.BindClusterRole(t.Context(), ns+"-"+name, ns+"-"+name, subject); err != nil {
			t.Fatal(err)
		}
	}
	return &v1alpha1.Requester{Username: user, Groups: []string{"test:requesters"}}
}
