package controller_test

import (
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/testutil"
)

// A custom-image run with every optional field left out (no webhook
// defaulting): the controller creates the default ServiceAccount and one Pod,
// and the run follows the Pod from Pending through Running to Succeeded.
func TestCustomImageSucceeds(t *testing.T) {
	ns := parallelWithManager(t)

	cfg := customImage("registry.example/tools:1.2", "/bin/sh", "-c")
	cfg.Args = []string{"echo hello"}
	cfg.Env = []corev1.EnvVar{{Name: "GREETING", Value: "hello"}}
	cfg.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}
	mustCreate(t, makeRun(t, ns, "hello", v1alpha1.PluginCustomImage, cfg))

	pod := waitForPod(t, ns, "hello")
	task := waitForRun(t, ns, "hello", v1alpha1.TaskPending)
	isControlledBy(t, pod, task)
	spec := pod.Spec
	if spec.RestartPolicy != corev1.RestartPolicyNever || spec.ActiveDeadlineSeconds != nil ||
		spec.ServiceAccountName != runSA(t, ns, "hello") || len(spec.Containers) != 1 {
		t.Errorf("pod spec = %+v\nwant restartPolicy Never, no activeDeadlineSeconds, serviceAccountName %s, one container", spec, runSA(t, ns, "hello"))
	}
	c := spec.Containers[0]
	if c.Name != "task" || c.Image != cfg.Image || strings.Join(c.Command, " ") != "/bin/sh -c" ||
		strings.Join(c.Args, " ") != "echo hello" || len(c.Env) != 1 || !c.Resources.Limits.Cpu().Equal(resource.MustParse("100m")) {
		t.Errorf("container = %+v\nwant name task, image %s, command /bin/sh -c, args \"echo hello\", one env var, a 100m CPU limit", c, cfg.Image)
	}

	sa := &corev1.ServiceAccount{}
	mustGet(t, ns, runSA(t, ns, "hello"), sa)
	isControlledBy(t, sa, task)

	setPodStatus(t, pod, corev1.PodRunning, 0, "")
	task = waitForRun(t, ns, "hello", v1alpha1.TaskRunning)
	if c := succeededCondition(t, task); c.Status != metav1.ConditionUnknown || c.Reason != controller.ReasonRunning {
		t.Errorf("condition while the Pod runs = %+v, want Unknown/%s", c, controller.ReasonRunning)
	}

	setPodStatus(t, pod, corev1.PodSucceeded, 0, "Completed")
	task = waitForRun(t, ns, "hello", v1alpha1.TaskSucceeded)
	st := task.Status
	if c := succeededCondition(t, task); c.Status != metav1.ConditionTrue || c.Reason != controller.ReasonCompleted || st.Message != c.Message {
		t.Errorf("condition = %+v, status message %q; want True/%s with the condition's message", c, st.Message, controller.ReasonCompleted)
	}
	if st.StartTime == nil || st.CompletionTime == nil || st.ObservedGeneration != task.Generation {
		t.Errorf("status startTime %v, completionTime %v, observedGeneration %d; want both times set and generation %d", st.StartTime, st.CompletionTime, st.ObservedGeneration, task.Generation)
	}
	if ci := st.CustomImage; ci == nil || ci.PodName != pod.Name || ci.ExitCode == nil || *ci.ExitCode != 0 ||
		ci.ServiceAccountName != sa.Name {
		t.Errorf("status.customImage = %+v, want pod %s, exit code 0, serviceAccountName %s", ci, pod.Name, sa.Name)
	}
	waitForEvents(t, task, controller.EventServiceAccountCreated, controller.EventPodCreated, controller.EventSucceeded)
}

