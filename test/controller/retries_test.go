package controller_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/testutil"
)

// No kubelet runs in these tests: setPodStatus moves each Pod to the phase
// and exit code a kubelet would report.

// retrying is a custom-image config with config.retries.
func retrying(retries int32) v1alpha1.CustomImageConfig {
	cfg := customImage("busybox:1.36", "sh", "-c", "exit 2")
	cfg.Retries = ptr.To(retries)
	return cfg
}

// waitForAttemptPod waits until attempt n's Pod of the run exists.
func waitForAttemptPod(t *testing.T, ns, taskName string, n int32) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{}
	name := v1alpha1.AttemptPodName(taskName, n)
	testutil.Eventually(t, "pod "+name, func() error {
		return get(t, client.ObjectKey{Namespace: ns, Name: name}, pod)
	})
	return pod
}

// podNames lists the names of the run's Pods, sorted.
func podNames(t *testing.T, ns, runName string) []string {
	t.Helper()
	return listNames(t, &corev1.PodList{}, client.InNamespace(ns),
		client.MatchingLabels{v1alpha1.TaskRunLabel: v1alpha1.TaskLabelValue(runName)})
}

// countEvents counts the run's Events of reason.
func countEvents(t *testing.T, task *v1alpha1.TaskRun, reason string) int {
	t.Helper()
	reasons, err := runEventReasons(t, task)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range reasons {
		if r == reason {
			n++
		}
	}
	return n
}

// attemptsOf renders status.customImage.attempts as "pod=code/reason".
func attemptsOf(task *v1alpha1.TaskRun) []string {
	var out []string
	for _, a := range task.Status.CustomImage.Attempts {
		out = append(out, fmt.Sprintf("%s=%d/%s", a.Pod, ptr.Deref(a.ExitCode, -1), a.Reason))
	}
	return out
}

// Two failed attempts and a third that succeeds: the run succeeds, each
// attempt has its own deterministic Pod (the old ones kept), status lists
// the three, and each failed attempt has one PodFailed Event.
func TestRetriesUntilSuccess(t *testing.T) {
	ns := parallelWithManager(t)
	cfg := retrying(2)
	cfg.TimeoutSeconds = ptr.To[int64](600)
	task := makeRun(t, ns, "flaky", v1alpha1.PluginCustomImage, cfg)
	mustCreate(t, task)

	setPodStatus(t, waitForAttemptPod(t, ns, "flaky", 0), corev1.PodFailed, 1, "Error")
	second := waitForAttemptPod(t, ns, "flaky", 1)
	// The timeout covers every attempt: a later Pod gets only what is left.
	if d := ptr.Deref(second.Spec.ActiveDeadlineSeconds, 0); d < 1 || d > 600 {
		t.Errorf("attempt 1's activeDeadlineSeconds = %d, want what is left of 600", d)
	}
	setPodStatus(t, second, corev1.PodFailed, 2, "Error")
	setPodStatus(t, waitForAttemptPod(t, ns, "flaky", 2), corev1.PodSucceeded, 0, "Completed")
	got := waitForRun(t, ns, "flaky", v1alpha1.TaskSucceeded)

	if c := succeededCondition(t, got); c.Reason != controller.ReasonCompleted || !strings.Contains(c.Message, "attempt 3 of 3") {
		t.Errorf("condition = %+v, want Completed on attempt 3 of 3", c)
	}
	wantPods := []string{"flaky-task", "flaky-task-1", "flaky-task-2"}
	if names := podNames(t, ns, "flaky"); !slices.Equal(names, wantPods) {
		t.Errorf("pods = %v, want %v", names, wantPods)
	}
	for _, name := range wantPods {
		pod := &corev1.Pod{}
		mustGet(t, ns, name, pod)
		isControlledBy(t, pod, got)
	}
	st := got.Status.CustomImage
	wantAttempts := []string{"flaky-task=1/Error", "flaky-task-1=2/Error", "flaky-task-2=0/Completed"}
	if a := attemptsOf(got); st.Attempt != 2 || st.PodName != "flaky-task-2" || !slices.Equal(a, wantAttempts) {
		t.Errorf("status.customImage attempt=%d podName=%s attempts=%v, want 2, flaky-task-2, %v", st.Attempt, st.PodName, a, wantAttempts)
	}
	waitForEvents(t, got, controller.EventSucceeded)
	if n := countEvents(t, got, controller.EventPodFailed); n != 2 {
		t.Errorf("%d PodFailed events, want one per failed attempt (2)", n)
	}
	events, err := runEvents(t, got)
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, e := range events {
		if e.Reason == controller.EventPodFailed {
			notes = append(notes, e.Note)
		}
	}
	slices.Sort(notes)
	if len(notes) != 2 || !strings.Contains(notes[0], "attempt 1 of 3 failed with exit code 1") ||
		!strings.Contains(notes[1], "attempt 2 of 3 failed with exit code 2") || !strings.Contains(notes[1], "flaky-task-2") {
		t.Errorf("PodFailed notes = %q", notes)
	}
}

