package controller

import (
	"context"
	"fmt"
	"maps"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/children"
)

// Condition types a Synchronization's operator may report. taskgate only
// reads them.
const (
	syncConditionSucceeded = "Succeeded"
	syncConditionFailed    = "Failed"
)

// runSyncRunner creates one Synchronization from the run's template.
//
// The run succeeds as soon as its Synchronization exists: a Synchronization
// is the operator's long-lived object (it may keep synchronising for ever),
// and waiting for it to end would leave most runs running for ever. If the
// Synchronization already reports an outcome when the run looks at it (a
// restarted controller finding one the operator has processed), the run
// mirrors it instead: Succeeded=True succeeds, Succeeded=False or Failed=True
// fails. A finished Task is not looked at again, so what the Synchronization
// reports later is its own business.
type runSyncRunner struct {
	*deps
}

// watch watches the Synchronizations the runs created, where the cluster
// serves them. Without the CRD a watch would keep the controller from
// starting; run-synchronization runs then fail with
// ReasonSynchronizationNotServed.
func (s *runSyncRunner) watch(mgr ctrl.Manager, b *builder.Builder) *builder.Builder {
	if err := synchronizationsServed(mgr.GetRESTMapper()); err != nil {
		mgr.GetLogger().Info("synchronizations are not served: run-synchronization runs fail while the CRD is missing (restart taskgate after installing it to watch them)",
			"groupVersion", v1alpha1.GroupVersion.String(), "reason", err.Error())
		return b
	}
	// The run finishes in the reconcile that creates its Synchronization,
	// so the create event brings nothing new: it would only reconcile the
	// Task again, ahead of its own status update (a stale read and a 409).
	// After a restart every Task is reconciled through its own watch anyway.
	return b.Owns(&v1alpha1.Synchronization{}, builder.WithPredicates(predicate.Funcs{
		CreateFunc: func(event.CreateEvent) bool { return false },
	}))
}

func (s *runSyncRunner) run(ctx context.Context, run *v1alpha1.TaskRun, _ checkpointer) (time.Duration, error) {
	cfg, err := decodeConfig[v1alpha1.RunSynchronizationConfig](run)
	if err != nil {
		return 0, failPermanent(run, err)
	}
	sync, err := s.ensureSynchronization(ctx, run, cfg)
	if meta.IsNoMatchError(err) {
		fail(run, ReasonSynchronizationNotServed, "the cluster does not serve synchronizations."+
			v1alpha1.GroupVersion.String()+": install the Astronetes operator, or the minimal CRD (chart value synchronizationCRD.install=true, or dist/synchronization-crd.yaml)")
		return 0, nil
	}
	if err != nil {
		return 0, failPermanent(run, err)
	}
	run.Status.Synchronization = &v1alpha1.SynchronizationRunStatus{Name: sync.Name}
	mirror(run, sync)
	return 0, nil
}

// ensureSynchronization returns the run's Synchronization, creating it the
// first time.
func (s *runSyncRunner) ensureSynchronization(ctx context.Context, run *v1alpha1.TaskRun, cfg *v1alpha1.RunSynchronizationConfig) (*v1alpha1.Synchronization, error) {
	key := types.NamespacedName{Namespace: run.Namespace, Name: v1alpha1.SynchronizationName(run.Name)}
	sync := &v1alpha1.Synchronization{}
	err := s.client.Get(ctx, key, sync)
	if apierrors.IsNotFound(err) {
		// Created as the requester: the operator runs a Synchronization
		// with its own rights, so only someone who may create one by hand
		// gets one through a run.
		clients, cerr := s.clientsFor(run)
		if cerr != nil {
			return nil, cerr
		}
		sync = newSynchronization(run, cfg)
		err = clients.Client.Create(ctx, sync)
		switch {
		case err == nil:
			// No Event of its own: the run finishes in this reconcile, and
			// its Succeeded Event names the Synchronization (one Event
			// per run instead of two; see Events in the README).
			log.FromContext(ctx).Info("synchronization created", "synchronization", klog.KObj(sync), "plugin", sync.Spec.Plugin)
			return sync, nil
		case apierrors.IsAlreadyExists(err):
			// Created by an earlier reconcile the cache has not caught up with.
			err = s.reader.Get(ctx, key, sync)
		case apierrors.IsInvalid(err):
			return nil, fmt.Errorf("%w: the API server refused synchronization %s: %v", errInvalidConfig, key.Name, err)
		case apierrors.IsForbidden(err):
			return nil, refused(err, ReasonForbidden, fmt.Sprintf("create synchronization %s as %s", key.Name, actingAs(clients)))
		default:
			return nil, fmt.Errorf("create synchronization %s: %w", key, err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("get synchronization %s: %w", key, err)
	}
	if !metav1.IsControlledBy(sync, run) {
		return nil, fmt.Errorf("%w: synchronization %s exists and does not belong to this run", errNameConflict, key.Name)
	}
	return sync, nil
}

// newSynchronization builds the Synchronization from the run's template.
// The run's labels win over template labels of the same name, since the
// controller finds its children by them; a one-off run drops a template's
// task label, so no Synchronization claims a Task it does not belong to.
func newSynchronization(run *v1alpha1.TaskRun, cfg *v1alpha1.RunSynchronizationConfig) *v1alpha1.Synchronization {
	tmpl := cfg.Template.DeepCopy()
	om := children.Meta(run, v1alpha1.SynchronizationName(run.Name))
	om.OwnerReferences = children.OwnerReference(run)
	lbls := maps.Clone(tmpl.Metadata.Labels)
	if lbls == nil {
		lbls = map[string]string{}
	}
	delete(lbls, v1alpha1.TaskLabel)
	maps.Copy(lbls, om.Labels)
	om.Labels = lbls
	om.Annotations = tmpl.Metadata.Annotations
	return &v1alpha1.Synchronization{ObjectMeta: om, Spec: tmpl.Spec}
}

// mirror decides the run's outcome from its Synchronization (see
// runSyncRunner).
func mirror(run *v1alpha1.TaskRun, sync *v1alpha1.Synchronization) {
	conds := sync.Status.Conditions
	if c := meta.FindStatusCondition(conds, syncConditionFailed); c != nil && c.Status == metav1.ConditionTrue {
		fail(run, ReasonSynchronizationFailed, syncMessage(sync, "failed", c))
		return
	}
	if c := meta.FindStatusCondition(conds, syncConditionSucceeded); c != nil {
		switch c.Status {
		case metav1.ConditionTrue:
			succeed(run, ReasonSynchronizationSucceeded, syncMessage(sync, "succeeded", c))
			return
		case metav1.ConditionFalse:
			fail(run, ReasonSynchronizationFailed, syncMessage(sync, "failed", c))
			return
		}
	}
	succeed(run, ReasonSynchronizationCreated, fmt.Sprintf("synchronization %s created", sync.Name))
}

func syncMessage(sync *v1alpha1.Synchronization, verb string, c *metav1.Condition) string {
	msg := fmt.Sprintf("synchronization %s %s", sync.Name, verb)
	if c.Reason != "" {
		msg += fmt.Sprintf(" (%s)", c.Reason)
	}
	if c.Message != "" {
		msg += ": " + c.Message
	}
	return msg
}
