package helm_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

// The admin of these tests is bound to cluster-admin through an ordinary
// group, as kubeadm does since 1.29 (kubeadm:cluster-admins), not through
// system:masters, which constrained impersonation refuses to impersonate.
const (
	adminUser   = "taskgate-test-admin"
	adminsGroup = "kubeadm:cluster-admins"
	// tasksOnlyUser may create Tasks in default and nothing else.
	tasksOnlyUser = "taskgate-test-tasks-only"
)

// checkActsAsRequester, actAs=requester: the manager holds no pods create,
// no clusterrolebindings create and no bind (TestInstall's permission
// table), so an admin's custom-image run with a clusterRole gets its Pod
// and binding only because the manager sent them as the admin through the
// chart's impersonate rules; a run whose requester may do nothing fails
// with the API server's Forbidden and gets no Pod.
//
// No webhook runs here (see checkManagerWithChartRBAC), so spec.requester
// and spec.taskSpec are written into the TaskRun (one-off runs) as the
// mutating webhook would record them at admission.
func checkActsAsRequester(ctx context.Context, t *testing.T, c client.Client, adminKubeconfig string) {
	t.Helper()
	ensure(ctx, t, c, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "taskgate-test-cluster-admins"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: adminsGroup}}})
	// Pods that name no ServiceAccount get "default", which
	// kube-controller-manager creates in every namespace; envtest runs none.
	ensure(ctx, t, c, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "default"}})

	ensure(ctx, t, c, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "taskgate-test-tasks-only"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"tasks", "taskruns"}, Verbs: []string{"create", "get"}}}})
	ensure(ctx, t, c, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "taskgate-test-tasks-only"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "taskgate-test-tasks-only"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: tasksOnlyUser}}})

	admin := &v1alpha1.Requester{Username: adminUser, Groups: []string{adminsGroup, "system:authenticated"}}
	ok := customImageRun("as-admin", admin, `,"clusterRole":"view"`)
	nobody := customImageRun("as-nobody", &v1alpha1.Requester{Username: tasksOnlyUser, Groups: []string{"system:authenticated"}}, "")
	for _, task := range []*v1alpha1.TaskRun{ok, nobody} {
		createAsRequester(ctx, t, c, adminKubeconfig, task)
	}

	t.Run("admin's run gets its Pod and binding", func(t *testing.T) {
		var pod corev1.Pod
		var crb rbacv1.ClusterRoleBinding
		testutil.Eventually(t, "the admin's run's Pod and binding", func() error {
			podErr := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: v1alpha1.PodName(ok.Name)}, &pod)
			crbErr := c.Get(ctx, client.ObjectKey{Name: v1alpha1.ClusterRoleBindingName("default", ok.Name)}, &crb)
			if podErr == nil && crbErr == nil {
				return nil
			}
			_ = c.Get(ctx, client.ObjectKeyFromObject(ok), ok)
			if cond := meta.FindStatusCondition(ok.Status.Conditions, v1alpha1.ConditionSucceeded); cond != nil && cond.Status == metav1.ConditionFalse {
				t.Fatalf("the admin's run failed: %s: %s (the controller must create the Pod and binding as the requester)", cond.Reason, cond.Message)
			}
			return fmt.Errorf("pod %v, binding %v; TaskRun phase %q, message %q", podErr, crbErr, ok.Status.Phase, ok.Status.Message)
		})
		if crb.RoleRef.Name != "view" || crb.Labels[v1alpha1.TaskRunUIDLabel] != string(ok.UID) {
			t.Errorf("binding %s: role %s, labels %v; want view and the TaskRun's UID", crb.Name, crb.RoleRef.Name, crb.Labels)
		}
	})

	t.Run("a requester without rights gets nothing", func(t *testing.T) {
		cond := waitFailed(ctx, t, c, nobody, 30*time.Second)
		if !strings.Contains(strings.ToLower(cond.Message), "forbidden") || !strings.Contains(cond.Message, tasksOnlyUser) {
			t.Errorf("TaskRun failed with %s: %s; want the API server's Forbidden for %s", cond.Reason, cond.Message, tasksOnlyUser)
		}
		err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: v1alpha1.PodName(nobody.Name)}, &corev1.Pod{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("Pod of the run of a user who may not create Pods: %v", err)
		}
	})

	// Deleting the runs while the manager runs: it removes the finalizer and
	// the binding as itself (delete is its own right).
	for _, task := range []*v1alpha1.TaskRun{ok, nobody} {
		if err := c.Delete(ctx, task); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, "the deleted TaskRun and its binding gone", func() error {
		errTask := c.Get(ctx, client.ObjectKeyFromObject(ok), &v1alpha1.TaskRun{})
		errCRB := c.Get(ctx, client.ObjectKey{Name: v1alpha1.ClusterRoleBindingName("default", ok.Name)}, &rbacv1.ClusterRoleBinding{})
		if apierrors.IsNotFound(errTask) && apierrors.IsNotFound(errCRB) {
			return nil
		}
		return fmt.Errorf("TaskRun %v, binding %v; want both NotFound", errTask, errCRB)
	})
}

// customImageRun is a one-off custom-image TaskRun of requester.
func customImageRun(name string, requester *v1alpha1.Requester, extra string) *v1alpha1.TaskRun {
	run := &v1alpha1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1alpha1.TaskRunSpec{TaskSpec: &v1alpha1.PluginSpec{Plugin: v1alpha1.PluginCustomImage}, Requester: requester}}
	run.Spec.TaskSpec.Config.Raw = []byte(`{"image":"busybox:1.36","command":["echo"]` + extra + `}`)
	return run
}

// createAsRequester creates a TaskRun as the user its spec.requester names,
// by impersonation from the admin kubeconfig: the chart's requester policy
// stores a TaskRun only if spec.requester is its creator.
func createAsRequester(ctx context.Context, t *testing.T, c client.Client, adminKubeconfig string, task *v1alpha1.TaskRun) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", adminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	r := task.Spec.Requester
	cfg.Impersonate = rest.ImpersonationConfig{UserName: r.Username, UID: r.UID, Groups: r.Groups, Extra: r.Extra}
	as, err := client.New(cfg, client.Options{Scheme: c.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := as.Create(ctx, task); err != nil {
		t.Fatalf("create TaskRun %s as %s: %v", task.Name, r.Username, err)
	}
}

// ensure creates obj; AlreadyExists is fine.
func ensure(ctx context.Context, t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}
