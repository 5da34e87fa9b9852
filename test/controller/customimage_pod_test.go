package controller_test

import (
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/testutil"
)

// restrictedNamespace creates a namespace that enforces PodSecurity
// restricted.
func restrictedNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "tg-restricted-",
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}
	mustCreate(t, ns)
	return ns.Name
}

// A default Task in a restricted namespace: its Pod carries the
// restricted defaults but says nothing about the user, so PodSecurity
// refuses it for runAsNonRoot alone; the Task fails at once as
// PodRejected with a Warning Event, and the binding it had made is gone.
func TestCustomImageRestrictedDefaultRejected(t *testing.T) {
	t.Parallel()
	ns := restrictedNamespace(t)
	startManager(t, ns)

	cfg := customImage("busybox:1.36", "true")
	cfg.ClusterRole = "view"
	mustCreate(t, makeTask(t, ns, "default", v1alpha1.PluginCustomImage, cfg))
	task := waitForTask(t, ns, "default", v1alpha1.TaskFailed)
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

// A Task that runs as a non-root user gets its Pod in a restricted
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
	mustCreate(t, makeTask(t, ns, "nonroot", v1alpha1.PluginCustomImage, cfg))

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
	isControlledBy(t, pod, waitForTask(t, ns, "nonroot", v1alpha1.TaskPending))
}

// timeoutSeconds holds before a Pod exists. A policy webhook that is down
// (failurePolicy Fail, nothing listening) makes the API server answer every
// Pod create with a 500, a refusal that may pass: the controller retries,
// the Task says why while it waits, and fails Timeout once
// startTime+timeoutSeconds passed; no Pod was ever created.
func TestCustomImageTimeoutWithoutPod(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	downWebhook(t, ns)
	startManager(t, ns)

	cfg := customImage("busybox:1.36", "true")
	cfg.TimeoutSeconds = ptr.To[int64](4)
	mustCreate(t, makeTask(t, ns, "blocked", v1alpha1.PluginCustomImage, cfg))
	task := &v1alpha1.Task{}
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
	task = waitForTask(t, ns, "blocked", v1alpha1.TaskFailed)
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
