package controller

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// finishedTTL is how long a finished Task is kept: its
// spec.ttlSecondsAfterFinished, else the manager's default
// (Options.FinishedTaskTTL). ok is false when it is kept for good.
func (r *TaskReconciler) finishedTTL(task *v1alpha1.Task) (ttl time.Duration, ok bool) {
	if s := task.Spec.TTLSecondsAfterFinished; s != nil {
		return time.Duration(*s) * time.Second, true
	}
	return r.finishedTaskTTL, r.finishedTaskTTL > 0
}

// expire deletes a finished Task once its completionTime plus its TTL has
// passed, and otherwise asks to be called again when that is due. Call it
// only after cleanup: the binding is gone and the finalizer removed, so the
// Task goes at once. Background propagation: the API server deletes the Task
// now and the garbage collector its owned children (Pod, ServiceAccount,
// Synchronization) after it, as for a Job's TTL.
func (r *TaskReconciler) expire(ctx context.Context, task *v1alpha1.Task) (ctrl.Result, error) {
	ttl, ok := r.finishedTTL(task)
	if !ok || task.Status.CompletionTime == nil {
		return ctrl.Result{}, nil
	}
	if wait := task.Status.CompletionTime.Add(ttl).Sub(r.clock.Now()); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	// The UID precondition: a Task created anew under the same name since
	// this one was read is not this Task and is not deleted.
	uid := task.UID
	err := r.client.Delete(ctx, task, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: &uid})
	switch {
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		return ctrl.Result{}, nil // gone already, or replaced
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("delete finished task %s/%s: %w", task.Namespace, task.Name, err)
	}
	log.FromContext(ctx).Info("finished task deleted: its time to live passed", "ttl", ttl.String(),
		"completionTime", task.Status.CompletionTime.UTC().Format(time.RFC3339), "phase", task.Status.Phase)
	return ctrl.Result{}, nil
}
