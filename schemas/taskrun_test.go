package schemas_test

import (
	"encoding/json"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestTaskAndTaskRunSchemas checks the spec fields of task.json and
// taskrun.json outside the plugins' configs, and that a TaskRun's
// spec.taskSpec is held to the same plugin schemas as a Task's spec.
func TestTaskAndTaskRunSchemas(t *testing.T) {
	files := bundle(t)
	const hello = `{plugin: custom-image, config: {image: busybox:1.36, command: [echo]}}`
	tests := []struct {
		name   string
		schema string
		doc    string
		valid  bool
	}{
		{name: "Task", schema: "task.json", valid: true, doc: `spec: ` + hello},
		{name: "Task with a concurrency policy and history limits", schema: "task.json", valid: true,
			doc: `spec: {plugin: custom-image, concurrencyPolicy: Forbid, successfulRunsHistoryLimit: 0, failedRunsHistoryLimit: 5, config: {image: busybox:1.36, command: [echo]}}`},
		{name: "Task with an unknown concurrency policy", schema: "task.json",
			doc: `spec: {plugin: custom-image, concurrencyPolicy: Replace, config: {image: busybox:1.36, command: [echo]}}`},
		{name: "Task with a negative history limit", schema: "task.json",
			doc: `spec: {plugin: custom-image, failedRunsHistoryLimit: -1, config: {image: busybox:1.36, command: [echo]}}`},
		{name: "Task's config checked", schema: "task.json", doc: `spec: {plugin: custom-image, config: {image: busybox:1.36, comand: [echo]}}`},
		{name: "TaskRun of a Task", schema: "taskrun.json", valid: true, doc: `spec: {taskRef: {name: hello-world}}`},
		{name: "TaskRun inline", schema: "taskrun.json", valid: true, doc: `spec: {taskSpec: ` + hello + `, ttlSecondsAfterFinished: 0}`},
		{name: "TaskRun as admitted: both, and the requester", schema: "taskrun.json", valid: true,
			doc: `spec: {taskRef: {name: hello-world}, taskSpec: ` + hello + `, requester: {username: alice, groups: [oncall]}}`},
		{name: "TaskRun with neither", schema: "taskrun.json", doc: `spec: {ttlSecondsAfterFinished: 60}`},
		{name: "TaskRun's taskRef without a name", schema: "taskrun.json", doc: `spec: {taskRef: {name: ""}}`},
		{name: "TaskRun's inline config checked", schema: "taskrun.json", doc: `spec: {taskSpec: {plugin: custom-image, config: {image: busybox:1.36, comand: [echo]}}}`},
		{name: "TaskRun's inline plugin checked", schema: "taskrun.json", doc: `spec: {taskSpec: {plugin: custom-imag, config: {}}}`},
		{name: "TaskRun's inline rules checked", schema: "taskrun.json",
			doc: `spec: {taskSpec: {plugin: kubernetes-object-transformation, config: {namespaces: [Shop], resources: [{version: v1, resource: configmaps}], operations: [{mergePatch: {}}]}}}`},
		{name: "TaskRun without Task fields", schema: "taskrun.json", doc: `spec: {taskRef: {name: a}, concurrencyPolicy: Forbid}`},
		{name: "TaskRun's negative ttl", schema: "taskrun.json", doc: `spec: {taskRef: {name: a}, ttlSecondsAfterFinished: -1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind := map[string]string{"task.json": "Task", "taskrun.json": "TaskRun"}[tt.schema]
			doc := "apiVersion: automation.astronetes.io/v1alpha1\nkind: " + kind + "\nmetadata: {name: x, namespace: shop}\n" + tt.doc + "\n"
			j, err := yaml.YAMLToJSON([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			d := json.NewDecoder(strings.NewReader(string(j)))
			d.UseNumber()
			var v any
			if err := d.Decode(&v); err != nil {
				t.Fatal(err)
			}
			err = compileBundle(t, files, tt.schema).Validate(v)
			if (err == nil) != tt.valid {
				t.Errorf("%s: valid=%v, want %v (%v)", tt.schema, err == nil, tt.valid, err)
			}
		})
	}
}
