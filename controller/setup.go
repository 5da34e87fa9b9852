// Package controller carries out admitted runs: one reconciler dispatching to
// one runner per plugin.
package controller

import (
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
)

// Name is the controller's name: in logs, metrics and as the reporting
// controller of its Events.
const Name = "taskgate"

// Defaults of Options.
const (
	// DefaultMaxTransformationObjects bounds the objects one transformation
	// may match when Options.MaxTransformationObjects is zero.
	DefaultMaxTransformationObjects = 5000
	// DefaultSweepInterval is how often the sweeper looks for orphaned
	// ClusterRoleBindings when Options.SweepInterval is zero.
	DefaultSweepInterval = 5 * time.Minute
)

// Options configure the run controller.
type Options struct {
	// MaxConcurrentReconciles is how many runs of each plugin are
	// reconciled at once: every plugin has workers of its own, so long
	// transformations never hold up a custom-image or run-synchronization
	// run. The Task controller (status, history) has as many workers.
	MaxConcurrentReconciles int
	// ActAs says whom child writes are sent as (actas.ModeRequester when empty).
	ActAs actas.Mode
	// MaxTransformationObjects bounds the objects one transformation may
	// match; a run matching more fails (TooManyObjects) before any patch.
	// Zero: DefaultMaxTransformationObjects.
	MaxTransformationObjects int
	// SweepInterval is how often the sweeper removes ClusterRoleBindings
	// whose run is gone or finished (it also runs at start). Zero:
	// DefaultSweepInterval.
	SweepInterval time.Duration
	// SuccessfulRunsHistoryLimit and FailedRunsHistoryLimit are how many
	// succeeded and failed TaskRuns of a Task are kept when the Task does not
	// say (nil: DefaultSuccessfulRunsHistoryLimit, DefaultFailedRunsHistoryLimit).
	SuccessfulRunsHistoryLimit *int32
	FailedRunsHistoryLimit     *int32
	// FinishedTaskTTL is how long a finished TaskRun is kept when its spec
	// has no ttlSecondsAfterFinished (which wins): once its completionTime
	// is older, the controller deletes it with its children. Zero keeps
	// finished runs (within their Task's history limits).
	FinishedTaskTTL time.Duration
}

// CacheOptions keep the controller's memory bounded by the runs' own
// objects: only the Pods, ServiceAccounts and Synchronizations that carry the
// run label are cached (CacheByObject), and of everything only what the
// controller reads is kept (trimTransform). ClusterRoleBindings are never cached: the controller and
// its sweeper read them from the API server. namespaces, if any, restrict
// the cache to them (the tests' managers watch a namespace each); none
// caches all, as cmd/taskgate's manager does.
func CacheOptions(mapper meta.RESTMapper, namespaces ...string) cache.Options {
	c := cache.Options{
		DefaultTransform: trimTransform,
		ByObject:         CacheByObject(mapper),
	}
	for _, ns := range namespaces {
		if c.DefaultNamespaces == nil {
			c.DefaultNamespaces = map[string]cache.Config{}
		}
		c.DefaultNamespaces[ns] = cache.Config{}
	}
	return c
}

