package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/registry"
)

// runner carries out one plugin. run advances the run by one step: it reads
// the run's children, creates what is missing and reports progress through
// the Succeeded condition on run.Status (setProgress, succeed, fail); the
// reconciler then writes the status. A positive duration asks to be called
// again after it even if nothing changes (a timeout is due). An error means
// "try again later": the reconciler then writes nothing, so a runner that
// failed half-way must be able to redo its step.
type runner interface {
	run(ctx context.Context, run *v1alpha1.TaskRun, cp checkpointer) (time.Duration, error)
}

// cleaner is implemented by runners that create what owner references cannot
// clean up (cluster-scoped objects). cleanup runs, under the run's
// finalizer, when the run finished or is being deleted.
type cleaner interface {
	cleanup(ctx context.Context, run *v1alpha1.TaskRun) error
}

// checkpointer writes the run's status now. A runner calls it before a step
// that must not be repeated, so that a reconcile which stops half-way (a
// crash, a lost leader election) leaves a trace the next one can see.
type checkpointer interface {
	save(ctx context.Context) error
}

// deps are what every runner talks to. client and reader are the manager's
// own identity, for what carries no rights of the requester (the run's
// ServiceAccount, status, Events, the finalizer, reading children and
// deleting its own); actAs hands out the clients of every write that
// exercises or grants rights.
type deps struct {
	client   client.Client // cached reads of runs and their owned children
	reader   client.Reader // the API server itself, where the cache may lag
	scheme   *runtime.Scheme
	recorder events.EventRecorder
	clock    clock.PassiveClock
	actAs    *actas.Factory
}

// newRunner builds one plugin's runner for a manager.
type newRunner func(d *deps, disco discovery.DiscoveryInterface, opts Options) runner

// pluginRunners is the static table from plugin to runner, one file each
// (run_<name>.go). registry.Must stops the binary at start when it does not
// list exactly v1alpha1.Plugins (docs/adding-a-plugin.md), so no plugin is
// admitted that the controller cannot run.
var pluginRunners = registry.Must("runner", "controller/runner.go", map[v1alpha1.Plugin]newRunner{
	v1alpha1.PluginCustomImage: func(d *deps, _ discovery.DiscoveryInterface, _ Options) runner {
		return &customImageRunner{deps: d}
	},
	v1alpha1.PluginTransformation: func(d *deps, disco discovery.DiscoveryInterface, opts Options) runner {
		return &transformationRunner{deps: d, discovery: disco, maxObjects: opts.MaxTransformationObjects, slots: newRequesterSlots()}
	},
	v1alpha1.PluginRunSync: func(d *deps, _ discovery.DiscoveryInterface, _ Options) runner {
		return &runSyncRunner{deps: d}
	},
})

// Plugins lists the plugins the controller has runners for, sorted.
func Plugins() []v1alpha1.Plugin { return registry.Names(pluginRunners) }

// newRunners builds every plugin's runner for a manager.
func newRunners(d *deps, disco discovery.DiscoveryInterface, opts Options) map[v1alpha1.Plugin]runner {
	out := make(map[v1alpha1.Plugin]runner, len(pluginRunners))
	for p, build := range pluginRunners {
		out[p] = build(d, disco, opts)
	}
	return out
}

// watcher is implemented by runners whose children the controller watches,
// so that a change to one (a Pod finishing) reconciles its Task. watch adds
// the watches to the plugin's controller b; mgr is the manager it runs in.
type watcher interface {
	watch(mgr ctrl.Manager, b *builder.Builder) *builder.Builder
}

// clientsFor returns the clients the run's rights-bearing requests go
// through: its requester's in actas.ModeRequester, the manager's own in
// actas.ModeController.
func (d *deps) clientsFor(run *v1alpha1.TaskRun) (*actas.Clients, error) {
	c, err := d.actAs.For(run.Spec.Requester)
	if err != nil {
		return nil, fmt.Errorf("clients for taskrun %s/%s: %w", run.Namespace, run.Name, err)
	}
	return c, nil
}

