package controller_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

// makeTask builds a Task of plugin with cfg (any value that marshals to the
// plugin's config) as its spec.config, requested by adminRequester (set
// here as the mutating webhook would; use withRequester for another).
func makeTask(t *testing.T, ns, name string, plugin v1alpha1.Plugin, cfg any) *v1alpha1.Task {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("marshal config: %v", err)
	}
	return &v1alpha1.Task{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.TaskSpec{Plugin: plugin, Config: runtime.RawExtension{Raw: raw}, Requester: adminRequester.DeepCopy()},
	}
}

// withRequester sets the Task's requester (nil: none, as before requesters
// were recorded).
func withRequester(task *v1alpha1.Task, r *v1alpha1.Requester) *v1alpha1.Task {
	task.Spec.Requester = r
	return task
}

// customImage is a custom-image config as a test writes it; fields left
// empty stay out of the Task, as if the webhook's defaulting had not run.
func customImage(image string, command ...string) v1alpha1.CustomImageConfig {
	return v1alpha1.CustomImageConfig{Image: image, Command: command}
}

// rawJSON turns a JSON literal into what transformation operations hold.
func rawJSON(s string) *runtime.RawExtension {
	return &runtime.RawExtension{Raw: []byte(s)}
}

var deploymentsGVR = v1alpha1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}

// makeDeployment builds a Deployment with replicas and labels; envtest has
// no Deployment controller, so it only ever exists as an object.
func makeDeployment(ns, name string, replicas int32, labels map[string]string) *appsv1.Deployment {
	podLabels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: podLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "registry.example/app:1.0", Args: []string{"serve"},
				}}},
			},
		},
	}
}

// waitForTask waits until the Task reaches phase and returns it.
func waitForTask(t *testing.T, ns, name string, phase v1alpha1.TaskPhase) *v1alpha1.Task {
	t.Helper()
	task := &v1alpha1.Task{}
	testutil.Eventually(t, "task "+name+" to be "+string(phase), func() error {
		if err := get(t, client.ObjectKey{Namespace: ns, Name: name}, task); err != nil {
			return err
		}
		if task.Status.Phase != phase {
			return errNotYet("phase %q (%q)", task.Status.Phase, task.Status.Message)
		}
		return nil
	})
	return task
}

// succeededCondition returns the Task's Succeeded condition or fails the test.
func succeededCondition(t *testing.T, task *v1alpha1.Task) metav1.Condition {
	t.Helper()
	c := meta.FindStatusCondition(task.Status.Conditions, v1alpha1.ConditionSucceeded)
	if c == nil {
		t.Fatalf("task %s has no Succeeded condition: %+v", task.Name, task.Status)
	}
	return *c
}

// waitForPod waits until the Task's Pod exists and returns it.
func waitForPod(t *testing.T, ns, taskName string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{}
	testutil.Eventually(t, "pod of task "+taskName, func() error {
		return get(t, client.ObjectKey{Namespace: ns, Name: v1alpha1.PodName(taskName)}, pod)
	})
	return pod
}

// setPodStatus does what the kubelet would: it moves the Pod to phase and,
// for a finished Pod, records how its container terminated.
func setPodStatus(t *testing.T, pod *corev1.Pod, phase corev1.PodPhase, exitCode int32, reason string) {
	t.Helper()
	testutil.Eventually(t, "pod status update", func() error {
		if err := get(t, client.ObjectKeyFromObject(pod), pod); err != nil {
			return err
		}
		now := metav1.Now()
		state := corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}
		if phase == corev1.PodSucceeded || phase == corev1.PodFailed {
			state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: exitCode, Reason: reason, StartedAt: now, FinishedAt: now,
			}}
		}
		pod.Status.Phase = phase
		pod.Status.StartTime = &now
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
			Name: pod.Spec.Containers[0].Name, Image: pod.Spec.Containers[0].Image, State: state,
		}}
		return k8sClient.Status().Update(t.Context(), pod)
	})
}

// taskEvents lists the Events recorded on a Task.
func taskEvents(t *testing.T, task *v1alpha1.Task) ([]eventsv1.Event, error) {
	list := &eventsv1.EventList{}
	if err := k8sClient.List(t.Context(), list, client.InNamespace(task.Namespace)); err != nil {
		return nil, err
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.UID == task.UID {
			out = append(out, e)
		}
	}
	return out, nil
}

// waitForEventsList waits for the Task's Events of reasons (waitForEvents)
// and returns every Event recorded on it.
func waitForEventsList(t *testing.T, task *v1alpha1.Task, reasons ...string) []eventsv1.Event {
	t.Helper()
	waitForEvents(t, task, reasons...)
	events, err := taskEvents(t, task)
	if err != nil {
		t.Fatalf("list the Events of Task %s: %v", task.Name, err)
	}
	return events
}

// taskEventReasons lists the reasons of the Events recorded on a Task.
func taskEventReasons(t *testing.T, task *v1alpha1.Task) ([]string, error) {
	events, err := taskEvents(t, task)
	if err != nil {
		return nil, err
	}
	var reasons []string
	for _, e := range events {
		reasons = append(reasons, e.Reason)
	}
	slices.Sort(reasons)
	return reasons, nil
}

// wantOnlyEvent waits for the Task's Event of reason and checks it is the
// Task's only Event and that its note contains each of notes. The recorder
// sends a Task's Events in the order they were recorded, so any Event
// recorded before the outcome's has been stored by the time it is.
func wantOnlyEvent(t *testing.T, task *v1alpha1.Task, reason string, notes ...string) {
	t.Helper()
	events := waitForEventsList(t, task, reason)
	if len(events) != 1 {
		var got []string
		for _, e := range events {
			got = append(got, e.Reason+": "+e.Note)
		}
		t.Fatalf("events on task %s = %q, want only %s", task.Name, got, reason)
	}
	for _, n := range notes {
		if !strings.Contains(events[0].Note, n) {
			t.Errorf("%s event note = %q, want it to contain %q", reason, events[0].Note, n)
		}
	}
}

// waitForEvents waits until the Task carries an Event of each reason.
func waitForEvents(t *testing.T, task *v1alpha1.Task, reasons ...string) {
	t.Helper()
	testutil.Eventually(t, "events on task "+task.Name, func() error {
		got, err := taskEventReasons(t, task)
		if err != nil {
			return err
		}
		for _, r := range reasons {
			if !slices.Contains(got, r) {
				return errNotYet("no %s event among %v", r, got)
			}
		}
		return nil
	})
}

// isControlledBy checks obj's controller owner reference points at task.
func isControlledBy(t *testing.T, obj metav1.Object, task *v1alpha1.Task) {
	t.Helper()
	ref := metav1.GetControllerOf(obj)
	if ref == nil || ref.UID != task.UID || ref.Kind != "Task" || ref.Name != task.Name {
		t.Errorf("%s: controller owner reference = %+v, want Task %s (%s)", obj.GetName(), ref, task.Name, task.UID)
	}
	if got := obj.GetLabels()[v1alpha1.TaskLabel]; got != v1alpha1.TaskLabelValue(task.Name) {
		t.Errorf("%s: label %s = %q, want %q", obj.GetName(), v1alpha1.TaskLabel, got, task.Name)
	}
}

// rawPatch is a JSON merge patch for the test client.
func rawPatch(s string) client.Patch {
	return client.RawPatch(types.MergePatchType, []byte(s))
}
