// Package controller carries out admitted Tasks: one reconciler dispatching to
// one runner per plugin.
package controller

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// Name is the controller's name: in logs, metrics and as the reporting
// controller of its Events.
const Name = "taskgate"

// Options configure the Task controller.
type Options struct {
	// MaxConcurrentReconciles is how many Tasks are reconciled at once.
	MaxConcurrentReconciles int
}

// CacheByObject narrows the manager's cache of Pods, ServiceAccounts and
// Synchronizations to those that carry v1alpha1.TaskLabel, so that a large
// cluster's Pods are not all held in memory. Pass it as
// cache.Options.ByObject when creating the manager. The controller works
// without it too: it reads objects it did not create (a name conflict) from
// the API server.
func CacheByObject() map[client.Object]cache.ByObject {
	req, err := labels.NewRequirement(v1alpha1.TaskLabel, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant label key: cannot happen
	}
	byTask := cache.ByObject{Label: labels.NewSelector().Add(*req)}
	return map[client.Object]cache.ByObject{
		&corev1.Pod{}:               byTask,
		&corev1.ServiceAccount{}:    byTask,
		&v1alpha1.Synchronization{}: byTask,
	}
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
	return ctrl.NewControllerManagedBy(mgr).
		Named("task").
		For(&v1alpha1.Task{}).
		Owns(&corev1.Pod{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&v1alpha1.Synchronization{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}).
		Complete(r)
}
