package controller

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// trimTransform is the manager cache's transform: it keeps of each object
// only what the controller reads, so the cache's size follows the number of
// objects, not what anyone wrote into them. Anyone who may create Pods,
// ServiceAccounts or Synchronizations in a namespace can put taskgate's run
// label on them, and with it into this cache: a Pod or ServiceAccount with a
// 200 KiB annotation costs a few hundred bytes here (test: TestTrimTransform;
// benchmark: make bench's cache-growth row).
//
//   - every object: managed fields and annotations go (a Pod keeps only
//     v1alpha1.CreationTokenAnnotation), labels keep only taskgate's own;
//   - Pods keep spec.activeDeadlineSeconds and serviceAccountName and the
//     status the runner follows (phase, reason, message, the container
//     states); ServiceAccounts keep their metadata alone;
//   - a Pod, ServiceAccount or Synchronization that no TaskRun controls keeps
//     its metadata alone: the controller only ever needs to know it is not
//     its own.
//
// TaskRuns and Tasks keep spec and status: they are admitted objects whose
// size admission bounds.
func trimTransform(obj any) (any, error) {
	o, ok := obj.(client.Object)
	if !ok {
		return obj, nil
	}
	o.SetManagedFields(nil)
	switch v := o.(type) {
	case *v1alpha1.Task, *v1alpha1.TaskRun:
		o.SetAnnotations(nil)
		return o, nil
	case *corev1.Pod:
		owned := controlledByTaskRun(v)
		trimMeta(&v.ObjectMeta, v1alpha1.CreationTokenAnnotation)
		if !owned {
			v.Spec, v.Status = corev1.PodSpec{}, corev1.PodStatus{}
			return v, nil
		}
		v.Spec = corev1.PodSpec{ActiveDeadlineSeconds: v.Spec.ActiveDeadlineSeconds, ServiceAccountName: v.Spec.ServiceAccountName}
		statuses := make([]corev1.ContainerStatus, 0, len(v.Status.ContainerStatuses))
		for _, cs := range v.Status.ContainerStatuses {
			statuses = append(statuses, corev1.ContainerStatus{Name: cs.Name, State: cs.State})
		}
		v.Status = corev1.PodStatus{Phase: v.Status.Phase, Reason: v.Status.Reason, Message: v.Status.Message, ContainerStatuses: statuses}
		return v, nil
	case *corev1.ServiceAccount:
		trimMeta(&v.ObjectMeta)
		v.Secrets, v.ImagePullSecrets, v.AutomountServiceAccountToken = nil, nil, nil
		return v, nil
	case *v1alpha1.Synchronization:
		owned := controlledByTaskRun(v)
		trimMeta(&v.ObjectMeta)
		v.Spec = v1alpha1.SynchronizationSpec{}
		if !owned {
			v.Status = v1alpha1.SynchronizationStatus{}
		}
		return v, nil
	}
	o.SetAnnotations(nil)
	return o, nil
}

// trimMeta keeps of a child's metadata its identity, ownership, taskgate's
// labels and the annotations named in keep.
func trimMeta(m *metav1.ObjectMeta, keep ...string) {
	labels := map[string]string{}
	for _, k := range []string{v1alpha1.TaskLabel, v1alpha1.TaskRunLabel} {
		if v, ok := m.Labels[k]; ok {
			labels[k] = v
		}
	}
	var annotations map[string]string
	for _, k := range keep {
		if v, ok := m.Annotations[k]; ok {
			if annotations == nil {
				annotations = map[string]string{}
			}
			annotations[k] = v
		}
	}
	m.Labels, m.Annotations = labels, annotations
}

// controlledByTaskRun reports whether o's controller is a TaskRun.
func controlledByTaskRun(o metav1.Object) bool {
	ref := metav1.GetControllerOf(o)
	return ref != nil && ref.Kind == "TaskRun" && ref.APIVersion == v1alpha1.GroupVersion.String()
}