// CacheByObject narrows the manager's cache of Pods, ServiceAccounts and
// Synchronizations to those that carry v1alpha1.TaskRunLabel, so that a large
// cluster's Pods are not all held in memory. Pass it as
// cache.Options.ByObject when creating the manager. The controller works
// without it too: it reads objects it did not create (a name conflict) from
// the API server. Synchronizations are left out when mapper says the cluster
// does not serve them, since the manager cannot be created with a cache
// setting for an unknown kind; a nil mapper assumes they are served.
func CacheByObject(mapper meta.RESTMapper) map[client.Object]cache.ByObject {
	req, err := labels.NewRequirement(v1alpha1.TaskRunLabel, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant label key: cannot happen
	}
	byTask := cache.ByObject{Label: labels.NewSelector().Add(*req), Transform: trimTransform}
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

// SetupWithManager registers the run controllers (one per plugin, see
// Options.MaxConcurrentReconciles) and the binding sweeper with mgr. The
// manager's scheme must know the client-go types and v1alpha1.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	if opts.ActAs == "" {
		opts.ActAs = actas.ModeRequester
	}
	if opts.MaxTransformationObjects <= 0 {
		opts.MaxTransformationObjects = DefaultMaxTransformationObjects
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	factory, err := actas.NewFactory(opts.ActAs, childConfig(mgr.GetConfig()), mgr.GetScheme(), mgr.GetRESTMapper())
	if err != nil {
		return fmt.Errorf("clients that act as requesters: %w", err)
	}
	disco, err := discovery.NewDiscoveryClientForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return fmt.Errorf("discovery client: %w", err)
	}
	d := &deps{
		client:   mgr.GetClient(),
		reader:   mgr.GetAPIReader(),
		scheme:   mgr.GetScheme(),
		recorder: mgr.GetEventRecorder(Name),
		clock:    clock.RealClock{},
		actAs:    factory,
	}
	if opts.FinishedTaskTTL < 0 {
		return fmt.Errorf("finished-run TTL %v: want 0 (keep finished runs) or a positive duration", opts.FinishedTaskTTL)
	}
	r := &TaskRunReconciler{deps: d, runners: newRunners(d, disco, opts), finishedTaskTTL: opts.FinishedTaskTTL}
	for _, p := range slices.Sorted(maps.Keys(r.runners)) {
		if err := r.setupPlugin(mgr, p, opts); err != nil {
			return err
		}
	}
	// runs of a plugin this controller has no runner for still get a
	// worker, to fail them with ReasonUnknownPlugin.
	unknown := predicate.NewPredicateFuncs(func(o client.Object) bool {
		t, ok := o.(*v1alpha1.TaskRun)
		return ok && r.runners[t.Plugin()] == nil
	})
	err = ctrl.NewControllerManagedBy(mgr).Named("taskrun-unknown").
		For(&v1alpha1.TaskRun{}, builder.WithPredicates(unknown)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(r)
	if err != nil {
		return fmt.Errorf("controller taskrun-unknown: %w", err)
	}
	tr := &TaskReconciler{client: d.client, reader: d.reader,
		successfulLimit: ptr.Deref(opts.SuccessfulRunsHistoryLimit, DefaultSuccessfulRunsHistoryLimit),
		failedLimit:     ptr.Deref(opts.FailedRunsHistoryLimit, DefaultFailedRunsHistoryLimit)}
	if tr.successfulLimit < 0 || tr.failedLimit < 0 {
		return fmt.Errorf("runs history limits %d and %d: want 0 or more", tr.successfulLimit, tr.failedLimit)
	}
	if err := tr.setup(mgr, max(1, opts.MaxConcurrentReconciles)); err != nil {
		return err
	}
	if err := mgr.Add(&taskSource{reader: mgr.GetCache(), log: mgr.GetLogger().WithName("metrics")}); err != nil {
		return fmt.Errorf("taskgate_tasks metric: %w", err)
	}
	return mgr.Add(&sweeper{client: d.client, reader: d.reader, interval: opts.SweepInterval, log: mgr.GetLogger().WithName("sweeper")})
}

// Client-side rate limits of the clients that send child writes, one token
// bucket per requester (actas builds each requester's clients from this
// config, and client-go gives every client built from a config without a
// RateLimiter a bucket of its own). client-go's default (5 requests/s)
// would stretch a transformation of 1,500 objects over minutes; the API
// server's priority and fairness judges these requests by the requester they
// act as, and this bound keeps one requester's burst from flooding it.
const (
	childQPS   = 200
	childBurst = 400
)

// childConfig is cfg with a client-side limit of at least childQPS and
// childBurst per client. A config without one (QPS 0 is client-go's default
// of 5; controller-runtime's manager config says -1, no limit at all) gets
// exactly childQPS and childBurst.
func childConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.RateLimiter = nil
	if c.QPS <= 0 || c.QPS < childQPS {
		c.QPS = childQPS
	}
	if c.Burst < childBurst {
		c.Burst = childBurst
	}
	return c
}

// setupPlugin registers the controller of one plugin's runs, named
// "taskrun-<plugin>", watching only the children that plugin creates.
func (r *TaskRunReconciler) setupPlugin(mgr ctrl.Manager, p v1alpha1.Plugin, opts Options) error {
	ofPlugin := predicate.NewPredicateFuncs(func(o client.Object) bool {
		t, ok := o.(*v1alpha1.TaskRun)
		return ok && t.Plugin() == p
	})
	name := "taskrun-" + string(p)
	b := ctrl.NewControllerManagedBy(mgr).Named(name).For(&v1alpha1.TaskRun{}, builder.WithPredicates(ofPlugin))
	if w, ok := r.runners[p].(watcher); ok {
		b = w.watch(mgr, b)
	}
	if err := b.WithOptions(controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}).Complete(r); err != nil {
		return fmt.Errorf("controller %s: %w", name, err)
	}
	return nil
}
