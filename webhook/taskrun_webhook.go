package webhook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
)

// A TaskRun is where a Task meets a user: its admission snapshots what runs
// (the named Task's plugin and config, or the inline spec.taskSpec), records
// who runs it, and checks that this user may do what the run will do.

// Texts of the TaskRun answers, as constants so tests and docs quote them.
const (
	errRunRefAndSpec = "set spec.taskRef (a Task in this namespace) or spec.taskSpec (plugin and config inline), " +
		"not both: with taskRef taskgate copies the Task's spec.plugin and spec.config here"
	errRunNeither       = "set spec.taskRef.name (a Task in this namespace) or spec.taskSpec (plugin and config inline)"
	errTaskNotFound     = "no Task %q in namespace %q"
	errTaskBroken       = "the Task %q no longer passes admission: %s; fix the Task (kubectl edit task %s)"
	errSnapshotMismatch = "must be the Task %q's spec.plugin and spec.config as stored now, which taskgate's mutating " +
		"webhook copies here: another mutating webhook changed it, or the Task was edited in between; create the TaskRun again"
	errNoSnapshot        = "taskgate's mutating webhook fills this in from spec.taskRef; it did not run"
	errForbidConcurrent  = "TaskRun %s of Task %s is still %s; concurrencyPolicy Forbid lets one run at a time"
	whyGetTask           = "a TaskRun runs the Task as you, so you may run only a Task you may read"
	warnSnapshotDefaults = "the Task %q is stored without defaults that taskgate's schemas now add: the run gets them " +
		"(spec.taskSpec). Edit the Task's spec.config once so that it stores them (where the chart's snapshot " +
		"policy is installed, the API server refuses runs of the Task until then)"
)

var (
	taskRefPath     = specPath.Child("taskRef")
	taskRefNamePath = taskRefPath.Child("name")
	taskSpecPath    = specPath.Child("taskSpec")
)

// atSnapshot moves what the Admitter says about a Task's spec.plugin and
// spec.config to where a TaskRun holds them, spec.taskSpec: field paths
// and the texts of warnings. It is the one place paths are mapped.
func atSnapshot(errs field.ErrorList) field.ErrorList {
	out := make(field.ErrorList, len(errs))
	for i, e := range errs {
		c := *e
		if c.Field == pluginPath.String() || strings.HasPrefix(c.Field, configPath.String()) {
			c.Field = taskSpecPath.String() + strings.TrimPrefix(c.Field, specPath.String())
		}
		out[i] = &c
	}
	return out
}

func warningsAtSnapshot(warnings []string) []string {
	for i, w := range warnings {
		warnings[i] = strings.ReplaceAll(w, configPath.String(), taskSpecPath.Child("config").String())
	}
	return warnings
}

// runTarget is what a TaskRun runs, resolved once per admission call.
type runTarget struct {
	// task is the Task spec.taskRef names, as the API server has it now;
	// nil for an inline run.
	task *v1alpha1.Task
	// snapshot is what runs: the Task's (or the inline) plugin and config,
	// defaulted with the current schemas.
	snapshot *v1alpha1.PluginSpec
	// broken holds what defaulting found wrong in a Task's stored config;
	// the validating step reports it once the user may read the Task.
	broken field.ErrorList
}

// view is a run's snapshot as the Admitter sees a Task: named and placed as
// the run, so that defaults and rules depending on them follow the run.
func view(run *v1alpha1.TaskRun, spec v1alpha1.PluginSpec) *v1alpha1.Task {
	return &v1alpha1.Task{
		ObjectMeta: metav1.ObjectMeta{Name: run.Name, GenerateName: run.GenerateName, Namespace: run.Namespace},
		Spec:       v1alpha1.TaskSpec{PluginSpec: spec},
	}
}

// resolve finds what run runs: the named Task, read from the API server,
// or the inline spec.taskSpec, defaulted. Errors name the field of the
// run; err is for what kept taskgate from deciding (the API server).
func (v *Validator) resolve(ctx context.Context, run *v1alpha1.TaskRun, user authenticationv1.UserInfo) (*runTarget, field.ErrorList, error) {
	t := &runTarget{}
	var spec v1alpha1.PluginSpec
	switch {
	case run.Spec.TaskRef != nil:
		task, errs, err := v.getTask(ctx, run.Namespace, run.Spec.TaskRef.Name, user)
		if task == nil {
			return nil, errs, err
		}
		t.task, spec = task, *task.Spec.PluginSpec.DeepCopy()
	case run.Spec.TaskSpec != nil:
		spec = *run.Spec.TaskSpec.DeepCopy()
	default:
		return nil, field.ErrorList{field.Required(taskRefPath, errRunNeither)}, nil
	}
	tv := view(run, spec)
	if errs := v.Admitter.Default(tv); len(errs) > 0 {
		if t.task == nil {
			return nil, atSnapshot(errs), nil
		}
		tv.Spec.PluginSpec, t.broken = spec, errs // run the Task as stored; validation refuses it
	}
	t.snapshot = &tv.Spec.PluginSpec
	return t, nil, nil
}

