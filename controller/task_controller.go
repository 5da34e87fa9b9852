package controller

import (
	"context"
	"fmt"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/children"
)

// Defaults of the run history a Task keeps, like a CronJob's.
const (
	DefaultSuccessfulRunsHistoryLimit int32 = 3
	DefaultFailedRunsHistoryLimit     int32 = 1
)

// TaskReconciler keeps a Task's status (its last run, how many runs are
// going) and its run history: of its finished TaskRuns it keeps the newest
// spec.successfulRunsHistoryLimit succeeded and spec.failedRunsHistoryLimit
// failed ones (else the installation's defaults) and deletes the rest, with
// their children, as a CronJob does with its Jobs. It never runs anything.
//
// A run belongs to a Task by its controller owner reference, which the
// webhook sets from the Task it resolved at admission (name and UID): a
// TaskRun that merely carries the Task's name or label is never counted,
// nor deleted, as one of its runs.
//
// A Task created by a taskgate before TaskRuns may hold the finalizer and a
// ClusterRoleBinding of its own run; this reconciler removes both (the
// binding only when it carries that Task's UID) and never runs it again.
type TaskReconciler struct {
	client          client.Client
	reader          client.Reader // ClusterRoleBindings, which are never cached
	successfulLimit int32
	failedLimit     int32
}

// Reconcile reads a Task and its runs and brings status and history up to date.
func (r *TaskReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	task := &v1alpha1.Task{}
	if err := r.client.Get(ctx, req.NamespacedName, task); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if controllerutil.ContainsFinalizer(task, v1alpha1.Finalizer) {
		if err := r.releaseLegacy(ctx, task); err != nil {
			return ctrl.Result{}, err
		}
	}
	if !task.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // its runs go with it (owner references)
	}
	list := &v1alpha1.TaskRunList{}
	if err := r.client.List(ctx, list, client.InNamespace(task.Namespace),
		client.MatchingLabels{v1alpha1.TaskLabel: v1alpha1.TaskLabelValue(task.Name)}); err != nil {
		return ctrl.Result{}, fmt.Errorf("list runs of task %s/%s: %w", task.Namespace, task.Name, err)
	}
	runs := make([]*v1alpha1.TaskRun, 0, len(list.Items))
	for i := range list.Items {
		if metav1.IsControlledBy(&list.Items[i], task) {
			runs = append(runs, &list.Items[i])
		}
	}
	if err := r.prune(ctx, task, runs); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.writeStatus(ctx, task, runs)
}

// writeStatus records the Task's last run and its count of unfinished runs,
// with a merge patch of those fields alone, if they changed.
func (r *TaskReconciler) writeStatus(ctx context.Context, task *v1alpha1.Task, runs []*v1alpha1.TaskRun) error {
	var last *v1alpha1.TaskRun
	var active int32
	for _, run := range runs {
		if run.DeletionTimestamp.IsZero() && !isFinished(&run.Status) {
			active++
		}
		if last == nil || createdBefore(last, run) {
			last = run
		}
	}
	var ref *v1alpha1.RunReference
	if last != nil {
		phase, _ := taskPhase(last.Status.Conditions)
		ref = &v1alpha1.RunReference{Name: last.Name, Phase: phase, StartTime: last.Status.StartTime, CompletionTime: last.Status.CompletionTime}
	}
	if equality.Semantic.DeepEqual(task.Status.LastRun, ref) && task.Status.ActiveRuns == active {
		return nil
	}
	base := task.DeepCopy()
	task.Status.LastRun, task.Status.ActiveRuns = ref, active
	if err := r.client.Status().Patch(ctx, task, client.MergeFrom(base)); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("update status of task %s/%s: %w", task.Namespace, task.Name, err))
	}
	return nil
}

