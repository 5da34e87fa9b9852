package v1alpha1

// Names that taskgate puts on the objects it creates, in one place.
const (
	// TaskLabel marks a TaskRun, and every object a run created, with the
	// name of the Task it runs (length-safe: TaskLabelValue). A one-off run
	// (spec.taskSpec without taskRef) has none.
	TaskLabel = "automation.astronetes.io/task"
	// TaskRunLabel marks every object a run created with the TaskRun's name
	// (length-safe: TaskLabelValue).
	TaskRunLabel = "automation.astronetes.io/taskrun"
	// TaskRunUIDLabel on a cluster-scoped child (a ClusterRoleBinding) holds
	// the UID of the TaskRun that created it, which an owner reference cannot
	// name across scopes: a later TaskRun of the same name never inherits it,
	// and the controller removes it once no unfinished TaskRun has that UID.
	TaskRunUIDLabel = "automation.astronetes.io/taskrun-uid"
	// TaskUIDLabel is the label a taskgate before TaskRuns put on the
	// ClusterRoleBinding of a Task; the sweeper still removes such bindings.
	TaskUIDLabel = "automation.astronetes.io/task-uid"
	// CreationTokenAnnotation on a custom-image Pod holds the
	// status.customImage.creationToken its run wrote before creating it.
	CreationTokenAnnotation = "automation.astronetes.io/creation-token"
	// Finalizer lets the controller remove cluster-scoped objects (a
	// ClusterRoleBinding) that owner references cannot clean up.
	Finalizer = "automation.astronetes.io/cleanup"
)
