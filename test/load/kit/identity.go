package kit

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

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

// Identity is a user of the control plane: its config, a client and a
// kubeconfig file for subprocesses.
type Identity struct {
	Name       string
	Config     *rest.Config
	Client     client.Client
	Kubeconfig string
}

// TransformationRules are the chart value transformationRules the harness
// renders the manager's ClusterRole with (the chart's defaults): what a
// transformation may list and patch.
var TransformationRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets"}},
	{APIGroups: []string{""}, Resources: []string{"configmaps"}},
}

// RequesterModeRole is the manager's ClusterRole in --act-as=requester mode
// as the chart at root renders it (helm template, offline; one source of
// truth: charts/taskgate/templates/rbac.yaml, no copy here to drift), with
// TransformationRules: its own rights (none of them lends a requester
// anything) and the constrained-impersonation rules for the children it
// writes as the requester. certs.mode=cert-manager leaves out the built-in
// rotator's webhook-configuration rules: the harness brings its own
// certificates. The role is named ManagerUser.
func RequesterModeRole(ctx context.Context, root string) (*rbacv1.ClusterRole, error) {
	values, err := json.Marshal(map[string]any{
		"actAs":               "requester",
		"certs":               map[string]string{"mode": "cert-manager"},
		"transformationRules": testutil.ChartRules(TransformationRules),
	})
	if err != nil {
		return nil, err
	}
	role, err := testutil.ChartClusterRole(ctx, testutil.HelmPath(), filepath.Join(root, "charts", "taskgate"), string(values))
	if err != nil {
		return nil, fmt.Errorf("render the chart's manager ClusterRole: %w", err)
	}
	role.ObjectMeta = metav1.ObjectMeta{Name: ManagerUser}
	return role, nil
}

// AddAdmin adds a user in AdminGroup, bound to cluster-admin through that
// group as kubeadm binds it (ClusterRoleBinding kubeadm:cluster-admins).
func (cp *ControlPlane) AddAdmin(ctx context.Context, name string) (*Identity, error) {
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: AdminGroup},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: AdminGroup}},
	}
	if err := cp.Client.Create(ctx, crb); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("bind cluster-admin to %s: %w", AdminGroup, err)
	}
	return cp.addUser(envtest.User{Name: name, Groups: []string{AdminGroup}})
}

// AddManager adds ManagerUser bound to RequesterModeRole (ClusterRole and
// ClusterRoleBinding "taskgate-manager").
func (cp *ControlPlane) AddManager(ctx context.Context) (*Identity, error) {
	role, err := RequesterModeRole(ctx, cp.Root)
	if err != nil {
		return nil, err
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ManagerUser},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ManagerUser},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: ManagerUser}},
	}
	for _, o := range []client.Object{role, crb} {
		if err := cp.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("manager RBAC: %w", err)
		}
	}
	return cp.addUser(envtest.User{Name: ManagerUser})
}

func (cp *ControlPlane) addUser(u envtest.User) (*Identity, error) {
	au, err := cp.Env.AddUser(u, nil)
	if err != nil {
		return nil, fmt.Errorf("add user %s: %w", u.Name, err)
	}
	cfg := rest.CopyConfig(au.Config())
	cfg.QPS, cfg.Burst = 1e6, 1e6
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return nil, err
	}
	kc, err := au.KubeConfig()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(cp.dir, "kubeconfig-"+u.Name)
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		return nil, err
	}
	return &Identity{Name: u.Name, Config: cfg, Client: c, Kubeconfig: path}, nil
}

// EnsureDefaultServiceAccount creates the namespace's "default"
// ServiceAccount, as kube-controller-manager's serviceaccount controller
// does in a real cluster. envtest runs no controller-manager, and
// kube-apiserver's ServiceAccount admission refuses a Pod (also a dry-run,
// such as the webhook's preflight) whose ServiceAccount does not exist.
func (cp *ControlPlane) EnsureDefaultServiceAccount(ctx context.Context, ns string) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}}
	if err := cp.Client.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ServiceAccount %s/default: %w", ns, err)
	}
	return nil
}
