package helm_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

// managerBinary builds cmd/taskgate as the Dockerfile does, once per package.
func managerBinary(t *testing.T) string {
	return testutil.TaskgateBinary(t, repoRoot(), helmHome(t))
}

// managerRun says which chart configuration the manager runs with.
type managerRun struct {
	singleCall bool
	actAs      string // requester or controller
}

// checkManagerWithChartRBAC runs the real manager with the chart's
// arguments (the mode's), as the chart's ServiceAccount with a token from the
// TokenRequest API, so that it holds exactly the installed RBAC and nothing
// more: impersonating the ServiceAccount from the admin kubeconfig would not
// do, because an impersonated client's own impersonation headers replace the
// admin's, and the admin is in system:masters. The rotator must fill the
// Secret and the caBundles of the mode's configurations, leader election
// must win its Lease and every controller cache must sync without a
// Forbidden; in requester mode the start-up probe must find that
// constrained impersonation works. Outside single-call mode it then removes
// the webhook configurations (envtest cannot route to the webhook Service)
// and runs Tasks: checkActsAsRequester or checkBindForbidden.
func checkManagerWithChartRBAC(ctx context.Context, t *testing.T, c client.Client, adminKubeconfig string, run managerRun) {
	bin := managerBinary(t)
	kc := serviceAccountKubeconfig(ctx, t, c, adminKubeconfig, releaseNS, "taskgate")
	webhookPort, healthPort := testutil.MustFreePort(t), testutil.MustFreePort(t)
	certDir := t.TempDir()
	kubeletCtx, stopKubelet := context.WithCancel(ctx)
	defer stopKubelet()
	testutil.MountSecret(kubeletCtx, t, env.Config, client.ObjectKey{Namespace: releaseNS, Name: "taskgate-webhook-cert"}, certDir, 0)
	validating := "taskgate-validating"
	if run.singleCall {
		validating = ""
	}
	mgr, err := testutil.StartProcess(bin, kc, nil, "manager", "--leader-elect", "--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(healthPort), "--webhook-port="+strconv.Itoa(webhookPort),
		"--cert-dir="+certDir, "--cert-rotation", "--namespace="+releaseNS,
		"--cert-secret-name=taskgate-webhook-cert", "--webhook-service-name=taskgate-webhook",
		"--mutating-webhook-configuration=taskgate-mutating", "--validating-webhook-configuration="+validating,
		"--access-review-cache-ttl=10s", "--act-as="+run.actAs, "--preflight=true", "--log-format=json")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		mgr.Stop(20 * time.Second)
		if t.Failed() {
			t.Logf("manager log:\n%s", mgr.Output())
		}
	}()

	ready := "http://127.0.0.1:" + strconv.Itoa(healthPort) + "/readyz"
	if err := mgr.WaitFor(90*time.Second, func(out string) error {
		if status := httpStatus(ready); status != http.StatusOK || !strings.Contains(out, `"msg":"Starting workers"`) {
			return fmt.Errorf("manager not ready (%s: %d) with controller workers started", ready, status)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	text := mgr.Output()
	if strings.Contains(strings.ToLower(text), "forbidden") {
		t.Error("the manager hit Forbidden with the chart's RBAC")
	}
	const probeOK = "constrained impersonation works"
	if got := strings.Contains(text, probeOK); got != (run.actAs == "requester") {
		t.Errorf("actAs=%s: start-up log says %q: %v", run.actAs, probeOK, got)
	}
	var secret corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: "taskgate-webhook-cert"}, &secret); err != nil || len(secret.Data["tls.crt"]) == 0 {
		t.Errorf("the rotator did not fill the Secret: %v", err)
	}
	var mw admissionv1.MutatingWebhookConfiguration
	var vw admissionv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: "taskgate-mutating"}, &mw); err != nil || slices.ContainsFunc(mw.Webhooks, func(h admissionv1.MutatingWebhook) bool { return len(h.ClientConfig.CABundle) == 0 }) {
		t.Errorf("no caBundle injected into every webhook of taskgate-mutating: %v", err)
	}
	if run.singleCall {
		if text := mgr.Output(); strings.Contains(text, "Webhook not found") {
			t.Error("single-call mode: the rotator looks for a webhook configuration the chart does not render")
		}
		return
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "taskgate-validating"}, &vw); err != nil || slices.ContainsFunc(vw.Webhooks, func(h admissionv1.ValidatingWebhook) bool { return len(h.ClientConfig.CABundle) == 0 }) {
		t.Errorf("no caBundle injected into every webhook of taskgate-validating: %v", err)
	}
	// The webhook Service does not run in envtest, so the configurations go
	// (helm upgrade puts them back); the admission side is tested in
	// test/admission.
	if err := c.Delete(ctx, &mw); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, &vw); err != nil {
		t.Fatal(err)
	}
	if run.actAs == "requester" {
		checkActsAsRequester(ctx, t, c, adminKubeconfig)
		return
	}
	checkBindForbidden(ctx, t, c, adminKubeconfig)
}

