package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// MaxChildNameLength bounds the names of objects a Task creates: 63 keeps them
// valid as label values and Pod hostnames too.
const MaxChildNameLength = 63

// ChildName is the deterministic name of the object a Task creates, so that a
// retried or restarted controller finds it instead of creating a second one:
// "<task>-<suffix>", or, when that is too long, a cut of it ended by a hash
// of the whole so distinct Tasks never share a child.
func ChildName(parts ...string) string {
	full := strings.Join(parts, "-")
	if len(full) <= MaxChildNameLength {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	hash := hex.EncodeToString(sum[:])[:10]
	head := strings.TrimRight(full[:MaxChildNameLength-len(hash)-1], "-.")
	return head + "-" + hash
}

// TaskLabelValue is the value of the TaskLabel for a Task: its name, or a
// length-safe form of it when the name is longer than a label value may be.
func TaskLabelValue(taskName string) string {
	return ChildName(taskName)
}

// DefaultServiceAccountName is the ServiceAccount taskgate creates for a
// custom-image Task that names none.
func DefaultServiceAccountName(taskName string) string {
	return ChildName(taskName, "task")
}

// PodName is the name of the Pod a custom-image Task runs.
func PodName(taskName string) string {
	return ChildName(taskName, "task")
}

// AttemptPodName is the Pod of attempt n of a custom-image Task with
// retries: attempt 0 is PodName, attempt n >= 1 is "<PodName>-<n>", made
// length-safe like every child name.
func AttemptPodName(taskName string, n int32) string {
	if n == 0 {
		return PodName(taskName)
	}
	return ChildName(taskName, "task", strconv.Itoa(int(n)))
}

// ClusterRoleBindingName is the ClusterRoleBinding for a custom-image Task's
// clusterRole; cluster-scoped, so it carries the namespace too. A dot parts
// them: namespaces never contain one, so Task "b-c" in namespace "a" and
// Task "c" in namespace "a-b" get distinct names.
func ClusterRoleBindingName(namespace, taskName string) string {
	return ChildName("taskgate." + namespace + "." + taskName)
}

// SynchronizationName is the Synchronization a run-synchronization Task creates.
func SynchronizationName(taskName string) string {
	return ChildName(taskName, "sync")
}
