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

// makeRun builds a one-off TaskRun (spec.taskSpec inline, no Task) of
// plugin with cfg (any value that marshals to the plugin's config) as its
// config, requested by adminRequester (set here as the mutating webhook
// would; use withRequester for another).
func makeRun(t *testing.T, ns, name string, plugin v1alpha1.Plugin, cfg any) *v1alpha1.TaskRun {
	t.Helper()
	return &v1alpha1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.TaskRunSpec{TaskSpec: pluginSpec(t, plugin, cfg), Requester: adminRequester.DeepCopy()},
	}
}

// makeTask builds a Task (a runbook) of plugin with cfg as its config.
func makeTask(t *testing.T, ns, name string, plugin v1alpha1.Plugin, cfg any) *v1alpha1.Task {
	t.Helper()
	return &v1alpha1.Task{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.TaskSpec{PluginSpec: *pluginSpec(t, plugin, cfg)},
	}
}

// pluginSpec is plugin with cfg marshalled as its config.
func pluginSpec(t *testing.T, plugin v1alpha1.Plugin, cfg any) *v1alpha1.PluginSpec {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("marshal config: %v", err)
	}
	return &v1alpha1.PluginSpec{Plugin: plugin, Config: runtime.RawExtension{Raw: raw}}
}

// runOf builds a TaskRun of task (created: it has a UID) as the mutating
// webhook admits one: spec.taskRef, the Task's plugin and config as they
// are now in spec.taskSpec, adminRequester, the task label and the Task as
// its controller owner.
func runOf(task *v1alpha1.Task, name string) *v1alpha1.TaskRun {
	return &v1alpha1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: task.Namespace, Name: name,
			Labels: map[string]string{v1alpha1.TaskLabel: v1alpha1.TaskLabelValue(task.Name)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Task",
				Name: task.Name, UID: task.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}},
		Spec: v1alpha1.TaskRunSpec{TaskRef: &v1alpha1.TaskRef{Name: task.Name}, TaskSpec: task.Spec.PluginSpec.DeepCopy(),
			Requester: adminRequester.DeepCopy()},
	}
}

// withRequester sets the run's requester (nil: none, as before requesters
// were recorded).
func withRequester(run *v1alpha1.TaskRun, r *v1alpha1.Requester) *v1alpha1.TaskRun {
	run.Spec.Requester = r
	return run
}

// customImage is a custom-image config as a test writes it; fields left
// empty stay out of the config, as if the webhook's defaulting had not run.
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

// waitForRun waits until the TaskRun reaches phase and returns it.
func waitForRun(t *testing.T, ns, name string, phase v1alpha1.TaskPhase) *v1alpha1.TaskRun {
	t.Helper()
	run := &v1alpha1.TaskRun{}
	testutil.Eventually(t, "run "+name+" to be "+string(phase), func() error {
		if err := get(t, client.ObjectKey{Namespace: ns, Name: name}, run); err != nil {
			return err
		}
		if run.Status.Phase != phase {
			return errNotYet("phase %q (%q)", run.Status.Phase, run.Status.Message)
		}
		return nil
	})
	return run
}

// succeededCondition returns the run's Succeeded condition or fails the test.
func succeededCondition(t *testing.T, run *v1alpha1.TaskRun) metav1.Condition {
	t.Helper()
	c := meta.FindStatusCondition(run.Status.Conditions, v1alpha1.ConditionSucceeded)
	if c == nil {
		t.Fatalf("run %s has no Succeeded condition: %+v", run.Name, run.Status)
	}
	return *c
}

