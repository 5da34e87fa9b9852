// Package controller carries out admitted Tasks: one reconciler dispatching to
// one runner per plugin.
package controller

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
)

// Name is the controller's name: in logs, metrics and as the reporting
// controller of its Events.
const Name = "taskgate"

// Options configure the Task controller.
type Options struct {
	// MaxConcurrentReconciles is how many Tasks are reconciled at once.
	MaxConcurrentReconciles int
	// ActAs says whom child writes are sent as (actas.ModeRequester by default).
	ActAs actas.Mode
	// MaxTransformationObjects bounds the objects one transformation may
	// match; a Task matching more fails before any patch. Zero: the default.
	MaxTransformationObjects int
}

// CacheByObject narrows the manager's cache of Pods, ServiceAccounts and
// Synchronizations to those that carry v1alpha1.TaskLabel, so that a large
// cluster's Pods are not all held in memory. Pass it as
// cache.Options.ByObject when creating the manager. The controller works
// without it too: it reads objects it did not create (a name conflict) from
// the API server. Synchronizations are left out when mapper says the cluster
// does not serve them, since the manager cannot be created with a cache
// setting for an unknown kind; a nil mapper assumes they are served.
func CacheByObject(mapper meta.RESTMapper) map[client.Object]cache.ByObject {
	req, err := labels.NewRequirement(v1alpha1.TaskLabel, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant label key: cannot happen
	}
	byTask := cache.ByObject{Label: labels.NewSelector().Add(*req)}
	out := map[client.Object]cache.ByObject{
		&corev1.Pod{}:            byTask,
		&corev1.ServiceAccount{}: byTask,
	}
	if mapper == nil || synchronizationsServed(mapper) == nil {
		out[&v1alpha1.Synchronization{}] = byTask
	}
	return out
}

// synchronizationsServed returns nil when the API server serves
// Synchronizations, or the error saying why not.
func synchronizationsServed(mapper meta.RESTMapper) error {
	gk := v1alpha1.GroupVersion.WithKind("Synchronization").GroupKind()
	_, err := mapper.RESTMapping(gk, v1alpha1.GroupVersion.Version)
	return err
}

// SetupWithManager registers the Task controller with mgr. The manager's
// scheme must know the client-go types and v1alpha1.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	dyn, err := dynamic.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	d := &deps{
		client:   mgr.GetClient(),
		reader:   mgr.GetAPIReader(),
		scheme:   mgr.GetScheme(),
		recorder: mgr.GetEventRecorder(Name),
		clock:    clock.RealClock{},
	}
	r := &TaskReconciler{deps: d, runners: newRunners(d, mgr.GetRESTMapper(), dyn)}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("task").
		For(&v1alpha1.Task{}).
		Owns(&corev1.Pod{}).
		Owns(&corev1.ServiceAccount{})
	// Without a Synchronization CRD a watch on them would keep the whole
	// controller from starting; run-synchronization Tasks then fail with
	// ReasonSynchronizationNotServed, and everything else still runs.
	if err := synchronizationsServed(mgr.GetRESTMapper()); err == nil {
		// The Task finishes in the reconcile that creates its
		// Synchronization, so the create event brings nothing new: it
		// would only reconcile the Task again, ahead of its own status
		// update (a stale read and a 409). After a restart every Task is
		// reconciled through its own watch anyway.
		b = b.Owns(&v1alpha1.Synchronization{}, builder.WithPredicates(predicate.Funcs{
			CreateFunc: func(event.CreateEvent) bool { return false },
		}))
	} else {
		mgr.GetLogger().Info("synchronizations are not served: run-synchronization Tasks fail while the CRD is missing (restart taskgate after installing it to watch them)",
			"groupVersion", v1alpha1.GroupVersion.String(), "reason", err.Error())
	}
	return b.WithOptions(controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}).Complete(r)
}