// When the last attempt fails too, the run fails PodFailed and says which
// attempt it was.
func TestRetriesExhausted(t *testing.T) {
	ns := parallelWithManager(t)
	mustCreate(t, makeRun(t, ns, "broken", v1alpha1.PluginCustomImage, retrying(1)))

	setPodStatus(t, waitForAttemptPod(t, ns, "broken", 0), corev1.PodFailed, 2, "Error")
	setPodStatus(t, waitForAttemptPod(t, ns, "broken", 1), corev1.PodFailed, 3, "Error")
	got := waitForRun(t, ns, "broken", v1alpha1.TaskFailed)

	c := succeededCondition(t, got)
	if c.Reason != controller.ReasonPodFailed || !strings.Contains(c.Message, "broken-task-1") ||
		!strings.Contains(c.Message, "attempt 2 of 2") || !strings.Contains(c.Message, "code 3") {
		t.Errorf("condition = %+v, want PodFailed naming pod broken-task-1, attempt 2 of 2, code 3", c)
	}
	if code := got.Status.CustomImage.ExitCode; code == nil || *code != 3 {
		t.Errorf("exitCode = %v, want 3 (the last attempt's)", code)
	}
	if a := attemptsOf(got); !slices.Equal(a, []string{"broken-task=2/Error", "broken-task-1=3/Error"}) {
		t.Errorf("attempts = %v", a)
	}
	if names := podNames(t, ns, "broken"); !slices.Equal(names, []string{"broken-task", "broken-task-1"}) {
		t.Errorf("pods = %v, want one per attempt", names)
	}
}

// A timeout and a Pod deleted under the run end it whatever retries are
// left: the timeout covers every attempt, and a deleted Pod is not a
// failure of the command.
func TestRetriesNotForTimeoutOrDeletion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cfg    func() v1alpha1.CustomImageConfig
		end    func(t *testing.T, pod *corev1.Pod)
		reason string
	}{
		{name: "timeout", reason: controller.ReasonTimeout,
			cfg: func() v1alpha1.CustomImageConfig {
				cfg := retrying(3)
				cfg.TimeoutSeconds = ptr.To[int64](2)
				return cfg
			},
			end: func(t *testing.T, pod *corev1.Pod) { setPodStatus(t, pod, corev1.PodRunning, 0, "") }},
		{name: "deadline-exceeded", reason: controller.ReasonTimeout,
			cfg: func() v1alpha1.CustomImageConfig { return retrying(3) },
			end: func(t *testing.T, pod *corev1.Pod) {
				// As the kubelet does, in one write: a Pod seen Failed
				// without the reason would be an ordinary failure.
				now := metav1.Now()
				pod.Status.Phase = corev1.PodFailed
				pod.Status.Reason = "DeadlineExceeded"
				pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
					Name: pod.Spec.Containers[0].Name, Image: pod.Spec.Containers[0].Image,
					State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error", StartedAt: now, FinishedAt: now}},
				}}
				if err := k8sClient.Status().Update(t.Context(), pod); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "deleted", reason: controller.ReasonPodDeleted,
			cfg: func() v1alpha1.CustomImageConfig { return retrying(3) },
			end: func(t *testing.T, pod *corev1.Pod) {
				setPodStatus(t, pod, corev1.PodRunning, 0, "")
				waitForRun(t, pod.Namespace, "once", v1alpha1.TaskRunning)
				if err := k8sClient.Delete(t.Context(), pod, client.GracePeriodSeconds(0)); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			startManager(t, ns)
			mustCreate(t, makeRun(t, ns, "once", v1alpha1.PluginCustomImage, tt.cfg()))
			tt.end(t, waitForAttemptPod(t, ns, "once", 0))
			got := waitForRun(t, ns, "once", v1alpha1.TaskFailed)
			if c := succeededCondition(t, got); c.Reason != tt.reason {
				t.Errorf("condition = %+v, want %s", c, tt.reason)
			}
			if got.Status.CustomImage.Attempt != 0 {
				t.Errorf("attempt = %d, want 0 (not retried)", got.Status.CustomImage.Attempt)
			}
			if names := podNames(t, ns, "once"); slices.Contains(names, v1alpha1.AttemptPodName("once", 1)) {
				t.Errorf("pods = %v: retried", names)
			}
			if n := countEvents(t, got, controller.EventPodFailed); n != 0 {
				t.Errorf("%d PodFailed events, want 0", n)
			}
		})
	}
}

// A Pod of the next attempt's name that this run does not control is never
// taken as that attempt's: the run fails with NameConflict.
func TestRetryNameConflict(t *testing.T) {
	ns := parallelWithManager(t)
	squat := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: v1alpha1.AttemptPodName("taken", 1)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36"}}},
	}
	mustCreate(t, squat)
	mustCreate(t, makeRun(t, ns, "taken", v1alpha1.PluginCustomImage, retrying(1)))
	setPodStatus(t, waitForAttemptPod(t, ns, "taken", 0), corev1.PodFailed, 1, "Error")

	got := waitForRun(t, ns, "taken", v1alpha1.TaskFailed)
	if c := succeededCondition(t, got); c.Reason != controller.ReasonNameConflict || !strings.Contains(c.Message, squat.Name) {
		t.Errorf("condition = %+v, want NameConflict naming %s", c, squat.Name)
	}
}