// prune deletes the finished runs beyond the Task's history limits, oldest
// first, each with a UID precondition (a run re-created under the same name
// is another run) and background propagation (its children go after it).
func (r *TaskReconciler) prune(ctx context.Context, task *v1alpha1.Task, runs []*v1alpha1.TaskRun) error {
	var succeeded, failed []*v1alpha1.TaskRun
	for _, run := range runs {
		if !run.DeletionTimestamp.IsZero() || !isFinished(&run.Status) {
			continue
		}
		if phase, _ := taskPhase(run.Status.Conditions); phase == v1alpha1.TaskSucceeded {
			succeeded = append(succeeded, run)
		} else {
			failed = append(failed, run)
		}
	}
	limit := func(p *int32, def int32) int {
		if p != nil {
			return int(*p)
		}
		return int(def)
	}
	excess := append(oldest(succeeded, limit(task.Spec.SuccessfulRunsHistoryLimit, r.successfulLimit)),
		oldest(failed, limit(task.Spec.FailedRunsHistoryLimit, r.failedLimit))...)
	for _, run := range excess {
		uid := run.UID
		err := r.client.Delete(ctx, run, client.PropagationPolicy(metav1.DeletePropagationBackground), client.Preconditions{UID: &uid})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete taskrun %s/%s beyond the task's history limit: %w", run.Namespace, run.Name, err)
		}
		log.FromContext(ctx).Info("taskrun deleted: beyond its task's history limit", "taskrun", klog.KObj(run), "phase", run.Status.Phase)
	}
	return nil
}

// oldest returns the runs beyond the newest keep of them, by completion.
func oldest(runs []*v1alpha1.TaskRun, keep int) []*v1alpha1.TaskRun {
	if len(runs) <= keep {
		return nil
	}
	slices.SortFunc(runs, func(a, b *v1alpha1.TaskRun) int {
		at, bt := a.Status.CompletionTime, b.Status.CompletionTime
		switch {
		case at == nil || bt == nil || at.Equal(bt):
			if createdBefore(a, b) {
				return 1
			}
			return -1
		case at.Before(bt):
			return 1
		}
		return -1
	})
	return runs[keep:]
}

// releaseLegacy removes what a Task created by a taskgate before TaskRuns
// left under its finalizer: the ClusterRoleBinding of its own run (only
// one that carries the Task's UID), then the finalizer. Such a Task is
// never run again; its status and children stay.
func (r *TaskReconciler) releaseLegacy(ctx context.Context, task *v1alpha1.Task) error {
	name := v1alpha1.ClusterRoleBindingName(task.Namespace, task.Name)
	crb := &rbacv1.ClusterRoleBinding{}
	err := r.reader.Get(ctx, client.ObjectKey{Name: name}, crb)
	switch {
	case err == nil && task.UID != "" && crb.Labels[v1alpha1.TaskUIDLabel] == string(task.UID) && crb.Labels[children.TaskNamespaceLabel] == task.Namespace:
		if err := r.client.Delete(ctx, crb, client.Preconditions{UID: &crb.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete cluster role binding %s of task %s/%s: %w", name, task.Namespace, task.Name, err)
		}
		log.FromContext(ctx).Info("removed the cluster role binding of a task created before TaskRuns", "clusterRoleBinding", name)
	case err != nil && !apierrors.IsNotFound(err):
		return fmt.Errorf("get cluster role binding %s: %w", name, err)
	}
	patched := task.DeepCopy()
	controllerutil.RemoveFinalizer(patched, v1alpha1.Finalizer)
	if err := r.client.Patch(ctx, patched, client.MergeFromWithOptions(task, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("remove finalizer of task %s/%s: %w", task.Namespace, task.Name, err))
	}
	*task = *patched
	return nil
}

// setup registers the Task controller: Tasks, and the TaskRuns they own.
func (r *TaskReconciler) setup(mgr ctrl.Manager, workers int) error {
	err := ctrl.NewControllerManagedBy(mgr).Named("task").
		For(&v1alpha1.Task{}).
		Owns(&v1alpha1.TaskRun{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
	if err != nil {
		return fmt.Errorf("controller task: %w", err)
	}
	return nil
}
