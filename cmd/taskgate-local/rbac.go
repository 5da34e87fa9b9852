package main

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/test/testutil"
)

// Who is who on the local cluster. Neither the admin nor the manager is in
// system:masters: constrained impersonation refuses to impersonate that
// group, so an admin in it would act without it, and a manager in it would
// impersonate anyone through the legacy path and prove nothing about the
// chart's rules.
const (
	// adminUser is the user of the kubeconfig left for the user, bound to
	// cluster-admin through adminsGroup, as kubeadm does since 1.29.
	adminUser   = "admin"
	adminsGroup = "kubeadm:cluster-admins"
	// managerUser is the manager's own identity, holding exactly the chart's
	// ClusterRole for actAs=requester.
	managerUser = "taskgate-manager"
)

// grantRBAC binds cluster-admin to adminsGroup and the chart's manager
// ClusterRole to managerUser, and installs the chart's requester policy. The ClusterRole is rendered from the chart
// itself (helm template, offline), so `make run` runs the manager with the
// very rules an installation gets, with no second copy to drift.
func grantRBAC(ctx context.Context, o options, cp *controlPlane) error {
	role, policy, err := chartObjects(ctx, o)
	if err != nil {
		return err
	}
	objs := append(policy, []client.Object{
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: adminsGroup},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: adminsGroup}},
		},
		role,
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: managerUser}},
		},
	}...)
	for _, obj := range objs {
		if err := cp.client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %T %s: %w", obj, obj.GetName(), err)
		}
	}
	return nil
}

// chartObjects renders the chart's manager ClusterRole, its requester
// policy (a ValidatingAdmissionPolicy and its binding) and the ClusterRoles
// that add Tasks to edit/view/admin, as `make run`
// runs the manager: both halves, actAs=requester, preflight on, and no
// built-in certificate rotator (envtest provides the serving certificate;
// certs.mode=cert-manager is the chart's way of saying "not the rotator",
// so the rotator's webhook-configuration rules are left out).
func chartObjects(ctx context.Context, o options) (*rbacv1.ClusterRole, []client.Object, error) {
	// fullnameOverride: the objects are named taskgate-local-*, never as
	// a release called taskgate names its own, so `helm install taskgate
	// charts/taskgate` into this cluster finds nothing in its way.
	const values = "fullnameOverride: taskgate-local\nactAs: requester\nwebhook:\n  preflight: true\ncerts:\n  mode: cert-manager\n"
	role, err := testutil.ChartClusterRole(ctx, o.helm(), o.chartDir, values)
	if err != nil {
		return nil, nil, fmt.Errorf("render the chart's RBAC: %w", err)
	}
	rendered, err := testutil.Render(ctx, o.helm(), o.chartDir, values, "templates/requester-policy.yaml")
	if err != nil {
		return nil, nil, fmt.Errorf("render the chart's requester policy: %w", err)
	}
	// The ClusterRoles that add Tasks to edit/view/admin by aggregation.
	aggregate, err := testutil.Render(ctx, o.helm(), o.chartDir, values, "templates/aggregate-roles.yaml")
	if err != nil {
		return nil, nil, fmt.Errorf("render the chart's aggregated ClusterRoles: %w", err)
	}
	rendered = append(rendered, aggregate...)
	policy := make([]client.Object, len(rendered))
	for i := range rendered {
		policy[i] = &rendered[i]
	}
	return role, policy, nil
}

// ensureDefaultServiceAccount creates the namespace's "default"
// ServiceAccount, which kube-controller-manager's ServiceAccount controller
// creates in a real cluster; with --nodes=false there is none, and with it
// the controller may not have got there yet. A Pod (or a server-side dry-run
// of one, as preflight sends) that names no ServiceAccount is refused
// without it.
func ensureDefaultServiceAccount(ctx context.Context, cp *controlPlane, ns string) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}}
	if err := cp.client.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ServiceAccount %s/default: %w", ns, err)
	}
	return nil
}
