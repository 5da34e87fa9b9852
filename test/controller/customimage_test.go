package controller_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/testutil"
)

// A custom-image Task with every optional field left out (no webhook
// defaulting): the controller creates the default ServiceAccount and one Pod,
// and the Task follows the Pod from Pending through Running to Succeeded.
func TestCustomImageSucceeds(t *testing.T) {
	ns := parallelWithManager(t)

	cfg := customImage("registry.example/tools:1.2", "/bin/sh", "-c")
	cfg.Args = []string{"echo hello"}
	cfg.Env = []corev1.EnvVar{{Name: "GREETING", Value: "hello"}}
	cfg.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}
	mustCreate(t, makeTask(t, ns, "hello", v1alpha1.PluginCustomImage, cfg))

	pod := waitForPod(t, ns, "hello")
	task := waitForTask(t, ns, "hello", v1alpha1.TaskPending)
	isControlledBy(t, pod, task)
	spec := pod.Spec
	if spec.RestartPolicy != corev1.RestartPolicyNever || spec.ActiveDeadlineSeconds != nil ||
		spec.ServiceAccountName != v1alpha1.DefaultServiceAccountName("hello") || len(spec.Containers) != 1 {
		t.Errorf("pod spec = %+v\nwant restartPolicy Never, no activeDeadlineSeconds, serviceAccountName %s, one container", spec, v1alpha1.DefaultServiceAccountName("hello"))
	}
	c := spec.Containers[0]
	if c.Name != "task" || c.Image != cfg.Image || strings.Join(c.Command, " ") != "/bin/sh -c" ||
		strings.Join(c.Args, " ") != "echo hello" || len(c.Env) != 1 || !c.Resources.Limits.Cpu().Equal(resource.MustParse("100m")) {
		t.Errorf("container = %+v\nwant name task, image %s, command /bin/sh -c, args \"echo hello\", one env var, a 100m CPU limit", c, cfg.Image)
	}

	sa := &corev1.ServiceAccount{}
	mustGet(t, ns, v1alpha1.DefaultServiceAccountName("hello"), sa)
	isControlledBy(t, sa, task)

	setPodStatus(t, pod, corev1.PodRunning, 0, "")
	task = waitForTask(t, ns, "hello", v1alpha1.TaskRunning)
	if c := succeededCondition(t, task); c.Status != metav1.ConditionUnknown || c.Reason != controller.ReasonRunning {
		t.Errorf("condition while the Pod runs = %+v, want Unknown/%s", c, controller.ReasonRunning)
	}

	setPodStatus(t, pod, corev1.PodSucceeded, 0, "Completed")
	task = waitForTask(t, ns, "hello", v1alpha1.TaskSucceeded)
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

// How a Pod ends decides how the Task ends; the exit code and the kubelet's
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
			mustCreate(t, makeTask(t, ns, tt.name, v1alpha1.PluginCustomImage, customImage("busybox:1.36", "false")))
			pod := waitForPod(t, ns, tt.name)
			setPodStatus(t, pod, tt.phase, tt.exitCode, tt.reason)
			task := waitForTask(t, ns, tt.name, tt.wantPhase)
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
// (no kubelet), and after 2s it is deleted and the Task fails with Timeout.
func TestCustomImageTimeout(t *testing.T) {
	ns := parallelWithManager(t)

	cfg := customImage("busybox:1.36", "sleep", "3600")
	cfg.TimeoutSeconds = ptr.To[int64](2)
	created := time.Now()
	mustCreate(t, makeTask(t, ns, "slow", v1alpha1.PluginCustomImage, cfg))
	pod := waitForPod(t, ns, "slow")
	if d := pod.Spec.ActiveDeadlineSeconds; d == nil || *d != 2 {
		t.Errorf("activeDeadlineSeconds = %v, want 2", d)
	}

	task := waitForTask(t, ns, "slow", v1alpha1.TaskFailed)
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

// A Pod deleted under a running Task fails the Task, and is not recreated.
func TestCustomImagePodDeleted(t *testing.T) {
	ns := parallelWithManager(t)

	mustCreate(t, makeTask(t, ns, "victim", v1alpha1.PluginCustomImage, customImage("busybox:1.36", "sleep", "3600")))
	pod := waitForPod(t, ns, "victim")
	setPodStatus(t, pod, corev1.PodRunning, 0, "")
	waitForTask(t, ns, "victim", v1alpha1.TaskRunning)

	if err := k8sClient.Delete(t.Context(), pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatalf("delete pod: %v", err)
	}
	task := waitForTask(t, ns, "victim", v1alpha1.TaskFailed)
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
	mustCreate(t, makeTask(t, ns, "named", v1alpha1.PluginCustomImage, cfg))

	pod := waitForPod(t, ns, "named")
	if pod.Spec.ServiceAccountName != "builder" {
		t.Errorf("pod service account = %q, want builder", pod.Spec.ServiceAccountName)
	}
	task := waitForTask(t, ns, "named", v1alpha1.TaskPending)
	if task.Status.CustomImage.ServiceAccountName != "builder" {
		t.Errorf("status service account = %q", task.Status.CustomImage.ServiceAccountName)
	}
	err := get(t, client.ObjectKey{Namespace: ns, Name: v1alpha1.DefaultServiceAccountName("named")}, &corev1.ServiceAccount{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("default service account: %v, want NotFound", err)
	}
}
