package controller

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// What a namespace editor can put into the cache by labelling an object as
// a run's costs a few hundred bytes whatever its size, and what the runner
// reads of a run's own Pod survives the trim.
func TestTrimTransform(t *testing.T) {
	big := strings.Repeat("x", 200<<10)
	runOwner := []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "TaskRun", Name: "r", UID: "u", Controller: ptr.To(true)}}
	meta := func(owners []metav1.OwnerReference) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "pod-uid", OwnerReferences: owners,
			Labels:        map[string]string{v1alpha1.TaskRunLabel: "r", v1alpha1.TaskLabel: "t", "junk": "y"},
			Annotations:   map[string]string{"big": big, v1alpha1.CreationTokenAnnotation: "tok"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}
	}
	term := &corev1.ContainerStateTerminated{ExitCode: 3, Message: "boom"}
	fullPod := func(owners []metav1.OwnerReference) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: meta(owners),
			Spec: corev1.PodSpec{ActiveDeadlineSeconds: ptr.To[int64](60), ServiceAccountName: "sa",
				Containers: []corev1.Container{{Name: "task", Image: "busybox", Command: []string{big}}}},
			Status: corev1.PodStatus{Phase: corev1.PodFailed, Reason: "r", Message: "m",
				ContainerStatuses: []corev1.ContainerStatus{{Name: "task", Image: big, State: corev1.ContainerState{Terminated: term}}}}}
	}
	size := func(o any) int {
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}

	got, err := trimTransform(fullPod(runOwner))
	if err != nil {
		t.Fatal(err)
	}
	pod := got.(*corev1.Pod)
	if n := size(pod); n > 2048 {
		t.Errorf("a run's Pod is %d bytes in the cache, want under 2 KiB", n)
	}
	if pod.UID != "pod-uid" || pod.Annotations[v1alpha1.CreationTokenAnnotation] != "tok" || len(pod.Annotations) != 1 ||
		pod.Labels[v1alpha1.TaskRunLabel] != "r" || pod.Labels["junk"] != "" || len(pod.ManagedFields) != 0 ||
		!metav1.IsControlledBy(pod, &metav1.ObjectMeta{UID: "u"}) {
		t.Errorf("metadata after trim = %+v", pod.ObjectMeta)
	}
	if ptr.Deref(pod.Spec.ActiveDeadlineSeconds, 0) != 60 || pod.Spec.ServiceAccountName != "sa" || pod.Status.Phase != corev1.PodFailed ||
		pod.Status.Reason != "r" || pod.Status.Message != "m" || terminated(pod) == nil || terminated(pod).ExitCode != 3 {
		t.Errorf("what the runner reads did not survive: spec %+v status %+v", pod.Spec, pod.Status)
	}

	for name, obj := range map[string]any{
		"a Pod no run controls":            fullPod(nil),
		"a ServiceAccount with a big note": &corev1.ServiceAccount{ObjectMeta: meta(nil)},
		"a run's ServiceAccount":           &corev1.ServiceAccount{ObjectMeta: meta(runOwner)},
		"a Synchronization no run controls": &v1alpha1.Synchronization{ObjectMeta: meta(nil),
			Spec: v1alpha1.SynchronizationSpec{Plugin: big}},
	} {
		got, err := trimTransform(obj)
		if err != nil {
			t.Fatal(err)
		}
		if n := size(got); n > 1024 {
			t.Errorf("%s is %d bytes in the cache, want under 1 KiB", name, n)
		}
	}
}
