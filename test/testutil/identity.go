package testutil

import (
	"context"
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
)

// Identity is a user of the control plane: its config (no client-side rate
// limit), a client that reads the API server, not a cache that may lag, and
// a kubeconfig file for kubectl and subprocesses.
type Identity struct {
	Name       string
	Config     *rest.Config
	Client     client.Client
	Kubeconfig string
}

// Impersonating is a client that acts as user in groups through cfg's
// user, which must be allowed to impersonate them (an admin).
func Impersonating(cfg *rest.Config, user string, groups ...string) (client.Client, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return nil, fmt.Errorf("client impersonating %s: %w", user, err)
	}
	return c, nil
}

// AddUser adds a user authenticated by a client certificate (envtest's
// AddUser) with no rights but those of system:authenticated.
func (cp *ControlPlane) AddUser(u envtest.User) (*Identity, error) {
	au, err := cp.Env.AddUser(u, nil)
	if err != nil {
		return nil, fmt.Errorf("add user %s: %w", u.Name, err)
	}
	cfg := rest.CopyConfig(au.Config())
	cfg.QPS, cfg.Burst = 1e6, 1e6
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return nil, fmt.Errorf("client of %s: %w", u.Name, err)
	}
	kc, err := au.KubeConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig of %s: %w", u.Name, err)
	}
	path := filepath.Join(cp.Dir, "kubeconfig-"+u.Name)
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		return nil, err
	}
	return &Identity{Name: u.Name, Config: cfg, Client: c, Kubeconfig: path}, nil
}

// AddAdmin adds a user in group, bound to cluster-admin through that group
// (ClusterRoleBinding group) as kubeadm binds kubeadm:cluster-admins since
// 1.29, not through system:masters, which constrained impersonation
// refuses to act as.
func (cp *ControlPlane) AddAdmin(ctx context.Context, name, group string) (*Identity, error) {
	if err := cp.BindClusterRole(ctx, group, "cluster-admin", GroupSubject(group)); err != nil {
		return nil, err
	}
	return cp.AddUser(envtest.User{Name: name, Groups: []string{group}})
}

// AddChartUser adds user name holding exactly the manager ClusterRole that
// the chart's templates/rbac.yaml renders with values (see
// ChartClusterRole: the chart is the one source of the manager's RBAC),
// created as ClusterRole name and bound to the user.
func (cp *ControlPlane) AddChartUser(ctx context.Context, name, values string) (*Identity, error) {
	role, err := ChartClusterRole(ctx, HelmPath(), filepath.Join(RepoRoot(), "charts", "taskgate"), values)
	if err != nil {
		return nil, fmt.Errorf("render the chart's manager ClusterRole: %w", err)
	}
	role.ObjectMeta = metav1.ObjectMeta{Name: name}
	if err := cp.Client.Create(ctx, role); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create ClusterRole %s: %w", name, err)
	}
	if err := cp.BindClusterRole(ctx, name, name, UserSubject(name)); err != nil {
		return nil, err
	}
	return cp.AddUser(envtest.User{Name: name})
}

// EnsureDefaultServiceAccount creates the namespace's "default"
// ServiceAccount, as kube-controller-manager's serviceaccount controller
// does in a real cluster. envtest runs no controller-manager, and
// kube-apiserver's ServiceAccount admission refuses a Pod (also a dry-run,
// such as the webhook's preflight) whose ServiceAccount does not exist.
func (cp *ControlPlane) EnsureDefaultServiceAccount(ctx context.Context, ns string) error {
	return EnsureDefaultServiceAccount(ctx, cp.Client, ns)
}

// EnsureDefaultServiceAccount is ControlPlane.EnsureDefaultServiceAccount
// through c (cmd/taskgate-local's control plane).
func EnsureDefaultServiceAccount(ctx context.Context, c client.Client, ns string) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}}
	if err := c.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ServiceAccount %s/default: %w", ns, err)
	}
	return nil
}

// BindClusterRole binds role to subjects with a ClusterRoleBinding named
// name; one that exists already is left as it is.
func (cp *ControlPlane) BindClusterRole(ctx context.Context, name, role string, subjects ...rbacv1.Subject) error {
	return BindClusterRole(ctx, cp.Client, name, role, subjects...)
}

// BindClusterRole is ControlPlane.BindClusterRole through c
// (cmd/taskgate-local's control plane).
func BindClusterRole(ctx context.Context, c client.Client, name, role string, subjects ...rbacv1.Subject) error {
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role}, Subjects: subjects}
	if err := c.Create(ctx, crb); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("bind ClusterRole %s (ClusterRoleBinding %s): %w", role, name, err)
	}
	return nil
}

// UserSubject is an RBAC subject for a user.
func UserSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: name}
}

// GroupSubject is an RBAC subject for a group.
func GroupSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: name}
}
