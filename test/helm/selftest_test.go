package helm_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/astronetes/taskgate/test/testutil"
)

// TestHelmTestHook runs `helm test` against a release in a real
// kube-apiserver. There is no kubelet, so the test Pod never starts: the
// test plays the kubelet's part. It runs the Pod's own command (the taskgate
// binary with the Pod's args) as the Pod's ServiceAccount, with a token from
// the TokenRequest API, and then writes the Pod's status as a kubelet would
// from the exit code, which is what `helm test` waits for. The webhook runs
// as the real manager on 127.0.0.1 (envtest cannot route to the Service), as
// the chart's ServiceAccount, with the release's webhook configurations
// pointed at it; everything else is the release as installed.
func TestHelmTestHook(t *testing.T) {
	c, kc := cluster(t)
	ctx := t.Context()
	bin := managerBinary(t)
	const rel, ns = "hook", "hook-system"
	// Another release may own the Task CRD already (TestInstall's, kept on uninstall).
	if out, err := helm(t, "install", rel, chartDir(), "--namespace", ns, "--create-namespace", "--kubeconfig", kc,
		"--set", "fullnameOverride=hook", "--set", "synchronizationCRD.install=false"); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = helm(t, "uninstall", rel, "--namespace", ns, "--kubeconfig", kc) })
	removeOtherWebhooks(ctx, t, c, rel)

	stop := serveWebhooks(ctx, t, c, kc, bin, ns, "hook")
	pod := runHelmTest(ctx, t, c, kc, bin, rel, ns, "hook-test")
	if pod.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("the test Pod's command failed against a running webhook (phase %s)", pod.Status.Phase)
	}
	// hook-succeeded: nothing of the test stays behind.
	for _, obj := range []client.Object{&corev1.Pod{}, &corev1.ServiceAccount{}} {
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "hook-test"}, obj); !apierrors.IsNotFound(err) {
			t.Errorf("%T hook-test after a passed helm test: %v", obj, err)
		}
	}

	// The check must fail, and say why, when the webhook does not answer
	// (the manager stopped: the API server cannot call it) and when Tasks
	// are not sent to it at all (configurations deleted).
	stop()
	kcTest := testServiceAccount(ctx, t, c, kc, ns)
	for _, tc := range []struct {
		name, want string
		before     func()
	}{
		{name: "webhook down", want: "the webhook did not answer"},
		// A Task needs no requester (that is a TaskRun's), so no policy stands in: it is admitted.
		{name: "no webhook configurations", want: "the taskgate webhooks are not called for Tasks", before: func() {
			for _, obj := range []client.Object{
				&admissionv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "hook-mutating"}},
				&admissionv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "hook-validating"}},
			} {
				if err := c.Delete(ctx, obj); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			out, code := runSelftest(t, bin, kcTest, "selftest", "--namespace="+ns, "--timeout=3s")
			if code != 1 || !strings.Contains(out, tc.want) {
				t.Errorf("selftest exit %d, want 1 saying %q:\n%s", code, tc.want, out)
			}
		})
	}
}

