package v1alpha1

// Names that taskgate puts on the objects it creates, in one place.
const (
	// TaskLabel marks every object a Task created with the Task's name.
	TaskLabel = "automation.astronetes.io/task"
	// TaskUIDLabel on a cluster-scoped child (a ClusterRoleBinding) holds the
	// UID of the Task that created it, which an owner reference cannot name
	// across scopes: a later Task of the same name never inherits it, and the
	// controller removes it once no Task has that UID.
	TaskUIDLabel = "automation.astronetes.io/task-uid"
	// Finalizer lets the controller remove cluster-scoped objects (a
	// ClusterRoleBinding) that owner references cannot clean up.
	Finalizer = "automation.astronetes.io/cleanup"
)
