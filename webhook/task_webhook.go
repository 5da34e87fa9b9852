package webhook

import (
	"context"
	"encoding/json"
	"time"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
)

// A Task is a runbook: admitting one (CREATE, or an UPDATE that edits it)
// checks and defaults its plugin and config, and nothing else. It runs
// nothing, so it needs no access review, no preflight and no requester:
// those belong to the TaskRun that runs it (taskrun_webhook.go).

// Texts of the Task answers, as constants so tests and docs quote them.
const (
	errTaskRequester = "a Task runs nothing, so it has no requester: a TaskRun records who runs it " +
		"(taskgate fills in the TaskRun's spec.requester); remove this field"
	errTaskTTL = "a Task is never finished, so this does nothing on it: set ttlSecondsAfterFinished " +
		"on the TaskRuns that run it; remove this field"
)

var ttlPath = specPath.Child("ttlSecondsAfterFinished")

// Defaulter is the mutating webhook's defaulting: it fills in a Task's
// defaults when it is created and when an update edits its plugin or config.
type Defaulter struct{ Admitter *Admitter }

// Validator is the validating webhook of both kinds: it refuses a wrong Task
// with every bad field at once; for a TaskRun it also refuses one that would
// lend the user rights they lack (taskrun_webhook.go).
type Validator struct {
	Admitter *Admitter
	// Authz checks the requesting user's rights; nil skips the checks.
	Authz Authorizer
	// ActAs says whom the access checks ask about: in actas.ModeRequester
	// (also when empty) the requester as the controller will impersonate
	// them (actas.Effective: without system:masters), in
	// actas.ModeController the request's full userInfo.
	ActAs actas.Mode
	// Manager is the manager's own username, the only user who may remove
	// the v1alpha1.Finalizer; empty lets nobody remove it.
	Manager string
	// Preflight, when set, dry-runs a custom-image run's children on the
	// API server as the requester once the run passed every other check.
	Preflight *Preflight
	// Reader reads Tasks and TaskRuns for TaskRun admission straight from
	// the API server (the manager's APIReader), never from a cache that may
	// lag behind the Task a user just edited; nil refuses every TaskRun
	// naming a Task.
	Reader client.Reader
}

// Default fills in a Task's defaults; the mutating handler calls it on
// CREATE and on an UPDATE that changes spec.plugin or spec.config.
func (d *Defaulter) Default(ctx context.Context, task *v1alpha1.Task) error {
	start := time.Now()
	errs := d.Admitter.Default(task)
	observe("mutate", "Task", task.Spec.Plugin, operation(ctx), start, errs, nil)
	if len(errs) > 0 {
		return apierrors.NewInvalid(taskGroupKind, task.Name, errs)
	}
	return nil
}

// ValidateCreate checks a created Task: its schema and plugin rules, and
// none of the fields that belong to a run.
func (v *Validator) ValidateCreate(ctx context.Context, task *v1alpha1.Task) (admission.Warnings, error) {
	start := time.Now()
	errs, warnings := v.Admitter.Validate(task)
	errs = mergeErrors(errs, deprecatedFields(nil, &task.Spec))
	return taskVerdict(task, admissionv1.Create, start, errs, warnings)
}

// ValidateUpdate checks an update: an edited plugin or config is checked
// again as on create (an unchanged one is not, so metadata and finalizer
// updates go through even if the schemas changed since), a deprecated
// field may stay but not be set anew, and only the manager may remove the
// finalizer of a Task an earlier taskgate ran.
func (v *Validator) ValidateUpdate(ctx context.Context, oldTask, task *v1alpha1.Task) (admission.Warnings, error) {
	start := time.Now()
	var errs field.ErrorList
	var warnings []string
	if pluginSpecChanged(&oldTask.Spec.PluginSpec, &task.Spec.PluginSpec) {
		errs, warnings = v.Admitter.Validate(task)
	}
	errs = mergeErrors(errs, deprecatedFields(&oldTask.Spec, &task.Spec))
	errs = append(errs, v.finalizerRule(ctx, oldTask, task)...)
	return taskVerdict(task, admissionv1.Update, start, errs, warnings)
}

// taskVerdict records the metrics of a Task validation and answers it.
func taskVerdict(task *v1alpha1.Task, op admissionv1.Operation, start time.Time, errs field.ErrorList, warnings []string) (admission.Warnings, error) {
	observe("validate", "Task", task.Spec.Plugin, op, start, errs, nil)
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(taskGroupKind, task.Name, errs)
	}
	return warnings, nil
}

