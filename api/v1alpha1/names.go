package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// MaxChildNameLength bounds the names of objects a run creates: 63 keeps them
// valid as label values and Pod hostnames too.
const MaxChildNameLength = 63

// ChildName is the deterministic name of the object a run creates, so that a
// retried or restarted controller finds it instead of creating a second one:
// "<run>-<suffix>", or, when that is too long, a cut of it ended by a hash
// of the whole so distinct runs never share a child.
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

// TaskLabelValue is the value of the TaskLabel (or TaskRunLabel) for a Task
// (or TaskRun): its name, or a length-safe form of it when the name is longer
// than a label value may be.
func TaskLabelValue(name string) string {
	return ChildName(name)
}

// ServiceAccountName is the ServiceAccount taskgate creates for a
// custom-image run whose config names none: "<run>-<8 hex digits of the
// run's UID>". The UID is random and exists only once the run does, so no
// one can create the ServiceAccount, or a RoleBinding naming it, before the
// run exists; one made afterwards is not the one taskgate recorded creating
// (status.customImage.serviceAccountUID) and is never bound nor used.
// Without a UID (a dry run at admission) it is "<run>-sa".
func ServiceAccountName(runName string, runUID types.UID) string {
	id := strings.ReplaceAll(string(runUID), "-", "")
	if len(id) < 8 {
		return ChildName(runName, "sa")
	}
	return ChildName(runName, id[:8])
}

// PodName is the name of the Pod a custom-image run starts first.
func PodName(runName string) string {
	return ChildName(runName, "task")
}

// AttemptPodName is the Pod of attempt n of a custom-image run with
// retries: attempt 0 is PodName, attempt n >= 1 is "<PodName>-<n>", made
// length-safe like every child name.
func AttemptPodName(runName string, n int32) string {
	if n == 0 {
		return PodName(runName)
	}
	return ChildName(runName, "task", strconv.Itoa(int(n)))
}

// ClusterRoleBindingName is the ClusterRoleBinding for a custom-image run's
// clusterRole; cluster-scoped, so it carries the namespace too. A dot parts
// them: namespaces never contain one, so run "b-c" in namespace "a" and
// run "c" in namespace "a-b" get distinct names.
func ClusterRoleBindingName(namespace, runName string) string {
	return ChildName("taskgate." + namespace + "." + runName)
}

// SynchronizationName is the Synchronization a run-synchronization run creates.
func SynchronizationName(runName string) string {
	return ChildName(runName, "sync")
}
