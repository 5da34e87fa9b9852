package controller

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// setProgress marks run as still going: the Succeeded condition is Unknown
// and reason says how far it got (ReasonPending keeps the phase Pending).
func setProgress(run *v1alpha1.TaskRun, reason, message string) {
	setSucceeded(run, metav1.ConditionUnknown, reason, message)
}

// succeed ends run successfully.
func succeed(run *v1alpha1.TaskRun, reason, message string) {
	setSucceeded(run, metav1.ConditionTrue, reason, message)
}

// fail ends run unsuccessfully.
func fail(run *v1alpha1.TaskRun, reason, message string) {
	setSucceeded(run, metav1.ConditionFalse, reason, message)
}

func setSucceeded(run *v1alpha1.TaskRun, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&run.Status.Conditions, metav1.Condition{
		Type:               v1alpha1.ConditionSucceeded,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: run.Generation,
	})
}

// isFinished reports whether the run reached Succeeded or Failed. A finished
// Task is never run again.
func isFinished(status *v1alpha1.TaskRunStatus) bool {
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
func deriveStatus(run *v1alpha1.TaskRun, now metav1.Time) {
	st := &run.Status
	st.Phase, st.Message = taskPhase(st.Conditions)
	if isFinished(st) && st.CompletionTime == nil {
		st.CompletionTime = now.DeepCopy()
	}
	st.ObservedGeneration = run.Generation
}

// result is the value of the "result" metric label for a finished Task.
func result(status *v1alpha1.TaskRunStatus) string {
	if status.Phase == v1alpha1.TaskSucceeded {
		return "succeeded"
	}
	return "failed"
}
