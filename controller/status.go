package controller

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// setProgress marks task as still going: the Succeeded condition is Unknown
// and reason says how far it got (ReasonPending keeps the phase Pending).
func setProgress(task *v1alpha1.Task, reason, message string) {
	setSucceeded(task, metav1.ConditionUnknown, reason, message)
}

// succeed ends task successfully.
func succeed(task *v1alpha1.Task, reason, message string) {
	setSucceeded(task, metav1.ConditionTrue, reason, message)
}

// fail ends task unsuccessfully.
func fail(task *v1alpha1.Task, reason, message string) {
	setSucceeded(task, metav1.ConditionFalse, reason, message)
}

func setSucceeded(task *v1alpha1.Task, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&task.Status.Conditions, metav1.Condition{
		Type:               v1alpha1.ConditionSucceeded,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: task.Generation,
	})
}

// isFinished reports whether the Task reached Succeeded or Failed. A finished
// Task is never run again.
func isFinished(status *v1alpha1.TaskStatus) bool {
	c := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionSucceeded)
	return c != nil && c.Status != metav1.ConditionUnknown
}

// taskPhase derives the phase and the short message shown by `kubectl get
// tasks` from the Succeeded condition. It is the only place that decides the
// phase, so the phase can never disagree with the condition.
func taskPhase(conditions []metav1.Condition) (v1alpha1.TaskPhase, string) {
	c := meta.FindStatusCondition(conditions, v1alpha1.ConditionSucceeded)
	switch {
	case c == nil:
		return v1alpha1.TaskPending, ""
	case c.Status == metav1.ConditionTrue:
		return v1alpha1.TaskSucceeded, c.Message
	case c.Status == metav1.ConditionFalse:
		return v1alpha1.TaskFailed, c.Message
	case c.Reason == ReasonPending:
		return v1alpha1.TaskPending, c.Message
	default:
		return v1alpha1.TaskRunning, c.Message
	}
}

// deriveStatus fills the status fields that follow from the conditions: the
// phase and message, the completion time once finished, and the generation
// the status describes. Call it before every status write.
func deriveStatus(task *v1alpha1.Task, now metav1.Time) {
	st := &task.Status
	st.Phase, st.Message = taskPhase(st.Conditions)
	if isFinished(st) && st.CompletionTime == nil {
		st.CompletionTime = now.DeepCopy()
	}
	st.ObservedGeneration = task.Generation
}

// result is the value of the "result" metric label for a finished Task.
func result(status *v1alpha1.TaskStatus) string {
	if status.Phase == v1alpha1.TaskSucceeded {
		return "succeeded"
	}
	return "failed"
}