// deprecatedFields refuses spec.requester and spec.ttlSecondsAfterFinished
// on a Task unless an earlier taskgate stored them (old holds the same
// value): they belong on TaskRuns.
func deprecatedFields(old, cur *v1alpha1.TaskSpec) field.ErrorList {
	var errs field.ErrorList
	if cur.Requester != nil && (old == nil || !equality.Semantic.DeepEqual(old.Requester, cur.Requester)) {
		errs = append(errs, field.Forbidden(requesterPath, errTaskRequester))
	}
	if cur.TTLSecondsAfterFinished != nil && (old == nil || !equality.Semantic.DeepEqual(old.TTLSecondsAfterFinished, cur.TTLSecondsAfterFinished)) {
		errs = append(errs, field.Forbidden(ttlPath, errTaskTTL))
	}
	return errs
}

// pluginSpecChanged reports whether an update edits what runs.
func pluginSpecChanged(old, cur *v1alpha1.PluginSpec) bool {
	return old.Plugin != cur.Plugin || !sameConfig(old.Config.Raw, cur.Config.Raw)
}

// taskHandlers are the Task webhooks' handlers: mutating, validating and
// the single call that does both.
func taskHandlers(v *Validator) (mutate, validate, single handler[v1alpha1.Task]) {
	d := &Defaulter{Admitter: v.Admitter}
	mutate = handler[v1alpha1.Task]{
		kind: taskGroupKind,
		create: func(ctx context.Context, _ admission.Request, task *v1alpha1.Task) admission.Response {
			return defaultTask(ctx, d, nil, task)
		},
		update: func(ctx context.Context, _ admission.Request, old, task *v1alpha1.Task) admission.Response {
			return defaultTask(ctx, d, old, task)
		},
	}
	validate = handler[v1alpha1.Task]{
		kind: taskGroupKind,
		create: func(ctx context.Context, _ admission.Request, task *v1alpha1.Task) admission.Response {
			return validationResponse(v.ValidateCreate(ctx, task))
		},
		update: func(ctx context.Context, _ admission.Request, old, task *v1alpha1.Task) admission.Response {
			return validationResponse(v.ValidateUpdate(ctx, old, task))
		},
	}
	// The single call validates the Task as its own patch leaves it.
	single = handler[v1alpha1.Task]{
		kind: taskGroupKind,
		create: func(ctx context.Context, req admission.Request, task *v1alpha1.Task) admission.Response {
			return thenValidate(mutate.create(ctx, req, task), func() admission.Response { return validate.create(ctx, req, task) })
		},
		update: func(ctx context.Context, req admission.Request, old, task *v1alpha1.Task) admission.Response {
			return thenValidate(mutate.update(ctx, req, old, task), func() admission.Response { return validate.update(ctx, req, old, task) })
		},
	}
	return mutate, validate, single
}

// defaultTask defaults a Task in place and answers with a replace of
// spec.config when that changed it. On UPDATE (old set) it first puts back
// the transformation scopes the update dropped (restoreScopes), and
// defaults only when the update edits the plugin or config; an unchanged
// Task stays as stored. It never refuses an UPDATE: the validating webhook
// judges it.
func defaultTask(ctx context.Context, d *Defaulter, old, task *v1alpha1.Task) admission.Response {
	before := string(task.Spec.Config.Raw)
	if old != nil {
		if task.Spec.Plugin == v1alpha1.PluginTransformation && old.Spec.Plugin == task.Spec.Plugin {
			if cfg, changed := restoreScopes(old.Spec.Config.Raw, task.Spec.Config.Raw); changed {
				task.Spec.Config.Raw = cfg
			}
		}
		if pluginSpecChanged(&old.Spec.PluginSpec, &task.Spec.PluginSpec) {
			_ = d.Default(ctx, task) // a Task too broken to default is refused by validation
		}
	} else if err := d.Default(ctx, task); err != nil {
		return fromError(err)
	}
	if string(task.Spec.Config.Raw) == before {
		return admission.Allowed("")
	}
	// The raw JSON goes into the patch as it is: numbers keep every digit.
	return admission.Patched("", jsonpatch.JsonPatchOperation{Operation: "replace", Path: "/spec/config", Value: json.RawMessage(task.Spec.Config.Raw)})
}