// taskErrors turns what validation found wrong in a snapshot into errors
// of the run: at spec.taskSpec for an inline run, one error naming the Task
// for a run of a Task.
func (t *runTarget) taskErrors(errs field.ErrorList) field.ErrorList {
	if len(errs) == 0 || t.task == nil {
		return atSnapshot(errs)
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	name := t.task.Name
	return field.ErrorList{field.Invalid(taskRefNamePath, name, fmt.Sprintf(errTaskBroken, name, strings.Join(msgs, "; "), name))}
}

// getTask reads the named Task from the API server. A Task that is not
// there is a field error naming it, with the Task names of the namespace
// that are close, but only for a user who may read Tasks: whoever may not
// learns no more than the access check would tell them.
func (v *Validator) getTask(ctx context.Context, ns, name string, user authenticationv1.UserInfo) (*v1alpha1.Task, field.ErrorList, error) {
	if v.Reader == nil {
		return nil, nil, fmt.Errorf("no reader for Tasks: read Task %s/%s", ns, name)
	}
	task := &v1alpha1.Task{}
	err := v.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, task)
	if err == nil {
		return task, nil, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, nil, fmt.Errorf("read Task %s/%s: %w", ns, name, err)
	}
	if denied, err := v.checkAccess(ctx, user, []AccessCheck{getTaskCheck(ns, name)}); len(denied) > 0 || err != nil {
		return nil, denied, err
	}
	detail := fmt.Sprintf(errTaskNotFound, name, ns)
	listCheck := AccessCheck{Field: taskRefNamePath, Attributes: authorizationv1.ResourceAttributes{
		Verb: "list", Group: v1alpha1.GroupVersion.Group, Version: v1alpha1.GroupVersion.Version, Resource: "tasks", Namespace: ns}}
	if denied, err := v.checkAccess(ctx, user, []AccessCheck{listCheck}); len(denied) == 0 && err == nil {
		detail += v.taskHint(ctx, ns, name)
	}
	return nil, field.ErrorList{&field.Error{Type: field.ErrorTypeNotFound, Field: taskRefNamePath.String(), BadValue: name, Detail: detail}}, nil
}

// maxHintNames is how many Task names a not-found answer lists in full.
const maxHintNames = 10

// taskHint is "; did you mean ...? valid names: ..." over the Tasks of ns.
func (v *Validator) taskHint(ctx context.Context, ns, name string) string {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("TaskList"))
	if err := v.Reader.List(ctx, list, client.InNamespace(ns)); err != nil {
		log.FromContext(ctx).Info("cannot list Tasks for a hint", "namespace", ns, "error", err.Error())
		return ""
	}
	names := make([]string, len(list.Items))
	for i := range list.Items {
		names[i] = list.Items[i].Name
	}
	return nameHint(name, names, "Task")
}

// getTaskCheck is the right to read the Task a run names.
func getTaskCheck(ns, name string) AccessCheck {
	return AccessCheck{
		Field: taskRefNamePath,
		Attributes: authorizationv1.ResourceAttributes{Verb: "get", Group: v1alpha1.GroupVersion.Group,
			Version: v1alpha1.GroupVersion.Version, Resource: "tasks", Namespace: ns, Name: name},
		Why: whyGetTask,
	}
}

// checkAccess asks the Authorizer whether the identity the run acts as
// passes checks; nil Authorizer passes everything.
func (v *Validator) checkAccess(ctx context.Context, user authenticationv1.UserInfo, checks []AccessCheck) (field.ErrorList, error) {
	if v.Authz == nil || len(checks) == 0 {
		return nil, nil
	}
	if user.Username == "" {
		return nil, apierrors.NewBadRequest("no admission request in context, or no user in it")
	}
	subject, hint := accessSubject(v.ActAs, user)
	errs, err := authorize(ctx, v.Authz, subject, checks, hint)
	if errors.Is(err, errTooManyReviews) {
		// The user's own flood: they wait, nobody else does.
		return nil, apierrors.NewTooManyRequests(fmt.Sprintf("taskgate: %v; retry in a few seconds", err), 2)
	}
	if err != nil {
		log.FromContext(ctx).Error(err, "authorization check failed", "user", user.Username)
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("taskgate could not check your permissions (retry): %v", err))
	}
	return errs, nil
}

// concurrencyConflict refuses a run of a Forbid Task while another run of
// it has not finished, naming that run.
func (v *Validator) concurrencyConflict(ctx context.Context, run *v1alpha1.TaskRun, task *v1alpha1.Task) (field.ErrorList, error) {
	if task == nil || task.Spec.ConcurrencyPolicy != v1alpha1.ConcurrencyForbid {
		return nil, nil
	}
	var runs v1alpha1.TaskRunList
	if err := v.Reader.List(ctx, &runs, client.InNamespace(run.Namespace),
		client.MatchingLabels{v1alpha1.TaskLabel: v1alpha1.TaskLabelValue(task.Name)}); err != nil {
		return nil, fmt.Errorf("list the TaskRuns of Task %s/%s: %w", task.Namespace, task.Name, err)
	}
	for i := range runs.Items {
		other := &runs.Items[i]
		if (run.Name != "" && other.Name == run.Name) || other.TaskName() != task.Name || finished(other) {
			continue
		}
		phase := other.Status.Phase
		if phase == "" {
			phase = v1alpha1.TaskPending
		}
		return field.ErrorList{field.Forbidden(taskRefNamePath, fmt.Sprintf(errForbidConcurrent, other.Name, task.Name, phase))}, nil
	}
	return nil, nil
}

