package main

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	for _, obj := range append(policy, role) {
		if err := cp.client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %T %s: %w", obj, obj.GetName(), err)
		}
	}
	if err := testutil.BindClusterRole(ctx, cp.client, adminsGroup, "cluster-admin", testutil.GroupSubject(adminsGroup)); err != nil {
		return err
	}
	return testutil.BindClusterRole(ctx, cp.client, role.Name, role.Name, testutil.UserSubject(managerUser))
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
