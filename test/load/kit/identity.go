package kit

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/astronetes/taskgate/test/testutil"
)

// AdminGroup is the group kubeadm (since 1.29) binds to cluster-admin for
// its admin.conf, instead of system:masters. Tasks are created by a member:
// the manager can impersonate it (constrained impersonation refuses to
// impersonate system:masters, the group of envtest's own admin).
const AdminGroup = "kubeadm:cluster-admins"

// ManagerUser is the manager's user in the benchmarks and drills: an
// ordinary user holding RequesterModeRole, so that its impersonated
// requests go through constrained impersonation as in production (a
// system:masters client would take the legacy path).
const ManagerUser = "taskgate-manager"

// TransformationRules are the chart value transformationRules the harness
// renders the manager's ClusterRole with (the chart's defaults): what a
// transformation may list and patch.
var TransformationRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets"}},
	{APIGroups: []string{""}, Resources: []string{"configmaps"}},
}

// requesterModeValues are the chart values of RequesterModeRole.
// certs.mode=cert-manager leaves out the built-in rotator's
// webhook-configuration rules: the harness brings its own certificates.
func requesterModeValues() (string, error) {
	values, err := json.Marshal(map[string]any{
		"actAs":               "requester",
		"certs":               map[string]string{"mode": "cert-manager"},
		"transformationRules": testutil.ChartRules(TransformationRules),
	})
	return string(values), err
}

// RequesterModeRole is the manager's ClusterRole in --act-as=requester mode
// as the chart at root renders it (helm template, offline; one source of
// truth: charts/taskgate/templates/rbac.yaml, no copy here to drift), with
// TransformationRules: its own rights (none of them lends a requester
// anything) and the constrained-impersonation rules for the children it
// writes as the requester. The role is named ManagerUser.
func RequesterModeRole(ctx context.Context, root string) (*rbacv1.ClusterRole, error) {
	values, err := requesterModeValues()
	if err != nil {
		return nil, err
	}
	role, err := testutil.ChartClusterRole(ctx, testutil.HelmPath(), filepath.Join(root, "charts", "taskgate"), values)
	if err != nil {
		return nil, fmt.Errorf("render the chart's manager ClusterRole: %w", err)
	}
	role.ObjectMeta = metav1.ObjectMeta{Name: ManagerUser}
	return role, nil
}

// AddAdmin adds a user in AdminGroup, bound to cluster-admin through that
// group as kubeadm binds it (ClusterRoleBinding kubeadm:cluster-admins).
func (cp *ControlPlane) AddAdmin(ctx context.Context, name string) (*testutil.Identity, error) {
	return cp.ControlPlane.AddAdmin(ctx, name, AdminGroup)
}

// AddManager adds ManagerUser bound to RequesterModeRole (ClusterRole and
// ClusterRoleBinding "taskgate-manager").
func (cp *ControlPlane) AddManager(ctx context.Context) (*testutil.Identity, error) {
	values, err := requesterModeValues()
	if err != nil {
		return nil, err
	}
	return cp.AddChartUser(ctx, ManagerUser, values)
}