// event records a Kubernetes Event on run. action is what the controller
// did (events.k8s.io/v1 requires one).
func (d *deps) event(run *v1alpha1.TaskRun, eventType, reason, action, note string, args ...any) {
	d.recorder.Eventf(run, nil, eventType, reason, action, note, args...)
}

// actingAs names whom clients act as, for messages: the requester, or
// taskgate itself in actas.ModeController.
func actingAs(clients *actas.Clients) string {
	if clients.Requester == nil {
		return "taskgate itself (--act-as=controller)"
	}
	return actas.Describe(clients.Requester)
}

// errInvalidConfig marks a spec.config that cannot be carried out whatever
// the retries; the run fails with ReasonInvalidConfig.
var errInvalidConfig = errors.New("invalid spec.config")

// decodeConfig decodes spec.config into the plugin's configuration type. The
// webhook has already checked it against the plugin's schema, so a failure
// here means the webhook was bypassed (or is not installed).
func decodeConfig[T any](run *v1alpha1.TaskRun) (*T, error) {
	cfg := new(T)
	if run.Spec.TaskSpec == nil || len(run.Spec.TaskSpec.Config.Raw) == 0 {
		return nil, fmt.Errorf("%w: spec.taskSpec.config is empty", errInvalidConfig)
	}
	if err := json.Unmarshal(run.Spec.TaskSpec.Config.Raw, cfg); err != nil {
		return nil, fmt.Errorf("%w: %s plugin: %v", errInvalidConfig, run.Plugin(), err)
	}
	return cfg, nil
}

// errNameConflict: an object with a child's deterministic name exists but
// belongs to someone else. Retrying cannot help, so the run fails.
var errNameConflict = errors.New("name taken")

// errServiceAccountReplaced: the ServiceAccount taskgate created for the run
// was deleted or replaced while the run was going; whoever replaced it could hold
// its binding, so the run fails and the binding goes.
var errServiceAccountReplaced = errors.New("service account replaced")

// errBindForbidden: in actas.ModeController, the API server refused the
// manager a ClusterRoleBinding for the run's clusterRole (the chart grants
// bind on allowedClusterRoles alone).
var errBindForbidden = errors.New("binding forbidden")

// refusal is the API server's refusal of a request sent for the run (as
// its requester, or in actas.ModeController as the manager). No retry can
// change the answer, so the run fails with reason and the API server's own
// text.
type refusal struct {
	reason string
	err    error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// refused wraps err as a refusal with reason when the API server refused
// the request (Forbidden), and otherwise with what for a retry. what names
// the request ("create pod x as alice").
func refused(err error, reason, what string) error {
	if apierrors.IsForbidden(err) {
		return &refusal{reason: reason, err: fmt.Errorf("the API server refused to %s: %w", what, err)}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// failPermanent fails the run for errors that no retry can fix (an invalid
// config, a name conflict, a refusal by the API server) and passes every
// other error on for a retry.
func failPermanent(run *v1alpha1.TaskRun, err error) error {
	var rf *refusal
	switch {
	case errors.As(err, &rf):
		fail(run, rf.reason, rf.Error()+actas.MastersHint(run.Spec.Requester))
	case errors.Is(err, errInvalidConfig):
		fail(run, ReasonInvalidConfig, err.Error())
	case errors.Is(err, errNameConflict):
		fail(run, ReasonNameConflict, err.Error())
	case errors.Is(err, errServiceAccountReplaced):
		fail(run, ReasonServiceAccountReplaced, err.Error())
	case errors.Is(err, errBindForbidden):
		fail(run, ReasonBindForbidden, err.Error())
	case errors.Is(err, actas.ErrNoRequester):
		fail(run, ReasonNoRequester, noRequesterMessage)
	default:
		return err
	}
	return nil
}

// noRequesterMessage explains ReasonNoRequester.
const noRequesterMessage = "the run has no spec.requester: it predates requester recording, or was created while taskgate's webhook " +
	"was not installed, so there is nobody to act as (taskgate never runs a run with its own rights); create it again"
