package webhook

import (
	"context"
	"fmt"
	"maps"
	"time"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/schemas"
)

// runHandlers are the TaskRun webhooks' handlers: mutating, validating and
// the single call that does both, resolving the Task once.
func runHandlers(v *Validator) (mutate, validate, single handler[v1alpha1.TaskRun]) {
	update := func(ctx context.Context, _ admission.Request, old, run *v1alpha1.TaskRun) admission.Response {
		return validationResponse(v.ValidateRunUpdate(ctx, old, run))
	}
	mutate = handler[v1alpha1.TaskRun]{
		kind: taskRunGroupKind,
		create: func(ctx context.Context, req admission.Request, run *v1alpha1.TaskRun) admission.Response {
			resp, _ := v.defaultRun(ctx, req, run)
			return resp
		},
		// Nothing to fill on UPDATE: the spec is immutable.
		update: func(context.Context, admission.Request, *v1alpha1.TaskRun, *v1alpha1.TaskRun) admission.Response {
			return admission.Allowed("")
		},
	}
	validate = handler[v1alpha1.TaskRun]{
		kind: taskRunGroupKind,
		create: func(ctx context.Context, _ admission.Request, run *v1alpha1.TaskRun) admission.Response {
			return validationResponse(v.ValidateRunCreate(ctx, run))
		},
		update: update,
	}
	single = handler[v1alpha1.TaskRun]{
		kind: taskRunGroupKind,
		create: func(ctx context.Context, req admission.Request, run *v1alpha1.TaskRun) admission.Response {
			resp, target := v.defaultRun(ctx, req, run)
			return thenValidate(resp, func() admission.Response {
				return validationResponse(v.validateRunCreate(ctx, run, target)) // run as the patch leaves it
			})
		},
		update: update,
	}
	return mutate, validate, single
}

// defaultRun fills in a new TaskRun in place and answers with the patch
// that does the same: spec.taskSpec (the snapshot), spec.requester, and for
// a run of a Task the Task's label and owner reference. It returns what it
// resolved, for single-call's validation.
func (v *Validator) defaultRun(ctx context.Context, req admission.Request, run *v1alpha1.TaskRun) (admission.Response, *runTarget) {
	start := time.Now()
	sent := run.DeepCopy()
	t, errs, err := v.resolve(ctx, run, req.UserInfo)
	if t != nil && run.Spec.TaskRef != nil && run.Spec.TaskSpec != nil && pluginSpecChanged(run.Spec.TaskSpec, t.snapshot) {
		// Both sent. An equal snapshot is a reinvocation of the single
		// call (or a user who copied the Task exactly): nothing to refuse.
		errs = field.ErrorList{field.Forbidden(taskSpecPath, errRunRefAndSpec)}
	}
	observe("mutate", "TaskRun", pluginOf(t, run), admissionv1.Create, start, errs, err)
	if err != nil {
		return fromError(apierrors.NewServiceUnavailable(fmt.Sprintf("taskgate could not resolve the TaskRun (retry): %v", err))), nil
	}
	if len(errs) > 0 {
		return fromError(apierrors.NewInvalid(taskRunGroupKind, run.Name, errs)), nil
	}
	run.Spec.TaskSpec = t.snapshot
	setTaskMeta(run, t.task)
	_, warnings := recordRequester(run, req.UserInfo)
	if t.task != nil && len(t.broken) == 0 && pluginSpecChanged(&t.task.Spec.PluginSpec, t.snapshot) {
		warnings = append(warnings, fmt.Sprintf(warnSnapshotDefaults, t.task.Name))
	}
	ops := runPatch(sent, run)
	if len(ops) == 0 {
		return admission.Allowed(""), t
	}
	return admission.Patched("", ops...).WithWarnings(warnings...), t
}

func pluginOf(t *runTarget, run *v1alpha1.TaskRun) v1alpha1.Plugin {
	if t != nil && t.snapshot != nil {
		return t.snapshot.Plugin
	}
	return run.Plugin()
}

// setTaskMeta makes a run of task carry the Task's label and be owned by
// it (controller, no blockOwnerDeletion, as children.OwnerReference says
// why); an inline run (task nil) carries neither. A label or owner
// reference naming a Task that the user sent is replaced: they are
// taskgate's, and the controller counts a Task's runs by them.
func setTaskMeta(run *v1alpha1.TaskRun, task *v1alpha1.Task) {
	labels := maps.Clone(run.Labels)
	delete(labels, v1alpha1.TaskLabel)
	var owners []metav1.OwnerReference
	for _, o := range run.OwnerReferences {
		if o.Kind != "Task" || o.APIVersion != v1alpha1.GroupVersion.String() {
			owners = append(owners, o)
		}
	}
	if task != nil {
		if labels == nil {
			labels = map[string]string{}
		}
		labels[v1alpha1.TaskLabel] = v1alpha1.TaskLabelValue(task.Name)
		owners = append(owners, metav1.OwnerReference{
			APIVersion: v1alpha1.GroupVersion.String(), Kind: "Task",
			Name: task.Name, UID: task.UID, Controller: ptr.To(true),
		})
	}
	run.Labels, run.OwnerReferences = labels, owners
}

// runPatch is the JSON patch from what was sent to the defaulted run: whole
// values of the members defaultRun sets, so numbers in the config keep
// every digit (the raw JSON goes in as it is).
func runPatch(sent, run *v1alpha1.TaskRun) []jsonpatch.JsonPatchOperation {
	var ops []jsonpatch.JsonPatchOperation
	set := func(path string, changed, present bool, value any) {
		switch {
		case !changed:
		case present:
			ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "add", Path: path, Value: value})
		default:
			ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "remove", Path: path})
		}
	}
	set("/spec/taskSpec", sent.Spec.TaskSpec == nil || pluginSpecChanged(sent.Spec.TaskSpec, run.Spec.TaskSpec), true, run.Spec.TaskSpec)
	set("/spec/requester", !equality.Semantic.DeepEqual(sent.Spec.Requester, run.Spec.Requester), true, run.Spec.Requester)
	set("/metadata/labels", !equality.Semantic.DeepEqual(sent.Labels, run.Labels), len(run.Labels) > 0, run.Labels)
	set("/metadata/ownerReferences", !equality.Semantic.DeepEqual(sent.OwnerReferences, run.OwnerReferences), len(run.OwnerReferences) > 0, run.OwnerReferences)
	return ops
}

// nameHint is "; did you mean "x"?" with the valid names when they are few,
// or says the namespace has none of kind.
func nameHint(name string, names []string, kind string) string {
	switch {
	case len(names) == 0:
		return "; the namespace has no " + kind
	case len(names) <= maxHintNames:
		return "; " + schemas.Hint(name, names)
	}
	if near, ok := schemas.Nearest(name, names); ok {
		return fmt.Sprintf("; did you mean %q?", near)
	}
	return ""
}