// checkBindForbidden, actAs=controller: with the default (empty)
// allowedClusterRoles the chart gives the manager no bind permission, so a
// run asking for cluster-admin must fail with a reason that says so, not
// hang.
func checkBindForbidden(ctx context.Context, t *testing.T, c client.Client, adminKubeconfig string) {
	t.Helper()
	ensure(ctx, t, c, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "taskgate-test-cluster-admins"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: adminsGroup}}})
	task := customImageRun("wants-cluster-admin", &v1alpha1.Requester{Username: adminUser, Groups: []string{adminsGroup, "system:authenticated"}},
		`,"clusterRole":"cluster-admin"`)
	createAsRequester(ctx, t, c, adminKubeconfig, task)
	cond := waitFailed(ctx, t, c, task, 30*time.Second)
	if cond.Reason != "BindForbidden" || !strings.Contains(cond.Message, "allowedClusterRoles") {
		t.Errorf("TaskRun failed with %s: %s; want BindForbidden naming allowedClusterRoles", cond.Reason, cond.Message)
	}
	// The finalizer goes once the failed run is cleaned up.
	testutil.EventuallyWithin(t, 10*time.Second, "the failed TaskRun's finalizers removed", func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(task), task); err != nil {
			return err
		}
		if len(task.Finalizers) > 0 {
			return fmt.Errorf("finalizers %v, want none", task.Finalizers)
		}
		return nil
	})
}

// waitFailed waits until the Task's Succeeded condition is False and returns it.
func waitFailed(ctx context.Context, t *testing.T, c client.Client, task *v1alpha1.TaskRun, timeout time.Duration) metav1.Condition {
	t.Helper()
	var cond metav1.Condition
	testutil.EventuallyWithin(t, timeout, "TaskRun "+task.Name+" failed", func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(task), task); err != nil {
			return err
		}
		c := meta.FindStatusCondition(task.Status.Conditions, v1alpha1.ConditionSucceeded)
		if c == nil || c.Status != metav1.ConditionFalse {
			return fmt.Errorf("condition %s is %+v, want status False", v1alpha1.ConditionSucceeded, c)
		}
		cond = *c
		return nil
	})
	return cond
}

// serviceAccountKubeconfig writes a kubeconfig for the API server of the
// admin kubeconfig that authenticates as a ServiceAccount with a bound token
// (TokenRequest), which is how the manager sees the API server in its Pod.
func serviceAccountKubeconfig(ctx context.Context, t *testing.T, c client.Client, admin, ns, name string) string {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}
	if err := c.SubResource("token").Create(ctx, sa, tr); err != nil {
		t.Fatalf("token for ServiceAccount %s/%s: %v", ns, name, err)
	}
	cfg, err := clientcmd.LoadFromFile(admin)
	if err != nil {
		t.Fatal(err)
	}
	for key := range cfg.AuthInfos {
		cfg.AuthInfos[key] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func httpStatus(url string) int {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}