// How a Pod ends decides how the run ends; the exit code and the kubelet's
// reason reach the condition message and status.customImage.exitCode.
func TestCustomImagePodOutcomes(t *testing.T) {
	ns := parallelWithManager(t)

	tests := []struct {
		name        string
		phase       corev1.PodPhase
		exitCode    int32
		reason      string
		wantPhase   v1alpha1.TaskPhase
		wantReason  string
		wantMessage []string
	}{
		{name: "exit-0", phase: corev1.PodSucceeded, reason: "Completed",
			wantPhase: v1alpha1.TaskSucceeded, wantReason: controller.ReasonCompleted},
		{name: "exit-3", phase: corev1.PodFailed, exitCode: 3, reason: "Error",
			wantPhase: v1alpha1.TaskFailed, wantReason: controller.ReasonPodFailed, wantMessage: []string{"code 3", "(Error)"}},
		{name: "oom", phase: corev1.PodFailed, exitCode: 137, reason: "OOMKilled",
			wantPhase: v1alpha1.TaskFailed, wantReason: controller.ReasonPodFailed, wantMessage: []string{"code 137", "(OOMKilled)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mustCreate(t, makeRun(t, ns, tt.name, v1alpha1.PluginCustomImage, customImage("busybox:1.36", "false")))
			pod := waitForPod(t, ns, tt.name)
			setPodStatus(t, pod, tt.phase, tt.exitCode, tt.reason)
			task := waitForRun(t, ns, tt.name, tt.wantPhase)
			c := succeededCondition(t, task)
			if c.Reason != tt.wantReason {
				t.Errorf("reason = %q, want %q (%s)", c.Reason, tt.wantReason, c.Message)
			}
			for _, want := range tt.wantMessage {
				if !strings.Contains(c.Message, want) || !strings.Contains(task.Status.Message, want) {
					t.Errorf("message %q does not say %q", c.Message, want)
				}
			}
			if ec := task.Status.CustomImage.ExitCode; ec == nil || *ec != tt.exitCode {
				t.Errorf("exitCode = %v, want %d", ec, tt.exitCode)
			}
		})
	}
}

// The controller enforces timeoutSeconds itself: the Pod never starts here
// (no kubelet), and after 2s it is deleted and the run fails with Timeout.
func TestCustomImageTimeout(t *testing.T) {
	ns := parallelWithManager(t)

	cfg := customImage("busybox:1.36", "sleep", "3600")
	cfg.TimeoutSeconds = ptr.To[int64](2)
	created := time.Now()
	mustCreate(t, makeRun(t, ns, "slow", v1alpha1.PluginCustomImage, cfg))
	pod := waitForPod(t, ns, "slow")
	if d := pod.Spec.ActiveDeadlineSeconds; d == nil || *d != 2 {
		t.Errorf("activeDeadlineSeconds = %v, want 2", d)
	}

	task := waitForRun(t, ns, "slow", v1alpha1.TaskFailed)
	if d := time.Since(created); d < 2*time.Second {
		t.Errorf("timed out %s after the Task was created, before its 2s timeout", d)
	}
	if c := succeededCondition(t, task); c.Reason != controller.ReasonTimeout {
		t.Errorf("condition = %+v, want reason Timeout", c)
	}
	if d := task.Status.CompletionTime.Sub(task.Status.StartTime.Time); d < 2*time.Second {
		t.Errorf("failed after %s, before the 2s timeout", d)
	}
	testutil.Eventually(t, "pod to be deleted", func() error {
		err := get(t, client.ObjectKeyFromObject(pod), &corev1.Pod{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return errNotYet("pod still there (%v)", err)
	})
	waitForEvents(t, task, controller.EventPodDeleted, controller.EventFailed)
}

// A Pod deleted under a run still going fails the run, and is not recreated.
func TestCustomImagePodDeleted(t *testing.T) {
	ns := parallelWithManager(t)

	mustCreate(t, makeRun(t, ns, "victim", v1alpha1.PluginCustomImage, customImage("busybox:1.36", "sleep", "3600")))
	pod := waitForPod(t, ns, "victim")
	setPodStatus(t, pod, corev1.PodRunning, 0, "")
	waitForRun(t, ns, "victim", v1alpha1.TaskRunning)

	if err := k8sClient.Delete(t.Context(), pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatalf("delete pod: %v", err)
	}
	task := waitForRun(t, ns, "victim", v1alpha1.TaskFailed)
	if c := succeededCondition(t, task); c.Reason != controller.ReasonPodDeleted || !strings.Contains(c.Message, pod.Name) {
		t.Errorf("condition = %+v, want reason PodDeleted naming the pod", c)
	}
	pods := &corev1.PodList{}
	if err := k8sClient.List(t.Context(), pods, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 0 {
		t.Errorf("pods after the Task failed: %d, want 0 (never recreated)", len(pods.Items))
	}
}

// A ServiceAccount the user names is used as is; the controller creates none.
func TestCustomImageNamedServiceAccount(t *testing.T) {
	ns := parallelWithManager(t)

	mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "builder"}})
	cfg := customImage("busybox:1.36", "true")
	cfg.ServiceAccountName = "builder"
	cfg.Namespace = ns
	mustCreate(t, makeRun(t, ns, "named", v1alpha1.PluginCustomImage, cfg))

	pod := waitForPod(t, ns, "named")
	if pod.Spec.ServiceAccountName != "builder" {
		t.Errorf("pod service account = %q, want builder", pod.Spec.ServiceAccountName)
	}
	task := waitForRun(t, ns, "named", v1alpha1.TaskPending)
	if task.Status.CustomImage.ServiceAccountName != "builder" {
		t.Errorf("status service account = %q", task.Status.CustomImage.ServiceAccountName)
	}
	err := get(t, client.ObjectKey{Namespace: ns, Name: runSA(t, ns, "named")}, &corev1.ServiceAccount{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("default service account: %v, want NotFound", err)
	}
}

// restrictedNamespace creates a namespace that enforces PodSecurity
// restricted.
func restrictedNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "tg-restricted-",
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}
	mustCreate(t, ns)
	return ns.Name
}

