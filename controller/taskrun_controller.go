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

// TaskRunReconciler carries out admitted runs, once each, through the runner of
// the run's plugin.
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
type TaskRunReconciler struct {
	*deps
	runners map[v1alpha1.Plugin]runner
	// finishedTaskTTL is Options.FinishedTaskTTL: how long a finished Task
	// without spec.ttlSecondsAfterFinished is kept; 0 keeps it.
	finishedTaskTTL time.Duration
	// starts time the runs this process started, for the duration metric.
	starts startMarks
}

// Reconcile reads a run, lets its plugin's runner take the next step, and
// writes the status once, if it changed. A finished Task is never run again:
// its reconciles only remove what its finalizer guards and, once its time to
// live passed, the run itself.
func (r *TaskRunReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	run := &v1alpha1.TaskRun{}
	if err := r.client.Get(ctx, req.NamespacedName, run); err != nil {
		if apierrors.IsNotFound(err) {
			r.starts.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	rn := r.runners[run.Plugin()]
	if !run.DeletionTimestamp.IsZero() {
		r.starts.forget(req.NamespacedName)
		return ctrl.Result{}, r.cleanup(ctx, run, rn)
	}
	if isFinished(&run.Status) {
		return r.afterFinish(ctx, run, rn)
	}

	a := &attempt{r: r, run: run, saved: run.Status.DeepCopy()}
	requeueAfter, err := r.step(ctx, run, rn, a)
	if err == nil {
		err = a.save(ctx)
	}
	switch {
	case errors.Is(err, errStaleStatus):
		// The watch event carrying the newer Task triggers the next
		// reconcile; the requeue is a safety net.
		log.FromContext(ctx).V(1).Info("status not written: the cached taskrun was stale")
		return ctrl.Result{RequeueAfter: time.Second}, nil
	case errors.Is(err, errTaskGone):
		return ctrl.Result{}, nil // its children go with it (owner references)
	case err != nil:
		return ctrl.Result{}, err
	}
	if !isFinished(&run.Status) {
		return ctrl.Result{RequeueAfter: requeueAfter}, nil
	}
	r.finished(ctx, run)
	return r.afterFinish(ctx, run, rn)
}

// afterFinish is every reconcile of a finished Task: what its finalizer
// guards goes first (the binding), then, once its time to live passed, the
// Task.
func (r *TaskRunReconciler) afterFinish(ctx context.Context, run *v1alpha1.TaskRun, rn runner) (ctrl.Result, error) {
	if err := r.cleanup(ctx, run, rn); err != nil {
		return ctrl.Result{}, err
	}
	return r.expire(ctx, run)
}

// step starts the clock on a new Task and hands it to its runner.
func (r *TaskRunReconciler) step(ctx context.Context, run *v1alpha1.TaskRun, rn runner, cp checkpointer) (time.Duration, error) {
	if run.Status.StartTime == nil {
		// Decided before the clock starts, so a run that started is never
		// refused afterwards: see firstRun.
		blocker, err := r.firstRun(ctx, run)
		if err != nil {
			return 0, err
		}
		if blocker != "" {
			fail(run, ReasonConcurrencyForbidden, fmt.Sprintf("TaskRun %s of Task %s was admitted first and has not finished; "+
				"the Task's concurrencyPolicy is Forbid, so this run did not start: run it again once %s finished", blocker, run.TaskName(), blocker))
			return 0, nil
		}
	}
	if run.Status.StartTime == nil {
		// In whole seconds, as the API server stores it, so the status
		// written compares equal to the status read back; the duration
		// metric is timed from r.starts, to the nanosecond.
		at := r.clock.Now()
		r.starts.start(run, at)
		now := metav1.NewTime(at).Rfc3339Copy()
		run.Status.StartTime = &now
		setProgress(run, ReasonPending, "starting")
	}
	if run.Spec.TaskSpec == nil {
		fail(run, ReasonNoSnapshot, "the TaskRun has no spec.taskSpec: taskgate's webhook records the Task's spec there at admission, "+
			"and this TaskRun was created without it, so nothing was admitted to run; create it again with the webhook installed")
		return 0, nil
	}
	if rn == nil {
		fail(run, ReasonUnknownPlugin, fmt.Sprintf("this controller has no runner for plugin %q", run.Plugin()))
		return 0, nil
	}
	// Before anything is created: a run nobody can be acted for must not
	// leave even a ServiceAccount behind.
	if r.actAs.Mode() == actas.ModeRequester && (run.Spec.Requester == nil || run.Spec.Requester.Username == "") {
		fail(run, ReasonNoRequester, noRequesterMessage)
		return 0, nil
	}
	return rn.run(ctx, run, cp)
}

// firstRun enforces a Task's concurrencyPolicy Forbid where admission
// cannot: for runs admitted at the same instant. It returns the name of
// another unfinished run of the same Task that goes first, or "" when run
// may start. A run goes first when it has started, or when it was created
// earlier (creationTimestamp, then name, breaking ties), so of runs admitted
// together exactly one starts, whatever order they are reconciled in: the
// earliest never waits for a later one that has not started, and a later one
// never starts while an earlier one is unfinished. The Task's policy is read
// from the cache (a run of an Allow Task costs no request; admission checked
// Forbid against the API server already), the runs from the API server, so
// a run created a moment ago is seen.
func (r *TaskRunReconciler) firstRun(ctx context.Context, run *v1alpha1.TaskRun) (string, error) {
	name := run.TaskName()
	if name == "" {
		return "", nil
	}
	task := &v1alpha1.Task{}
	key := client.ObjectKey{Namespace: run.Namespace, Name: name}
	err := r.client.Get(ctx, key, task)
	if apierrors.IsNotFound(err) {
		err = r.reader.Get(ctx, key, task) // a Task created a moment ago: not cached yet
	}
	if err != nil {
		return "", client.IgnoreNotFound(err) // a Task deleted since: its runs go with it
	}
	if task.Spec.ConcurrencyPolicy != v1alpha1.ConcurrencyForbid {
		return "", nil
	}
	runs := &v1alpha1.TaskRunList{}
	if err := r.reader.List(ctx, runs, client.InNamespace(run.Namespace),
		client.MatchingLabels{v1alpha1.TaskLabel: v1alpha1.TaskLabelValue(name)}); err != nil {
		return "", fmt.Errorf("list runs of task %s/%s: %w", run.Namespace, name, err)
	}
	for i := range runs.Items {
		o := &runs.Items[i]
		if o.UID == run.UID || o.TaskName() != name || isFinished(&o.Status) {
			continue
		}
		if o.Status.StartTime != nil || createdBefore(o, run) {
			return o.Name, nil
		}
	}
	return "", nil
}

// createdBefore orders runs by creation: creationTimestamp (whole seconds),
// then name.
func createdBefore(a, b *v1alpha1.TaskRun) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// finished reports a run that this reconcile made finished: an Event, a log
// line and the metrics, exactly once per run.
func (r *TaskRunReconciler) finished(ctx context.Context, run *v1alpha1.TaskRun) {
	d, timed := r.runDuration(run)
	observeFinished(run, d, timed)
	c := run.Status
	log.FromContext(ctx).Info("taskrun finished", "phase", c.Phase, "reason", finishReason(&c), "message", c.Message,
		"duration", d.String())
	if c.Phase == v1alpha1.TaskSucceeded {
		r.event(run, corev1.EventTypeNormal, EventSucceeded, "Finish", "%s", c.Message)
	} else {
		r.event(run, corev1.EventTypeWarning, EventFailed, "Finish", "%s", c.Message)
	}
}

// cleanup removes what the run's finalizer guards, then the finalizer. It
// also runs without the finalizer when the status names a binding: someone
// may have stripped the finalizer of a finished Task (the sweeper catches a
// binding whose Task is gone altogether).
func (r *TaskRunReconciler) cleanup(ctx context.Context, run *v1alpha1.TaskRun, rn runner) error {
	has := controllerutil.ContainsFinalizer(run, v1alpha1.Finalizer)
	if !has && (run.Status.CustomImage == nil || run.Status.CustomImage.ClusterRoleBindingName == "") {
		return nil
	}
	if c, ok := rn.(cleaner); ok {
		if err := c.cleanup(ctx, run); err != nil {
			return err
		}
	}
	if !has {
		return nil
	}
	return r.setFinalizer(ctx, run, false)
}

// setFinalizer adds or removes the run's finalizer with an optimistic-locked
// patch of a copy, so that the status this reconcile is building is not
// overwritten by the server's answer.
func (d *deps) setFinalizer(ctx context.Context, run *v1alpha1.TaskRun, present bool) error {
	patched := run.DeepCopy()
	var changed bool
	if present {
		changed = controllerutil.AddFinalizer(patched, v1alpha1.Finalizer)
	} else {
		changed = controllerutil.RemoveFinalizer(patched, v1alpha1.Finalizer)
	}
	if !changed {
		return nil
	}
	base := client.MergeFromWithOptions(run, client.MergeFromWithOptimisticLock{})
	if err := d.client.Patch(ctx, patched, base); err != nil {
		return fmt.Errorf("update finalizers of taskrun %s/%s: %w", run.Namespace, run.Name, err)
	}
	run.Finalizers = patched.Finalizers
	run.ResourceVersion = patched.ResourceVersion
	return nil
}

// errStaleStatus: the reconcile worked from a cached Task whose status has
// since moved on. Nothing was written; the newer Task is reconciled next.
var errStaleStatus = errors.New("taskrun status changed since it was read")

// errTaskGone: the run was deleted while it was being reconciled.
var errTaskGone = errors.New("taskrun deleted")

// attempt is one reconcile's view of a run's status: what the API server
// holds (saved) and what the runner made of it (run.Status).
type attempt struct {
	r     *TaskRunReconciler
	run   *v1alpha1.TaskRun
	saved *v1alpha1.TaskRunStatus
}

// save writes the run's status if it differs from what the API server holds.
func (a *attempt) save(ctx context.Context) error {
	deriveStatus(a.run, metav1.NewTime(a.r.clock.Now()).Rfc3339Copy())
	if equality.Semantic.DeepEqual(a.saved, &a.run.Status) {
		return nil
	}
	// A copy goes out and only the metadata comes back: the runner holds
	// pointers into a.run.Status (status.customImage) that it goes on
	// writing after a checkpoint, and decoding the answer into a.run would
	// leave them pointing at a struct that is no longer the run's.
	sent := a.run.DeepCopy()
	err := a.r.client.Status().Update(ctx, sent)
	if err == nil {
		a.run.ObjectMeta = sent.ObjectMeta
	}
	if apierrors.IsConflict(err) {
		err = a.updateFresh(ctx)
	}
	if apierrors.IsNotFound(err) {
		return errTaskGone
	}
	if err != nil {
		return fmt.Errorf("update status of taskrun %s/%s: %w", a.run.Namespace, a.run.Name, err)
	}
	a.saved = a.run.Status.DeepCopy()
	return nil
}

// updateFresh handles a conflict caused by a change elsewhere in the run
// (labels, finalizers): it writes the status onto a fresh copy, but only
// while the stored status is still the one this reconcile worked from.
// Otherwise the reconcile saw a stale Task and must start over; the conflict
// is returned and the request is retried.
func (a *attempt) updateFresh(ctx context.Context) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		fresh := &v1alpha1.TaskRun{}
		if err := a.r.reader.Get(ctx, client.ObjectKeyFromObject(a.run), fresh); err != nil {
			return err
		}
		if !equality.Semantic.DeepEqual(a.saved, &fresh.Status) {
			return errStaleStatus
		}
		fresh.Status = *a.run.Status.DeepCopy()
		if err := a.r.client.Status().Update(ctx, fresh); err != nil {
			return err
		}
		a.run.ObjectMeta = fresh.ObjectMeta // the status stays a.run's own (see save)
		return nil
	})
}
