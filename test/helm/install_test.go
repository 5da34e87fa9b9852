package helm_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/webhook"
)

const syncCRD = "synchronizations.automation.astronetes.io"

// TestInstall applies dist/install.yaml with a server-side dry run, then
// installs the chart for real into a kube-apiserver (no nodes, so no --wait:
// Pods never start) and checks what it created and what the manager may do.
func TestInstall(t *testing.T) {
	c, kc := cluster(t)
	ctx := t.Context()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: releaseNS}}); err != nil {
		t.Fatal(err)
	}

	t.Run("dist dry-run", func(t *testing.T) {
		// The Namespace exists, so the namespaced objects are validated too
		// (a dry run creates nothing they could land in).
		for _, args := range [][]string{
			{"apply", "--dry-run=server", "-f", filepath.Join(repoRoot(), "dist", "install.yaml")},
			{"create", "--dry-run=server", "-f", filepath.Join(repoRoot(), "dist", "synchronization-crd.yaml")},
		} {
			out, err := kubectl(kc, args...)
			if err != nil {
				t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			if !strings.Contains(out, "(server dry run)") {
				t.Errorf("kubectl %s printed no server dry run result:\n%s", args[0], out)
			}
		}
	})

	t.Run("helm install", func(t *testing.T) {
		if out, err := helm(t, "install", releaseName, chartDir(), "--namespace", releaseNS, "--kubeconfig", kc); err != nil {
			t.Fatalf("helm install: %v\n%s", err, out)
		}
		checkInstalled(ctx, t, c)
		crd := getCRD(ctx, t, c, syncCRD)
		if crd == nil || crd.Annotations["meta.helm.sh/release-name"] != releaseName || crd.Annotations["helm.sh/resource-policy"] != "keep" {
			t.Fatalf("auto on a cluster without it: want the Synchronization CRD installed by the release and kept, got %+v", crd)
		}
	})

	sa := "system:serviceaccount:" + releaseNS + ":taskgate"
	t.Run("manager permissions", func(t *testing.T) {
		// The default actAs=requester: the manager may not create Pods,
		// bindings or Synchronizations, bind roles or patch targets as
		// itself, only send those requests as someone else (impersonate-on),
		// and the legacy impersonate verb, which would let it be anyone for
		// anything, is not granted.
		checkPermissions(ctx, t, c, sa, append(commonPermissions(),
			permission{"shop", "", "pods", "", "create", false},
			permission{"shop", "", "pods", "", "impersonate-on:user-info:create", true},
			permission{"shop", "", "pods", "", "impersonate-on:serviceaccount:create", true},
			permission{"shop", "", "pods", "", "impersonate-on:user-info:delete", false},
			permission{"shop", "", "pods", "", "delete", true},
			permission{"", "rbac.authorization.k8s.io", "clusterrolebindings", "", "create", false},
			permission{"", "rbac.authorization.k8s.io", "clusterrolebindings", "", "impersonate-on:user-info:create", true},
			permission{"", "rbac.authorization.k8s.io", "clusterrolebindings", "", "delete", true},
			permission{"", "rbac.authorization.k8s.io", "clusterroles", "view", "bind", false},
			permission{"shop", "apps", "deployments", "web", "patch", false},
			permission{"shop", "apps", "deployments", "web", "impersonate-on:user-info:patch", true},
			permission{"shop", "apps", "deployments", "", "impersonate-on:serviceaccount:list", true},
			permission{"shop", "apps", "deployments", "web", "impersonate-on:user-info:delete", false},
			permission{"shop", "", "secrets", "", "impersonate-on:user-info:get", false},
			permission{"shop", "automation.astronetes.io", "synchronizations", "", "create", false},
			permission{"shop", "automation.astronetes.io", "synchronizations", "", "impersonate-on:user-info:create", true},
			permission{"", "authentication.k8s.io", "users", "alice", "impersonate:user-info", true},
			permission{"", "authentication.k8s.io", "userextras", "anything", "impersonate:user-info", true},
			permission{"", "authentication.k8s.io", "users", "alice", "impersonate", false},
			permission{"", "", "users", "alice", "impersonate", false},
			permission{"", "", "groups", "system:masters", "impersonate", false},
		))
	})

	t.Run("real manager with the chart's RBAC", func(t *testing.T) {
		checkManagerWithChartRBAC(ctx, t, c, kc, managerRun{actAs: "requester"})
	})

	t.Run("upgrade to single-call mode", func(t *testing.T) {
		if out, err := helm(t, "upgrade", releaseName, chartDir(), "--namespace", releaseNS, "--kubeconfig", kc,
			"--set", "webhook.singleCall=true"); err != nil {
			t.Fatalf("helm upgrade: %v\n%s", err, out)
		}
		var mw admissionv1.MutatingWebhookConfiguration
		if err := c.Get(ctx, client.ObjectKey{Name: "taskgate-mutating"}, &mw); err != nil {
			t.Fatal(err)
		}
		if h := mw.Webhooks; len(h) != 1 || h[0].ClientConfig.Service == nil || h[0].ClientConfig.Service.Path == nil ||
			*h[0].ClientConfig.Service.Path != webhook.AdmitPath || h[0].ReinvocationPolicy == nil ||
			*h[0].ReinvocationPolicy != admissionv1.IfNeededReinvocationPolicy {
			t.Errorf("mutating webhooks %+v, want one calling %s with reinvocationPolicy IfNeeded", h, webhook.AdmitPath)
		}
		err := c.Get(ctx, client.ObjectKey{Name: "taskgate-validating"}, &admissionv1.ValidatingWebhookConfiguration{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("validating webhook configuration in single-call mode: %v", err)
		}
		if allowed(ctx, t, c, sa, "", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "taskgate-validating", "update") {
			t.Error("single-call mode: the manager may still update a validating configuration")
		}
		checkManagerWithChartRBAC(ctx, t, c, kc, managerRun{singleCall: true, actAs: "requester"})
	})

	t.Run("upgrade to actAs=controller", func(t *testing.T) {
		if out, err := helm(t, "upgrade", releaseName, chartDir(), "--namespace", releaseNS, "--kubeconfig", kc,
			"--set", "actAs=controller"); err != nil {
			t.Fatalf("helm upgrade: %v\n%s", err, out)
		}
		// Today's rules: the manager holds the children's rights itself, and
		// no impersonation at all.
		checkPermissions(ctx, t, c, sa, append(commonPermissions(),
			permission{"shop", "", "pods", "", "create", true},
			permission{"", "rbac.authorization.k8s.io", "clusterrolebindings", "", "create", true},
			permission{"", "rbac.authorization.k8s.io", "clusterroles", "view", "bind", false},
			permission{"shop", "apps", "deployments", "web", "patch", true},
			permission{"shop", "automation.astronetes.io", "synchronizations", "", "create", true},
			permission{"shop", "", "pods", "", "impersonate-on:user-info:create", false},
			permission{"", "authentication.k8s.io", "users", "alice", "impersonate:user-info", false},
		))
		checkManagerWithChartRBAC(ctx, t, c, kc, managerRun{actAs: "controller"})
	})

	t.Run("second release with an allow-list", func(t *testing.T) {
		// actAs=controller: only there does the allow-list become the
		// manager's own bind rule.
		out, err := helm(t, "install", "other", chartDir(), "--namespace", "other-system", "--create-namespace",
			"--kubeconfig", kc, "--set", "actAs=controller", "--set", "allowedClusterRoles={view}")
		if err != nil {
			t.Fatalf("helm install: %v\n%s", err, out)
		}
		// auto must leave a Synchronization CRD it does not own alone.
		if crd := getCRD(ctx, t, c, syncCRD); crd == nil || crd.Annotations["meta.helm.sh/release-name"] != releaseName {
			t.Errorf("the second release took over the Synchronization CRD: %+v", crd)
		}
		other := "system:serviceaccount:other-system:other-taskgate"
		if !allowed(ctx, t, c, other, "", "rbac.authorization.k8s.io", "clusterroles", "view", "bind") {
			t.Error("the allow-listed ClusterRole view cannot be bound")
		}
		if allowed(ctx, t, c, other, "", "rbac.authorization.k8s.io", "clusterroles", "cluster-admin", "bind") {
			t.Error("a ClusterRole outside the allow-list can be bound")
		}
	})

	t.Run("upgrade and uninstall keep the Synchronization CRD", func(t *testing.T) {
		if out, err := helm(t, "upgrade", releaseName, chartDir(), "--namespace", releaseNS, "--kubeconfig", kc); err != nil {
			t.Fatalf("helm upgrade: %v\n%s", err, out)
		}
		if crd := getCRD(ctx, t, c, syncCRD); crd == nil {
			t.Fatal("helm upgrade removed the Synchronization CRD the release installed")
		}
		if out, err := helm(t, "uninstall", releaseName, "--namespace", releaseNS, "--kubeconfig", kc); err != nil {
			t.Fatalf("helm uninstall: %v\n%s", err, out)
		}
		if crd := getCRD(ctx, t, c, syncCRD); crd == nil {
			t.Error("helm uninstall deleted the Synchronization CRD (and with it every Synchronization)")
		}
		err := c.Get(ctx, client.ObjectKey{Name: "taskgate-validating"}, &admissionv1.ValidatingWebhookConfiguration{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("webhook configuration after uninstall: %v", err)
		}
	})
}

// checkInstalled asserts the objects the default install must create.
func checkInstalled(ctx context.Context, t *testing.T, c client.Client) {
	t.Helper()
	var d appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: "taskgate"}, &d); err != nil {
		t.Fatalf("Deployment: %v", err)
	}
	if *d.Spec.Replicas != 2 {
		t.Errorf("Deployment replicas %d", *d.Spec.Replicas)
	}
	var mw admissionv1.MutatingWebhookConfiguration
	var vw admissionv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: "taskgate-mutating"}, &mw); err != nil {
		t.Errorf("MutatingWebhookConfiguration: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "taskgate-validating"}, &vw); err != nil {
		t.Errorf("ValidatingWebhookConfiguration: %v", err)
	}
	var svc corev1.Service
	if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: "taskgate-webhook"}, &svc); err != nil {
		t.Errorf("Service: %v", err)
	}
	if len(vw.Webhooks) == 1 {
		checkWebhooks(t, &mw, &vw, &svc)
	}
	for _, obj := range []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNS, Name: "taskgate"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNS, Name: "taskgate-webhook-cert"}},
		&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNS, Name: "taskgate"}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "taskgate-manager"}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "taskgate-manager"}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNS, Name: "taskgate-manager"}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNS, Name: "taskgate-manager"}},
	} {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Errorf("%T %s: %v", obj, obj.GetName(), err)
		}
	}
	crd := getCRD(ctx, t, c, "tasks.automation.astronetes.io")
	if crd == nil {
		t.Fatal("the Task CRD from crds/ was not installed")
	}
	established := false
	for _, cond := range crd.Status.Conditions {
		established = established || (cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue)
	}
	if !established {
		t.Errorf("Task CRD not established: %+v", crd.Status.Conditions)
	}
}