// removeOtherWebhooks deletes the webhook configurations of taskgate
// releases other than rel that earlier tests left in the shared API server:
// every release's webhooks see every Task, and envtest cannot route to
// their Services, so they would refuse the selftest's Task with "failed
// calling webhook" (as they would in a cluster where those releases are down).
func removeOtherWebhooks(ctx context.Context, t *testing.T, c client.Client, rel string) {
	t.Helper()
	sel := client.MatchingLabels{"app.kubernetes.io/part-of": "taskgate"}
	objs, err := testutil.WebhookConfigurations(ctx, c, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetLabels()["app.kubernetes.io/instance"] == rel {
			continue
		}
		t.Logf("deleting %s, left by release %s", o.GetName(), o.GetLabels()["app.kubernetes.io/instance"])
		if err := c.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
}

// serveWebhooks runs the manager's webhook server on 127.0.0.1 with a
// certificate for that address, as the release's ServiceAccount, and points
// the release's webhook configurations at it. stop ends the manager.
func serveWebhooks(ctx context.Context, t *testing.T, c client.Client, kc, bin, ns, fullname string) (stop func()) {
	t.Helper()
	wo := &envtest.WebhookInstallOptions{LocalServingHost: "127.0.0.1"}
	if err := wo.PrepWithoutInstalling(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wo.Cleanup() })
	healthPort := testutil.MustFreePort(t)
	mgr, err := testutil.StartProcess(bin, serviceAccountKubeconfig(ctx, t, c, kc, ns, fullname), nil,
		"manager", "--enable-controller=false", "--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(healthPort), "--webhook-bind-address=127.0.0.1",
		"--webhook-port="+strconv.Itoa(wo.LocalServingPort), "--cert-dir="+wo.LocalServingCertDir,
		"--namespace="+ns, "--act-as=requester", "--preflight=true", "--log-format=json")
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		mgr.Stop(20 * time.Second)
		if t.Failed() {
			t.Logf("manager log:\n%s", mgr.Output())
		}
	}
	t.Cleanup(stop)
	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort)
	if err := mgr.WaitFor(90*time.Second, func(string) error {
		if code := httpStatus(ready); code != http.StatusOK {
			return fmt.Errorf("%s answers %d", ready, code)
		}
		return nil
	}); err != nil {
		t.Fatalf("manager not ready: %v\n%s", err, mgr.Output())
	}

	url := func(path *string) *string {
		u := fmt.Sprintf("https://127.0.0.1:%d%s", wo.LocalServingPort, *path)
		return &u
	}
	local := func(name string, w client.Object, ccs func() []*admissionv1.WebhookClientConfig) {
		if err := c.Get(ctx, client.ObjectKey{Name: fullname + name}, w); err != nil {
			t.Fatal(err)
		}
		for _, cc := range ccs() {
			cc.URL, cc.Service, cc.CABundle = url(cc.Service.Path), nil, wo.LocalServingCAData
		}
		if err := c.Update(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	var mw admissionv1.MutatingWebhookConfiguration
	local("-mutating", &mw, func() (ccs []*admissionv1.WebhookClientConfig) {
		for i := range mw.Webhooks {
			ccs = append(ccs, &mw.Webhooks[i].ClientConfig)
		}
		return ccs
	})
	var vw admissionv1.ValidatingWebhookConfiguration
	local("-validating", &vw, func() (ccs []*admissionv1.WebhookClientConfig) {
		for i := range vw.Webhooks {
			ccs = append(ccs, &vw.Webhooks[i].ClientConfig)
		}
		return ccs
	})
	return stop
}

// runHelmTest runs `helm test` and plays the kubelet for its Pod: it runs
// the Pod's container args with bin as the Pod's ServiceAccount and writes
// the outcome into the Pod's status. It returns the Pod as last seen.
func runHelmTest(ctx context.Context, t *testing.T, c client.Client, kc, bin, rel, ns, podName string) *corev1.Pod {
	t.Helper()
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := helm(t, "test", rel, "--namespace", ns, "--kubeconfig", kc, "--timeout", "2m")
		done <- result{out, err}
	}()
	var pod corev1.Pod
	for deadline := time.Now().Add(60 * time.Second); ; {
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: podName}, &pod); err == nil {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("helm test ended before its Pod appeared: %v\n%s", r.err, r.out)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("helm test created no Pod %s/%s in 60s", ns, podName)
		}
	}
	ctr := pod.Spec.Containers[0]
	if len(ctr.Command) != 0 {
		t.Fatalf("test Pod overrides the image's entrypoint: %q", ctr.Command)
	}
	kcSA := serviceAccountKubeconfig(ctx, t, c, kc, ns, pod.Spec.ServiceAccountName)
	out, code := runSelftest(t, bin, kcSA, ctr.Args...)
	t.Logf("taskgate %s (exit %d):\n%s", strings.Join(ctr.Args, " "), code, out)

	phase, reason := corev1.PodSucceeded, "Completed"
	if code != 0 {
		phase, reason = corev1.PodFailed, "Error"
	}
	now := metav1.Now()
	pod.Status = corev1.PodStatus{Phase: phase, StartTime: &now, ContainerStatuses: []corev1.ContainerStatus{{
		Name: ctr.Name, Image: ctr.Image, ImageID: ctr.Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: int32(code), Reason: reason, StartedAt: now, FinishedAt: now}},
	}}}
	if err := c.Status().Update(ctx, &pod); err != nil {
		t.Fatalf("set the test Pod's status as a kubelet would: %v", err)
	}
	select {
	case r := <-done:
		if (r.err == nil) != (code == 0) {
			t.Errorf("helm test: %v, but the Pod's command exited %d\n%s", r.err, code, r.out)
		}
		if code == 0 && !strings.Contains(r.out, "Succeeded") {
			t.Errorf("helm test output does not report the test Pod Succeeded:\n%s", r.out)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("helm test did not return after the Pod finished")
	}
	return &pod
}

// testServiceAccount recreates the test hook's ServiceAccount, Role and
// RoleBinding (helm test deleted them on success) from the chart, for the
// failure cases, and returns a kubeconfig for it.
func testServiceAccount(ctx context.Context, t *testing.T, c client.Client, kc, ns string) string {
	t.Helper()
	out, err := helm(t, "template", "hook", chartDir(), "--namespace", ns, "--set", "fullnameOverride=hook",
		"--show-only", "templates/tests/selftest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range decode(t, out) {
		if o.GetKind() == "Pod" {
			continue
		}
		if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create %s %s: %v", o.GetKind(), o.GetName(), err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), o) })
	}
	return serviceAccountKubeconfig(ctx, t, c, kc, ns, "hook-test")
}

// runSelftest runs the taskgate binary with a kubeconfig and returns its
// combined output and exit code.
func runSelftest(t *testing.T, bin, kubeconfig string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("run %s: %v", bin, err)
	}
	return string(out), 0
}
