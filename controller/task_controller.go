package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
)

// TaskReconciler carries out admitted Tasks, once each, through the runner of
// the Task's plugin.
//
// Its RBAC is written in one place, the chart's ClusterRole
// (charts/taskgate/templates/rbac.yaml), not in +kubebuilder:rbac markers:
// the rules depend on the chart's values (actAs, enableController,
// enableWebhooks, transformationRules, allowedClusterRoles), which markers
// cannot express, and the tests run the manager under that rendered role
// (test/testutil), so a rule it lacks fails them. In --act-as=requester mode
// the manager has no right of its own to create Pods, bindings or
// Synchronizations, nor to patch anything a transformation names: it sends
// those writes as the requester.
type TaskReconciler struct {
	*deps
	runners map[v1alpha1.Plugin]runner
	// finishedTaskTTL is Options.FinishedTaskTTL: how long a finished Task
	// without spec.ttlSecondsAfterFinished is kept; 0 keeps it.
	finishedTaskTTL time.Duration
	// starts time the Tasks this process started, for the duration metric.
	starts startMarks
}

// Reconcile reads a Task, lets its plugin's runner take the next step, and
// writes the status once, if it changed. A finished Task is never run again:
// its reconciles only remove what its finalizer guards and, once its time to
// live passed, the Task itself.
func (r *TaskReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	task := &v1alpha1.Task{}
	if err := r.client.Get(ctx, req.NamespacedName, task); err != nil {
		if apierrors.IsNotFound(err) {
			r.starts.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	run := r.runners[task.Spec.Plugin]
	if !task.DeletionTimestamp.IsZero() {
		r.starts.forget(req.NamespacedName)
		return ctrl.Result{}, r.cleanup(ctx, task, run)
	}
	if isFinished(&task.Status) {
		return r.afterFinish(ctx, task, run)
	}

	a := &attempt{r: r, task: task, saved: task.Status.DeepCopy()}
	requeueAfter, err := r.step(ctx, task, run, a)
	if err == nil {
		err = a.save(ctx)
	}
	switch {
	case errors.Is(err, errStaleStatus):
		// The watch event carrying the newer Task triggers the next
		// reconcile; the requeue is a safety net.
		log.FromContext(ctx).V(1).Info("status not written: the cached task was stale")
		return ctrl.Result{RequeueAfter: time.Second}, nil
	case errors.Is(err, errTaskGone):
		return ctrl.Result{}, nil // its children go with it (owner references)
	case err != nil:
		return ctrl.Result{}, err
	}
	if !isFinished(&task.Status) {
		return ctrl.Result{RequeueAfter: requeueAfter}, nil
	}
	r.finished(ctx, task)
	return r.afterFinish(ctx, task, run)
}

// afterFinish is every reconcile of a finished Task: what its finalizer
// guards goes first (the binding), then, once its time to live passed, the
// Task.
func (r *TaskReconciler) afterFinish(ctx context.Context, task *v1alpha1.Task, run runner) (ctrl.Result, error) {
	if err := r.cleanup(ctx, task, run); err != nil {
		return ctrl.Result{}, err
	}
	return r.expire(ctx, task)
}

// step starts the clock on a new Task and hands it to its runner.
func (r *TaskReconciler) step(ctx context.Context, task *v1alpha1.Task, run runner, cp checkpointer) (time.Duration, error) {
	if task.Status.StartTime == nil {
		// In whole seconds, as the API server stores it, so the status
		// written compares equal to the status read back; the duration
		// metric is timed from r.starts, to the nanosecond.
		at := r.clock.Now()
		r.starts.start(task, at)
		now := metav1.NewTime(at).Rfc3339Copy()
		task.Status.StartTime = &now
		setProgress(task, ReasonPending, "starting")
	}
	if run == nil {
		fail(task, ReasonUnknownPlugin, fmt.Sprintf("this controller has no runner for plugin %q", task.Spec.Plugin))
		return 0, nil
	}
	// Before anything is created: a Task nobody can be acted for must not
	// leave even a ServiceAccount behind.
	if r.actAs.Mode() == actas.ModeRequester && (task.Spec.Requester == nil || task.Spec.Requester.Username == "") {
		fail(task, ReasonNoRequester, noRequesterMessage)
		return 0, nil
	}
	return run.run(ctx, task, cp)
}

// finished reports a Task that this reconcile made finished: an Event, a log
// line and the metrics, exactly once per Task.
func (r *TaskReconciler) finished(ctx context.Context, task *v1alpha1.Task) {
	d, timed := r.runDuration(task)
	observeFinished(task, d, timed)
	c := task.Status
	log.FromContext(ctx).Info("task finished", "phase", c.Phase, "reason", finishReason(&c), "message", c.Message,
		"duration", d.String())
	if c.Phase == v1alpha1.TaskSucceeded {
		r.event(task, corev1.EventTypeNormal, EventSucceeded, "Finish", "%s", c.Message)
	} else {
		r.event(task, corev1.EventTypeWarning, EventFailed, "Finish", "%s", c.Message)
	}
}

// cleanup removes what the Task's finalizer guards, then the finalizer. It
// also runs without the finalizer when the status names a binding: someone
// may have stripped the finalizer of a finished Task (the sweeper catches a
// binding whose Task is gone altogether).
func (r *TaskReconciler) cleanup(ctx context.Context, task *v1alpha1.Task, run runner) error {
	has := controllerutil.ContainsFinalizer(task, v1alpha1.Finalizer)
	if !has && (task.Status.CustomImage == nil || task.Status.CustomImage.ClusterRoleBindingName == "") {
		return nil
	}
	if c, ok := run.(cleaner); ok {
		if err := c.cleanup(ctx, task); err != nil {
			return err
		}
	}
	if !has {
		return nil
	}
	return r.setFinalizer(ctx, task, false)
}

// setFinalizer adds or removes the Task's finalizer with an optimistic-locked
// patch of a copy, so that the status this reconcile is building is not
// overwritten by the server's answer.
func (d *deps) setFinalizer(ctx context.Context, task *v1alpha1.Task, present bool) error {
	patched := task.DeepCopy()
	var changed bool
	if present {
		changed = controllerutil.AddFinalizer(patched, v1alpha1.Finalizer)
	} else {
		changed = controllerutil.RemoveFinalizer(patched, v1alpha1.Finalizer)
	}
	if !changed {
		return nil
	}
	base := client.MergeFromWithOptions(task, client.MergeFromWithOptimisticLock{})
	if err := d.client.Patch(ctx, patched, base); err != nil {
		return fmt.Errorf("update finalizers of task %s/%s: %w", task.Namespace, task.Name, err)
	}
	task.Finalizers = patched.Finalizers
	task.ResourceVersion = patched.ResourceVersion
	return nil
}

// errStaleStatus: the reconcile worked from a cached Task whose status has
// since moved on. Nothing was written; the newer Task is reconciled next.
var errStaleStatus = errors.New("task status changed since it was read")

// errTaskGone: the Task was deleted while it was being reconciled.
var errTaskGone = errors.New("task deleted")

// attempt is one reconcile's view of a Task's status: what the API server
// holds (saved) and what the runner made of it (task.Status).
type attempt struct {
	r     *TaskReconciler
	task  *v1alpha1.Task
	saved *v1alpha1.TaskStatus
}

// save writes the Task's status if it differs from what the API server holds.
func (a *attempt) save(ctx context.Context) error {
	deriveStatus(a.task, metav1.NewTime(a.r.clock.Now()).Rfc3339Copy())
	if equality.Semantic.DeepEqual(a.saved, &a.task.Status) {
		return nil
	}
	err := a.r.client.Status().Update(ctx, a.task)
	if apierrors.IsConflict(err) {
		err = a.updateFresh(ctx)
	}
	if apierrors.IsNotFound(err) {
		return errTaskGone
	}
	if err != nil {
		return fmt.Errorf("update status of task %s/%s: %w", a.task.Namespace, a.task.Name, err)
	}
	a.saved = a.task.Status.DeepCopy()
	return nil
}

// updateFresh handles a conflict caused by a change elsewhere in the Task
// (labels, finalizers): it writes the status onto a fresh copy, but only
// while the stored status is still the one this reconcile worked from.
// Otherwise the reconcile saw a stale Task and must start over; the conflict
// is returned and the request is retried.
func (a *attempt) updateFresh(ctx context.Context) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		fresh := &v1alpha1.Task{}
		if err := a.r.reader.Get(ctx, client.ObjectKeyFromObject(a.task), fresh); err != nil {
			return err
		}
		if !equality.Semantic.DeepEqual(a.saved, &fresh.Status) {
			return errStaleStatus
		}
		fresh.Status = *a.task.Status.DeepCopy()
		if err := a.r.client.Status().Update(ctx, fresh); err != nil {
			return err
		}
		*a.task = *fresh
		return nil
	})
}
