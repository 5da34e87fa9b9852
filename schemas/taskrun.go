package schemas

// TaskRunSchemaFile is the whole-TaskRun schema WriteBundle writes beside
// task.json.
const TaskRunSchemaFile = "taskrun.json"

// taskRunSchema is taskrun.json: a TaskRun names a Task (spec.taskRef) or
// carries a plugin and its config (spec.taskSpec), checked exactly as a
// Task's spec is. Like the CRD it asks for at least one of the two: a run
// read back from the cluster holds both, admission having copied the
// Task's spec into spec.taskSpec.
func (set *Set) taskRunSchema() ([]byte, error) {
	taskSpec, err := set.pluginSpecSchema("The plugin and its configuration this run executes, checked as a Task's spec is. " +
		"Set it without taskRef for a one-off run; with taskRef, admission replaces it with the Task's spec.")
	if err != nil {
		return nil, err
	}
	spec := map[string]any{
		"description":          "What the run executes and on whose behalf. Immutable once created.",
		"type":                 "object",
		"additionalProperties": false,
		"anyOf":                []any{map[string]any{"required": []any{"taskRef"}}, map[string]any{"required": []any{"taskSpec"}}},
		"properties": map[string]any{
			"taskRef": map[string]any{
				"description":          "The Task to run, in the TaskRun's namespace; admission resolves it (it must exist, and the creator must be allowed to read it).",
				"type":                 "object",
				"additionalProperties": false,
				"required":             []any{"name"},
				"properties": map[string]any{
					"name": map[string]any{"description": "Name of a Task in this namespace.", "type": "string", "minLength": 1},
				},
			},
			"taskSpec":                taskSpec,
			"requester":               requesterSchema("Who created the TaskRun; set by the admission webhook, which replaces anything written here."),
			"ttlSecondsAfterFinished": ttlSchema("Seconds a finished TaskRun is kept before the controller deletes it with what it created; 0 deletes it at once."),
		},
	}
	return set.document(TaskRunSchemaFile, "TaskRun",
		"A whole TaskRun document, as the API server and the taskgate admission webhook check it (a spec.taskRef is resolved at admission).", spec)
}
