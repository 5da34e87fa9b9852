package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// runner carries out one plugin. run advances the Task by one step: it reads
// the Task's children, creates what is missing and reports progress through
// the Succeeded condition on task.Status (setProgress, succeed, fail); the
// reconciler then writes the status. A positive duration asks to be called
// again after it even if nothing changes (a timeout is due). An error means
// "try again later": the reconciler then writes nothing, so a runner that
// failed half-way must be able to redo its step.
type runner interface {
	run(ctx context.Context, task *v1alpha1.Task, cp checkpointer) (time.Duration, error)
}

// cleaner is implemented by runners that create what owner references cannot
// clean up (cluster-scoped objects). cleanup runs, under the Task's
// finalizer, when the Task finished or is being deleted.
type cleaner interface {
	cleanup(ctx context.Context, task *v1alpha1.Task) error
}

// checkpointer writes the Task's status now. A runner calls it before a step
// that must not be repeated, so that a reconcile which stops half-way (a
// crash, a lost leader election) leaves a trace the next one can see.
type checkpointer interface {
	save(ctx context.Context) error
}

// deps are what every runner talks to.
type deps struct {
	client   client.Client // cached reads of Tasks and their owned children
	reader   client.Reader // the API server itself, where the cache may lag
	scheme   *runtime.Scheme
	recorder events.EventRecorder
	clock    clock.PassiveClock
}

// newRunners is the static table from plugin to implementation.
func newRunners(d *deps, mapper meta.RESTMapper, dyn dynamic.Interface) map[v1alpha1.Plugin]runner {
	return map[v1alpha1.Plugin]runner{
		v1alpha1.PluginCustomImage:    &customImageRunner{deps: d},
		v1alpha1.PluginTransformation: &transformationRunner{deps: d, mapper: mapper, dynamic: dyn},
		v1alpha1.PluginRunSync:        &runSyncRunner{deps: d},
	}
}

// event records a Kubernetes Event on task. action is what the controller
// did (events.k8s.io/v1 requires one).
func (d *deps) event(task *v1alpha1.Task, eventType, reason, action, note string, args ...any) {
	d.recorder.Eventf(task, nil, eventType, reason, action, note, args...)
}

// errInvalidConfig marks a spec.config that cannot be carried out whatever
// the retries; the Task fails with ReasonInvalidConfig.
var errInvalidConfig = errors.New("invalid spec.config")

// decodeConfig decodes spec.config into the plugin's configuration type. The
// webhook has already checked it against the plugin's schema, so a failure
// here means the webhook was bypassed (or is not installed).
func decodeConfig[T any](task *v1alpha1.Task) (*T, error) {
	cfg := new(T)
	if len(task.Spec.Config.Raw) == 0 {
		return nil, fmt.Errorf("%w: spec.config is empty", errInvalidConfig)
	}
	if err := json.Unmarshal(task.Spec.Config.Raw, cfg); err != nil {
		return nil, fmt.Errorf("%w: %s plugin: %v", errInvalidConfig, task.Spec.Plugin, err)
	}
	return cfg, nil
}

// errNameConflict: an object with a child's deterministic name exists but
// belongs to someone else. Retrying cannot help, so the Task fails.
var errNameConflict = errors.New("name taken")

// errBindForbidden: the API server refused the controller a ClusterRoleBinding
// for the Task's clusterRole (RBAC escalation prevention).
var errBindForbidden = errors.New("binding forbidden")

// failPermanent fails the Task for errors that no retry can fix (an invalid
// config, a name conflict) and passes every other error on for a retry.
func failPermanent(task *v1alpha1.Task, err error) error {
	switch {
	case errors.Is(err, errInvalidConfig):
		fail(task, ReasonInvalidConfig, err.Error())
	case errors.Is(err, errNameConflict):
		fail(task, ReasonNameConflict, err.Error())
	case errors.Is(err, errBindForbidden):
		fail(task, ReasonBindForbidden, err.Error())
	default:
		return err
	}
	return nil
}