// A default run in a restricted namespace: its Pod carries the
// restricted defaults but says nothing about the user, so PodSecurity
// refuses it for runAsNonRoot alone; the run fails at once as
// PodRejected with a Warning Event, and the binding it had made is gone.
func TestCustomImageRestrictedDefaultRejected(t *testing.T) {
	t.Parallel()
	ns := restrictedNamespace(t)
	startManager(t, ns)

	cfg := customImage("busybox:1.36", "true")
	cfg.ClusterRole = "view"
	mustCreate(t, makeRun(t, ns, "default", v1alpha1.PluginCustomImage, cfg))
	task := waitForRun(t, ns, "default", v1alpha1.TaskFailed)
	c := succeededCondition(t, task)
	if c.Reason != controller.ReasonPodRejected || !strings.Contains(c.Message, "runAsNonRoot != true") {
		t.Errorf("condition = %s: %s, want PodRejected for runAsNonRoot", c.Reason, c.Message)
	}
	for _, loose := range []string{"allowPrivilegeEscalation", "unrestricted capabilities", "seccompProfile"} {
		if strings.Contains(c.Message, loose) {
			t.Errorf("PodSecurity still objects to %s: %s", loose, c.Message)
		}
	}
	wantEventNote(t, task, controller.EventFailed, "violates PodSecurity")
	testutil.Eventually(t, "the binding to be removed", func() error {
		err := get(t, client.ObjectKey{Name: v1alpha1.ClusterRoleBindingName(ns, "default")}, &rbacv1.ClusterRoleBinding{})
		if client.IgnoreNotFound(err) != nil || err == nil {
			return errNotYet("binding: %v", err)
		}
		return nil
	})
	wantAbsent(t, client.ObjectKey{Namespace: ns, Name: v1alpha1.PodName("default")}, &corev1.Pod{})
}