// finished reports whether a run's Succeeded condition says it ended.
func finished(run *v1alpha1.TaskRun) bool {
	c := meta.FindStatusCondition(run.Status.Conditions, v1alpha1.ConditionSucceeded)
	return c != nil && (c.Status == metav1.ConditionTrue || c.Status == metav1.ConditionFalse)
}

// ValidateRunCreate checks a created TaskRun as the mutating webhook left
// it: the snapshot is there and is the named Task's, the requester is the
// creator, the snapshot passes admission, the creator may read the Task and
// do what the run does, a Forbid Task has no other run going, and the
// preflight passes; each only once everything before it passed.
func (v *Validator) ValidateRunCreate(ctx context.Context, run *v1alpha1.TaskRun) (admission.Warnings, error) {
	return v.validateRunCreate(ctx, run, nil)
}

// validateRunCreate is ValidateRunCreate with the mutating step's
// resolution in single-call mode (target), nil otherwise.
func (v *Validator) validateRunCreate(ctx context.Context, run *v1alpha1.TaskRun, target *runTarget) (admission.Warnings, error) {
	start := time.Now()
	req, _ := requestFrom(ctx)
	warnings, errs, err := v.validateRun(ctx, req.UserInfo, run, target)
	observe("validate", "TaskRun", run.Plugin(), admissionv1.Create, start, errs, err)
	if err != nil {
		return warnings, err
	}
	if len(errs) > 0 {
		return warnings, apierrors.NewInvalid(taskRunGroupKind, run.Name, errs)
	}
	return warnings, nil
}

func (v *Validator) validateRun(ctx context.Context, user authenticationv1.UserInfo, run *v1alpha1.TaskRun, t *runTarget) ([]string, field.ErrorList, error) {
	if run.Spec.TaskSpec == nil {
		return nil, field.ErrorList{field.Required(taskSpecPath, errNoSnapshot)}, nil
	}
	errs := checkRequester(run, user)
	if t == nil {
		var rerrs field.ErrorList
		var err error
		if t, rerrs, err = v.resolve(ctx, run, user); t == nil {
			return nil, mergeErrors(errs, rerrs), err
		}
	}
	if t.task != nil {
		// Nothing about the Task is said to a user who may not read it.
		if denied, err := v.checkAccess(ctx, user, []AccessCheck{getTaskCheck(run.Namespace, t.task.Name)}); len(denied) > 0 || err != nil {
			return nil, mergeErrors(errs, denied), err
		}
		if len(t.broken) > 0 {
			return nil, mergeErrors(errs, t.taskErrors(t.broken)), nil
		}
		if pluginSpecChanged(run.Spec.TaskSpec, t.snapshot) {
			errs = append(errs, field.Invalid(taskSpecPath, field.OmitValueType{}, fmt.Sprintf(errSnapshotMismatch, t.task.Name)))
		}
	}
	verrs, warnings, checks := v.Admitter.check(view(run, *run.Spec.TaskSpec), v.Authz != nil)
	errs = mergeErrors(errs, t.taskErrors(verrs))
	if len(errs) > 0 {
		return nil, errs, nil
	}
	warnings = warningsAtSnapshot(warnings)
	denied, err := v.checkAccess(ctx, user, checks)
	if len(denied) > 0 || err != nil {
		return warnings, atSnapshot(denied), err
	}
	if errs, err = v.concurrencyConflict(ctx, run, t.task); len(errs) > 0 || err != nil {
		return warnings, errs, err
	}
	if v.Preflight != nil && run.Plugin() == v1alpha1.PluginCustomImage && user.Username != "" {
		perrs, more := v.Preflight.CustomImage(ctx, run, actas.FromUserInfo(user))
		return append(warnings, warningsAtSnapshot(more)...), atSnapshot(perrs), nil
	}
	return warnings, nil, nil
}

// ValidateRunUpdate checks an update of a TaskRun: its spec cannot change
// (the CRD says so too; this says why), and only the manager may remove the
// finalizer. Status updates go to the status subresource, which the
// webhooks do not see.
func (v *Validator) ValidateRunUpdate(ctx context.Context, old, run *v1alpha1.TaskRun) (admission.Warnings, error) {
	start := time.Now()
	errs := runSpecChanges(&old.Spec, &run.Spec)
	errs = append(errs, v.finalizerRule(ctx, old, run)...)
	observe("validate", "TaskRun", run.Plugin(), admissionv1.Update, start, errs, nil)
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(taskRunGroupKind, run.Name, errs)
	}
	return nil, nil
}
