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
func (r *TaskRunReconciler) finishedTTL(run *v1alpha1.TaskRun) (ttl time.Duration, ok bool) {
	if s := run.Spec.TTLSecondsAfterFinished; s != nil {
		return time.Duration(*s) * time.Second, true
	}
	return r.finishedTaskTTL, r.finishedTaskTTL > 0
}

// expire deletes a finished Task once its completionTime plus its TTL has
// passed, and otherwise asks to be called again when that is due. Call it
// only after cleanup: the binding is gone and the finalizer removed, so the
// Task goes at once. Background propagation: the API server deletes the run
// now and the garbage collector its owned children (Pod, ServiceAccount,
// Synchronization) after it, as for a Job's TTL.
func (r *TaskRunReconciler) expire(ctx context.Context, run *v1alpha1.TaskRun) (ctrl.Result, error) {
	ttl, ok := r.finishedTTL(run)
	if !ok || run.Status.CompletionTime == nil {
		return ctrl.Result{}, nil
	}
	if wait := run.Status.CompletionTime.Add(ttl).Sub(r.clock.Now()); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	// The UID precondition: a run created anew under the same name since
	// this one was read is not this run and is not deleted.
	uid := run.UID
	err := r.client.Delete(ctx, run, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: &uid})
	switch {
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		return ctrl.Result{}, nil // gone already, or replaced
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("delete finished taskrun %s/%s: %w", run.Namespace, run.Name, err)
	}
	log.FromContext(ctx).Info("finished taskrun deleted: its time to live passed", "ttl", ttl.String(),
		"completionTime", run.Status.CompletionTime.UTC().Format(time.RFC3339), "phase", run.Status.Phase)
	return ctrl.Result{}, nil
}
