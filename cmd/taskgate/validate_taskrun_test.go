package main

import "testing"

// TestValidateTaskRuns: a TaskRun's inline spec.taskSpec is checked as a
// Task's spec is, with errors under spec.taskSpec; a spec.taskRef is
// resolved against the input's Tasks; the CRD's rules hold for both kinds.
func TestValidateTaskRuns(t *testing.T) {
	task := func(meta string) string {
		return "apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nmetadata: " + meta + "\nspec: {plugin: custom-image, config: {image: busybox:1.36, command: [echo]}}\n"
	}
	taskRun := func(meta, spec string) string {
		return "apiVersion: automation.astronetes.io/v1alpha1\nkind: TaskRun\nmetadata: " + meta + "\nspec: " + spec + "\n"
	}
	checkValidateCases(t, []validateCase{
		{name: "Task's concurrency policy and history limits", args: []string{"validate", "-f", "-"}, wantCode: 1,
			stdin: "apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nmetadata: {name: s}\nspec: {plugin: custom-image, concurrencyPolicy: Replace, " +
				"successfulRunsHistoryLimit: -1, failedRunsHistoryLimit: -2, config: {image: busybox:1.36, command: [echo]}}\n",
			wantErr: []string{`spec.concurrencyPolicy: Unsupported value: "Replace": supported values: "Allow", "Forbid"`,
				"spec.successfulRunsHistoryLimit: Invalid value: -1: should be greater than or equal to 0",
				"spec.failedRunsHistoryLimit: Invalid value: -2: should be greater than or equal to 0"}},
		{name: "Task's concurrency policy and history limits set", args: []string{"validate", "-f", "-", "-o", "yaml"}, wantCode: 0,
			stdin: "apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nmetadata: {name: s}\nspec: {plugin: custom-image, concurrencyPolicy: Forbid, " +
				"successfulRunsHistoryLimit: 0, failedRunsHistoryLimit: 5, config: {image: busybox:1.36, command: [echo]}}\n",
			wantOut: []string{"concurrencyPolicy: Forbid", "successfulRunsHistoryLimit: 0", "failedRunsHistoryLimit: 5"}},
		{name: "TaskRun inline: defaulted, its ServiceAccount left to the run", args: []string{"validate", "-f", "-", "-o", "yaml"}, wantCode: 0,
			stdin:   taskRun("{name: r, namespace: shop}", "{taskSpec: {plugin: custom-image, config: {image: busybox:1.36, command: [echo]}}}"),
			wantOut: []string{"kind: TaskRun", "taskSpec:", "namespace: shop", "timeoutSeconds: 3600"}, notWantOut: []string{"status", "serviceAccountName"},
			wantErr: []string{"summary: 1 valid, 0 invalid, 0 skipped"}},
		{name: "TaskRun inline: errors under spec.taskSpec", args: []string{"validate", "-f", "-"}, wantCode: 1,
			stdin: taskRun("{name: r}", "{taskSpec: {plugin: custom-image, config: {image: busybox:1.36, comand: [echo]}}}"),
			wantErr: []string{"<stdin>:1: TaskRun default/r is invalid", `spec.taskSpec.config.comand: Forbidden: unknown field "comand"; did you mean "command"?`,
				"spec.taskSpec.config.command: Required value"},
			notWantErr: []string{"* spec.config"}},
		{name: "TaskRun inline: unknown plugin", args: []string{"validate", "-f", "-"}, wantCode: 1,
			stdin:   taskRun("{name: r}", "{taskSpec: {plugin: custom-imag, config: {}}}"),
			wantErr: []string{`spec.taskSpec.plugin: Unsupported value: "custom-imag"`, `did you mean "custom-image"?`}},
		{name: "TaskRun inline: other namespace named as the run's", args: []string{"validate", "-f", "-"}, wantCode: 1,
			stdin:   taskRun("{generateName: r-, namespace: shop}", "{taskSpec: {plugin: custom-image, config: {image: busybox:1.36, command: [echo], namespace: kube-system}}}"),
			wantErr: []string{"TaskRun shop/r-* is invalid", `spec.taskSpec.config.namespace: Invalid value: "kube-system"`}},
		{name: "TaskRun of a Task not in the input: nothing to check offline", args: []string{"validate", "-f", "-"}, wantCode: 0,
			stdin:   taskRun("{generateName: hello-world-}", "{taskRef: {name: hello-world}}"),
			wantOut: []string{"<stdin>:1: TaskRun default/hello-world-* is valid"},
			wantErr: []string{"spec.taskRef.name: Task default/hello-world is not in the input: nothing to check offline (the Task is resolved at admission)", "summary: 1 valid, 0 invalid, 0 skipped"}},
		{name: "TaskRun of a Task in the input that is invalid", args: []string{"validate", "-f", "-"}, wantCode: 1,
			stdin: "apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nmetadata: {name: b}\nspec: {plugin: custom-image, config: {image: busybox:1.36, comand: [echo]}}\n---\n" +
				taskRun("{name: b-1}", "{taskRef: {name: b}}"),
			wantErr: []string{"<stdin>:6: TaskRun default/b-1 is invalid", `spec.taskRef.name: Invalid value: "b": Task default/b (<stdin>:1) is invalid`, "summary: 0 valid, 2 invalid, 0 skipped"}},
		{name: "TaskRun of a Task in the input that is valid", args: []string{"validate", "-f", "-"}, wantCode: 0,
			stdin:      task("{name: a, namespace: shop}") + "---\n" + taskRun("{name: a-1, namespace: shop}", "{taskRef: {name: a}}"),
			wantOut:    []string{"TaskRun shop/a-1 is valid"},
			wantErr:    []string{"summary: 2 valid, 0 invalid, 0 skipped"},
			notWantErr: []string{"nothing to check offline"}},
		{name: "TaskRun with a Task and an inline spec: the inline one is replaced", args: []string{"validate", "-f", "-"}, wantCode: 0,
			stdin:   taskRun("{name: r}", "{taskRef: {name: a}, taskSpec: {plugin: custom-image, config: {comand: [echo]}}}"),
			wantErr: []string{"spec.taskSpec is replaced at admission by Task default/a's spec; it is not checked"}},
		{name: "TaskRun with neither", args: []string{"validate", "-f", "-"}, wantCode: 1,
			stdin:   taskRun("{name: r}", "{ttlSecondsAfterFinished: 60}"),
			wantErr: []string{`spec: Invalid value: "object": set spec.taskRef.name (a Task in this namespace) or spec.taskSpec (plugin and config inline)`}},
		{name: "TaskRun: the API server's errors together", args: []string{"validate", "-f", "-"}, wantCode: 1,
			stdin: taskRun("{name: Bad_Name}", "{taskRef: {name: \"\"}, ttlSecondsAfterFinished: -1, taskSpec: {plugn: custom-image}}"),
			wantErr: []string{`metadata.name: Invalid value: "Bad_Name"`, `spec.taskRef.name: Invalid value: "": should be at least 1 chars long`,
				"spec.ttlSecondsAfterFinished: Invalid value: -1", `unknown field "spec.taskSpec.plugn"`}},
		{name: "TaskRun of another group is skipped", args: []string{"validate", "-f", "-"}, wantCode: 2,
			stdin:   "apiVersion: tekton.dev/v1\nkind: TaskRun\nmetadata: {name: r}\nspec: {taskRef: {name: a}}\n",
			wantErr: []string{"skipped: tekton.dev/v1 TaskRun is not a Task or TaskRun (automation.astronetes.io/v1alpha1)", "no Task or TaskRun"}},
	})
}