// A run that runs as a non-root user gets its Pod in a restricted
// namespace, with the security defaults, its own securityContext merged
// over them, and the placement fields as given.
func TestCustomImageRestrictedNonRoot(t *testing.T) {
	t.Parallel()
	ns := restrictedNamespace(t)
	startManager(t, ns)

	cfg := customImage("busybox:1.36", "id")
	cfg.SecurityContext = &v1alpha1.CustomImageSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](1000),
		ReadOnlyRootFilesystem: ptr.To(true), Capabilities: &v1alpha1.CustomImageCapabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}}}
	cfg.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}
	cfg.Tolerations = []corev1.Toleration{
		{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "batch", Effect: corev1.TaintEffectNoSchedule},
		{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](60)},
	}
	cfg.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "registry-creds"}}
	cfg.AutomountServiceAccountToken = ptr.To(false)
	mustCreate(t, makeRun(t, ns, "nonroot", v1alpha1.PluginCustomImage, cfg))

	pod := waitForPod(t, ns, "nonroot")
	spec := pod.Spec
	if !equality.Semantic.DeepEqual(spec.NodeSelector, cfg.NodeSelector) || !ptr.Equal(spec.AutomountServiceAccountToken, ptr.To(false)) ||
		!equality.Semantic.DeepEqual(spec.ImagePullSecrets, cfg.ImagePullSecrets) {
		t.Errorf("pod spec placement = %v %v %v", spec.NodeSelector, spec.AutomountServiceAccountToken, spec.ImagePullSecrets)
	}
	for _, want := range cfg.Tolerations { // the API server may add its own
		found := false
		for _, got := range spec.Tolerations {
			found = found || equality.Semantic.DeepEqual(got, want)
		}
		if !found {
			t.Errorf("toleration %+v not in %+v", want, spec.Tolerations)
		}
	}
	c := spec.Containers[0]
	want := &corev1.SecurityContext{
		RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](1000), ReadOnlyRootFilesystem: ptr.To(true),
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if !equality.Semantic.DeepEqual(c.SecurityContext, want) {
		t.Errorf("container securityContext = %+v, want %+v", c.SecurityContext, want)
	}
	if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		t.Errorf("terminationMessagePolicy = %q", c.TerminationMessagePolicy)
	}
	isControlledBy(t, pod, waitForRun(t, ns, "nonroot", v1alpha1.TaskPending))
}

// timeoutSeconds holds before a Pod exists. A policy webhook that is down
// (failurePolicy Fail, nothing listening) makes the API server answer every
// Pod create with a 500, a refusal that may pass: the controller retries,
// the run says why while it waits, and fails Timeout once
// startTime+timeoutSeconds passed; no Pod was ever created.
func TestCustomImageTimeoutWithoutPod(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	downWebhook(t, ns)
	startManager(t, ns)

	cfg := customImage("busybox:1.36", "true")
	cfg.TimeoutSeconds = ptr.To[int64](4)
	mustCreate(t, makeRun(t, ns, "blocked", v1alpha1.PluginCustomImage, cfg))
	task := &v1alpha1.TaskRun{}
	testutil.Eventually(t, "the Task to say why its Pod is not there", func() error {
		mustGet(t, ns, "blocked", task)
		if !strings.Contains(task.Status.Message, "failed calling webhook") && task.Status.Phase != v1alpha1.TaskFailed {
			return errNotYet("phase %q (%q)", task.Status.Phase, task.Status.Message)
		}
		return nil
	})
	if task.Status.Phase == v1alpha1.TaskPending && !strings.Contains(task.Status.Message, "retrying until the timeout") {
		t.Errorf("pending message = %q", task.Status.Message)
	}
	task = waitForRun(t, ns, "blocked", v1alpha1.TaskFailed)
	c := succeededCondition(t, task)
	if c.Reason != controller.ReasonTimeout || !strings.Contains(c.Message, "was not created within the timeout of 4s") ||
		!strings.Contains(c.Message, "failed calling webhook") {
		t.Errorf("condition = %s: %s, want Timeout with the webhook's error", c.Reason, c.Message)
	}
	if took := task.Status.CompletionTime.Sub(task.Status.StartTime.Time).Seconds(); took < 4 || took > 15 {
		t.Errorf("failed after %.0fs, want soon after the 4s timeout", took)
	}
	wantEventNote(t, task, controller.EventFailed, "was not created within the timeout")
	wantAbsent(t, client.ObjectKey{Namespace: ns, Name: v1alpha1.PodName("blocked")}, &corev1.Pod{})
}

// downWebhook registers, for Pods in ns only, a validating webhook that
// fails closed and that nothing serves.
func downWebhook(t *testing.T, ns string) {
	t.Helper()
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "down-" + ns},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "down.policy.example.com",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1/validate")},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](1),
		}},
	}
	mustCreate(t, vwc)
	t.Cleanup(func() { _ = k8sClient.Delete(t.Context(), vwc) })
}
