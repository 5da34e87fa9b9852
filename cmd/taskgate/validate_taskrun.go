package main

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/webhook"
)

var (
	// runSpecPath is a Task's or a TaskRun's spec.
	runSpecPath     = field.NewPath("spec")
	taskRefNamePath = runSpecPath.Child("taskRef", "name")
	taskSpecPath    = runSpecPath.Child("taskSpec")
)

// decodeTaskRun decodes a TaskRun document strictly, with the CRD's rules
// on its spec (the webhook's schemas cover the plugin's config only).
func decodeTaskRun(jsonData []byte) decoded {
	run := &v1alpha1.TaskRun{}
	errs, ok := decodeStrict(jsonData, run)
	if !ok {
		return decoded{run: run, errs: errs}
	}
	spec := run.Spec
	if spec.TaskRef == nil && spec.TaskSpec == nil {
		// The CRD's x-kubernetes-validations rule, in the API server's words.
		errs = append(errs, field.Invalid(runSpecPath, "object", "set spec.taskRef.name (a Task in this namespace) or spec.taskSpec (plugin and config inline)"))
	}
	if spec.TaskRef != nil && spec.TaskRef.Name == "" {
		errs = append(errs, field.Invalid(taskRefNamePath, "", "should be at least 1 chars long"))
	}
	errs = append(errs, notNegative(runSpecPath.Child("ttlSecondsAfterFinished"), spec.TTLSecondsAfterFinished)...)
	return decoded{run: run, errs: errs, decoded: true}
}

// checkTaskRun checks a TaskRun that passed the API server's checks as
// admission would: an inline spec.taskSpec is defaulted and validated as
// a Task's spec is; a spec.taskRef is left for resolveTaskRefs, as
// admission replaces spec.taskSpec with the named Task's spec.
func checkTaskRun(a *webhook.Admitter, r result) result {
	run := r.run
	if ref := run.Spec.TaskRef; ref != nil {
		r.taskRef = &client.ObjectKey{Namespace: run.Namespace, Name: ref.Name}
		if run.Spec.TaskSpec != nil {
			r.warnings = append(r.warnings, fmt.Sprintf("%s is replaced at admission by Task %s's spec; it is not checked", taskSpecPath, r.taskRef))
		}
		return r
	}
	// The Admitter checks a Task; the run's snapshot is one, in the run's
	// namespace and with its name (the defaults derived from it are the run's).
	task := &v1alpha1.Task{ObjectMeta: run.ObjectMeta, Spec: v1alpha1.TaskSpec{PluginSpec: *run.Spec.TaskSpec}}
	if r.errs = a.Default(task); len(r.errs) == 0 {
		r.errs, r.warnings = a.Validate(task)
	}
	run.Spec.TaskSpec.Config = task.Spec.Config
	r.errs = underTaskSpec(r.errs)
	for i, w := range r.warnings {
		r.warnings[i] = strings.NewReplacer("spec.config", "spec.taskSpec.config", "spec.plugin", "spec.taskSpec.plugin").Replace(w)
	}
	return r
}

// underTaskSpec moves errors about a Task's spec to where they are in a
// TaskRun: spec.config.image becomes spec.taskSpec.config.image.
func underTaskSpec(errs field.ErrorList) field.ErrorList {
	for _, e := range errs {
		if rest, ok := strings.CutPrefix(e.Field, runSpecPath.String()+"."); ok {
			e.Field = taskSpecPath.String() + "." + rest
		}
	}
	return errs
}

// resolveTaskRefs gives each TaskRun naming a Task the verdict of that
// Task when the input holds it (the last of that namespace and name, as
// applying the input would leave it): invalid when the Task is. A Task the
// input does not hold leaves nothing to check offline, and a warning says so.
func resolveTaskRefs(results []result) {
	tasks := map[client.ObjectKey]result{}
	for _, r := range results {
		if r.task != nil && r.task.Name != "" {
			tasks[client.ObjectKeyFromObject(r.task)] = r
		}
	}
	for i := range results {
		r := &results[i]
		if r.taskRef == nil || len(r.errs) > 0 {
			continue
		}
		task, ok := tasks[*r.taskRef]
		switch {
		case !ok:
			r.warnings = append(r.warnings, fmt.Sprintf("%s: Task %s is not in the input: nothing to check offline (the Task is resolved at admission)", taskRefNamePath, r.taskRef))
		case task.verdict() == "invalid":
			r.errs = append(r.errs, field.Invalid(taskRefNamePath, r.taskRef.Name, fmt.Sprintf("Task %s (%s) is invalid: a run of it would be refused", r.taskRef, task.doc)))
		}
	}
}