// waitForPod waits until the run's Pod exists and returns it.
func waitForPod(t *testing.T, ns, runName string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{}
	testutil.Eventually(t, "pod of run "+runName, func() error {
		return get(t, client.ObjectKey{Namespace: ns, Name: v1alpha1.PodName(runName)}, pod)
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

// runEvents lists the Events recorded on a TaskRun.
func runEvents(t *testing.T, run *v1alpha1.TaskRun) ([]eventsv1.Event, error) {
	list := &eventsv1.EventList{}
	if err := k8sClient.List(t.Context(), list, client.InNamespace(run.Namespace)); err != nil {
		return nil, err
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.UID == run.UID {
			out = append(out, e)
		}
	}
	return out, nil
}

// waitForEventsList waits for the run's Events of reasons (waitForEvents)
// and returns every Event recorded on it.
func waitForEventsList(t *testing.T, run *v1alpha1.TaskRun, reasons ...string) []eventsv1.Event {
	t.Helper()
	waitForEvents(t, run, reasons...)
	events, err := runEvents(t, run)
	if err != nil {
		t.Fatalf("list the Events of TaskRun %s: %v", run.Name, err)
	}
	return events
}

// runEventReasons lists the reasons of the Events recorded on a TaskRun.
func runEventReasons(t *testing.T, run *v1alpha1.TaskRun) ([]string, error) {
	events, err := runEvents(t, run)
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

// wantOnlyEvent waits for the run's Event of reason and checks it is the
// run's only Event and that its note contains each of notes. The recorder
// sends a TaskRun's Events in the order they were recorded, so any Event
// recorded before the outcome's has been stored by the time it is.
func wantOnlyEvent(t *testing.T, run *v1alpha1.TaskRun, reason string, notes ...string) {
	t.Helper()
	events := waitForEventsList(t, run, reason)
	if len(events) != 1 {
		var got []string
		for _, e := range events {
			got = append(got, e.Reason+": "+e.Note)
		}
		t.Fatalf("events on run %s = %q, want only %s", run.Name, got, reason)
	}
	for _, n := range notes {
		if !strings.Contains(events[0].Note, n) {
			t.Errorf("%s event note = %q, want it to contain %q", reason, events[0].Note, n)
		}
	}
}

// waitForEvents waits until the run carries an Event of each reason.
func waitForEvents(t *testing.T, run *v1alpha1.TaskRun, reasons ...string) {
	t.Helper()
	testutil.Eventually(t, "events on run "+run.Name, func() error {
		got, err := runEventReasons(t, run)
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

// isControlledBy checks obj's controller owner reference points at run and
// that obj carries the run's label and, for a run of a Task, the Task's
// (a one-off run has none).
func isControlledBy(t *testing.T, obj metav1.Object, run *v1alpha1.TaskRun) {
	t.Helper()
	ref := metav1.GetControllerOf(obj)
	if ref == nil || ref.UID != run.UID || ref.Kind != "TaskRun" || ref.Name != run.Name {
		t.Errorf("%s: controller owner reference = %+v, want TaskRun %s (%s)", obj.GetName(), ref, run.Name, run.UID)
	}
	if got := obj.GetLabels()[v1alpha1.TaskRunLabel]; got != v1alpha1.TaskLabelValue(run.Name) {
		t.Errorf("%s: label %s = %q, want %q", obj.GetName(), v1alpha1.TaskRunLabel, got, run.Name)
	}
	got, ok := obj.GetLabels()[v1alpha1.TaskLabel]
	if want := run.TaskName(); want == "" && ok || want != "" && got != v1alpha1.TaskLabelValue(want) {
		t.Errorf("%s: label %s = %q (set %v), want %q", obj.GetName(), v1alpha1.TaskLabel, got, ok, want)
	}
}

// listNames lists the objects of list's kind that opts select and returns
// their names, sorted.
func listNames(t *testing.T, list client.ObjectList, opts ...client.ListOption) []string {
	t.Helper()
	if err := k8sClient.List(t.Context(), list, opts...); err != nil {
		t.Fatal(err)
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(items))
	for _, o := range items {
		names = append(names, o.(client.Object).GetName())
	}
	slices.Sort(names)
	return names
}

// rawPatch is a JSON merge patch for the test client.
func rawPatch(s string) client.Patch {
	return client.RawPatch(types.MergePatchType, []byte(s))
}