// permission is one question for the API server's authorizer.
type permission struct {
	ns, group, resource, name, verb string
	want                            bool
}

// commonPermissions hold in both actAs modes.
func commonPermissions() []permission {
	return []permission{
		{"", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "taskgate-validating", "update", true},
		{"", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "taskgate-mutating", "patch", true},
		{"", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "someone-elses", "update", false},
		{"", "rbac.authorization.k8s.io", "clusterroles", "cluster-admin", "bind", false},
		{releaseNS, "", "secrets", "taskgate-webhook-cert", "update", true},
		{"kube-system", "", "secrets", "", "get", false},
		{"shop", "", "serviceaccounts", "", "create", true},
		{"shop", "apps", "deployments", "web", "delete", false},
		{"shop", "automation.astronetes.io", "synchronizations", "", "delete", false},
		{releaseNS, "coordination.k8s.io", "leases", "", "create", true},
		{"shop", "coordination.k8s.io", "leases", "", "create", false},
		{"", "authentication.k8s.io", "selfsubjectreviews", "", "create", true},
	}
}

func checkPermissions(ctx context.Context, t *testing.T, c client.Client, user string, perms []permission) {
	t.Helper()
	for _, p := range perms {
		if got := allowed(ctx, t, c, user, p.ns, p.group, p.resource, p.name, p.verb); got != p.want {
			t.Errorf("%s %s %s/%s in %q: allowed=%v, want %v", p.verb, p.group, p.resource, p.name, p.ns, got, p.want)
		}
	}
}

func getCRD(ctx context.Context, t *testing.T, c client.Client, name string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	var crd apiextensionsv1.CustomResourceDefinition
	err := c.Get(ctx, client.ObjectKey{Name: name}, &crd)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("get CRD %s: %v", name, err)
	}
	return &crd
}

// allowed asks the API server's RBAC authorizer whether a ServiceAccount may do something.
func allowed(ctx context.Context, t *testing.T, c client.Client, user, ns, group, resource, name, verb string) bool {
	t.Helper()
	parts := strings.Split(user, ":")
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + parts[2], "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: ns, Group: group, Resource: resource, Name: name, Verb: verb,
		},
	}}
	if err := c.Create(ctx, sar); err != nil {
		t.Fatalf("SubjectAccessReview: %v", err)
	}
	return sar.Status.Allowed
}

func kubectl(kc string, args ...string) (string, error) {
	out, err := exec.Command(filepath.Join(assetsDir(), "kubectl"), append([]string{"--kubeconfig", kc}, args...)...).CombinedOutput()
	return string(out), err
}
