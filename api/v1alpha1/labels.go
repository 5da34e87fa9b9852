package v1alpha1

// Names that taskgate puts on the objects it creates, in one place.
const (
	// TaskLabel marks every object a Task created with the Task's name.
	TaskLabel = "automation.astronetes.io/task"
	// Finalizer lets the controller remove cluster-scoped objects (a
	// ClusterRoleBinding) that owner references cannot clean up.
	Finalizer = "automation.astronetes.io/cleanup"
)
