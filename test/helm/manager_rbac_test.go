package helm_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

var (
	managerOnce sync.Once
	managerPath string
	managerErr  error
)

// managerBinary builds cmd/taskgate as the Dockerfile does, once per package.
func managerBinary(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(repoRoot(), "cmd", "taskgate")); err != nil {
		skipUnlessCI(t, "cmd/taskgate does not exist yet")
	}
	managerOnce.Do(func() {
		managerPath = filepath.Join(helmHome(t), "taskgate")
		if out, err := goCmd("build", "-trimpath", "-o", managerPath, "./cmd/taskgate"); err != nil {
			managerErr = &buildError{out: out, err: err}
		}
	})
	if managerErr != nil {
		t.Fatal(managerErr)
	}
	return managerPath
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string {
	return "go build ./cmd/taskgate: " + e.err.Error() + "\n" + e.out
}

// checkManagerWithChartRBAC runs the real manager with the chart's
// arguments (default or single-call mode), impersonating the chart's
// ServiceAccount, so that it holds exactly the installed RBAC: the rotator
// must fill the Secret and the caBundles of the mode's configurations, leader
// election must win its Lease and every controller cache must sync without a
// Forbidden. In default mode it then checks BindForbidden, which removes the
// webhook configurations.
func checkManagerWithChartRBAC(ctx context.Context, t *testing.T, c client.Client, adminKubeconfig string, singleCall bool) {
	bin := managerBinary(t)
	kc := impersonatingKubeconfig(t, adminKubeconfig, "system:serviceaccount:"+releaseNS+":taskgate", releaseNS)
	webhookPort, healthPort := freePort(t), freePort(t)
	certDir := t.TempDir()
	stopSync := mountSecret(ctx, t, c, client.ObjectKey{Namespace: releaseNS, Name: "taskgate-webhook-cert"}, certDir)
	defer stopSync()
	var log bytes.Buffer
	validating := "taskgate-validating"
	if singleCall {
		validating = ""
	}
	cmd := exec.Command(bin, "manager", "--leader-elect", "--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(healthPort), "--webhook-port="+strconv.Itoa(webhookPort),
		"--cert-dir="+certDir, "--cert-rotation", "--namespace="+releaseNS,
		"--cert-secret-name=taskgate-webhook-cert", "--webhook-service-name=taskgate-webhook",
		"--mutating-webhook-configuration=taskgate-mutating", "--validating-webhook-configuration="+validating,
		"--access-review-cache-ttl=10s", "--log-format=json")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kc)
	cmd.Stdout, cmd.Stderr = &syncWriter{w: &log}, &syncWriter{w: &log}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("manager log:\n%s", logText(&log))
		}
	}()

	ready := "http://127.0.0.1:" + strconv.Itoa(healthPort) + "/readyz"
	deadline := time.Now().Add(90 * time.Second)
	for {
		text := logText(&log)
		if httpStatus(ready) == http.StatusOK && strings.Contains(text, `"msg":"Starting workers"`) {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("manager exited: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("manager not ready with controller workers started after 90s")
		}
	}
	if text := strings.ToLower(logText(&log)); strings.Contains(text, "forbidden") {
		t.Error("the manager hit Forbidden with the chart's RBAC")
	}
	var secret corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: "taskgate-webhook-cert"}, &secret); err != nil || len(secret.Data["tls.crt"]) == 0 {
		t.Errorf("the rotator did not fill the Secret: %v", err)
	}
	var mw admissionv1.MutatingWebhookConfiguration
	var vw admissionv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: "taskgate-mutating"}, &mw); err != nil || len(mw.Webhooks[0].ClientConfig.CABundle) == 0 {
		t.Errorf("no caBundle injected into taskgate-mutating: %v", err)
	}
	if singleCall {
		if text := logText(&log); strings.Contains(text, "Webhook not found") {
			t.Error("single-call mode: the rotator looks for a webhook configuration the chart does not render")
		}
		return
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "taskgate-validating"}, &vw); err != nil || len(vw.Webhooks[0].ClientConfig.CABundle) == 0 {
		t.Errorf("no caBundle injected into taskgate-validating: %v", err)
	}
	checkBindForbidden(ctx, t, c, &mw, &vw)
}

// checkBindForbidden: with the default (empty) allowedClusterRoles the chart
// gives the manager no bind permission, so a Task asking for cluster-admin
// must fail with a reason that says so, not hang. The webhook Service does
// not run in envtest, so the webhook configurations are removed first (the
// admission side is tested in test/admission).
func checkBindForbidden(ctx context.Context, t *testing.T, c client.Client, mw *admissionv1.MutatingWebhookConfiguration, vw *admissionv1.ValidatingWebhookConfiguration) {
	t.Helper()
	if err := c.Delete(ctx, mw); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, vw); err != nil {
		t.Fatal(err)
	}
	task := &v1alpha1.Task{ObjectMeta: metav1.ObjectMeta{Name: "wants-cluster-admin", Namespace: "default"},
		Spec: v1alpha1.TaskSpec{Plugin: v1alpha1.PluginCustomImage}}
	task.Spec.Config.Raw = []byte(`{"image":"busybox:1.36","command":["echo"],"clusterRole":"cluster-admin"}`)
	if err := c.Create(ctx, task); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := c.Get(ctx, client.ObjectKeyFromObject(task), task); err != nil {
			t.Fatal(err)
		}
		if cond := meta.FindStatusCondition(task.Status.Conditions, v1alpha1.ConditionSucceeded); cond != nil && cond.Status == metav1.ConditionFalse {
			if cond.Reason != "BindForbidden" || !strings.Contains(cond.Message, "allowedClusterRoles") {
				t.Errorf("Task failed with %s: %s; want BindForbidden naming allowedClusterRoles", cond.Reason, cond.Message)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Task not failed after 30s: %+v", task.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(task.Finalizers) > 0 {
		// The finalizer goes once the failed Task is cleaned up.
		deadline = time.Now().Add(10 * time.Second)
		for len(task.Finalizers) > 0 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			_ = c.Get(ctx, client.ObjectKeyFromObject(task), task)
		}
		if len(task.Finalizers) > 0 {
			t.Errorf("finalizers left on the failed Task: %v", task.Finalizers)
		}
	}
}

// mountSecret plays the kubelet's part for a Secret volume: it copies the
// Secret's keys into dir whenever they change, until the returned stop is
// called. The rotator only writes the Secret and waits for this.
func mountSecret(ctx context.Context, t *testing.T, c client.Client, key client.ObjectKey, dir string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			var s corev1.Secret
			if err := c.Get(ctx, key, &s); err == nil {
				for name, data := range s.Data {
					path := filepath.Join(dir, name)
					if old, _ := os.ReadFile(path); !bytes.Equal(old, data) {
						_ = os.WriteFile(path+".tmp", data, 0o600)
						_ = os.Rename(path+".tmp", path)
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); <-done }
}

// impersonatingKubeconfig writes the admin kubeconfig with impersonation of a
// ServiceAccount, which is how the manager sees the API server in its Pod.
func impersonatingKubeconfig(t *testing.T, admin, user, ns string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range cfg.AuthInfos {
		auth.Impersonate = user
		auth.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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

var logMu sync.Mutex

// syncWriter serialises the manager's stdout and stderr into one buffer.
type syncWriter struct{ w *bytes.Buffer }

func (s *syncWriter) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	return s.w.Write(p)
}

func logText(b *bytes.Buffer) string {
	logMu.Lock()
	defer logMu.Unlock()
	return b.String()
}
