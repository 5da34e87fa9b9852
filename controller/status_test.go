package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

func cond(status metav1.ConditionStatus, reason, message string) []metav1.Condition {
	return []metav1.Condition{{Type: v1alpha1.ConditionSucceeded, Status: status, Reason: reason, Message: message}}
}

func TestTaskPhase(t *testing.T) {
	tests := []struct {
		name        string
		conditions  []metav1.Condition
		wantPhase   v1alpha1.TaskPhase
		wantMessage string
	}{
		{name: "no condition yet", wantPhase: v1alpha1.TaskPending},
		{name: "other conditions only", conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "X"}},
			wantPhase: v1alpha1.TaskPending},
		{name: "unknown pending", conditions: cond(metav1.ConditionUnknown, ReasonPending, "pod p is pending"),
			wantPhase: v1alpha1.TaskPending, wantMessage: "pod p is pending"},
		{name: "unknown running", conditions: cond(metav1.ConditionUnknown, ReasonRunning, "pod p is running"),
			wantPhase: v1alpha1.TaskRunning, wantMessage: "pod p is running"},
		{name: "unknown patching", conditions: cond(metav1.ConditionUnknown, ReasonPatching, "patching objects"),
			wantPhase: v1alpha1.TaskRunning, wantMessage: "patching objects"},
		{name: "true", conditions: cond(metav1.ConditionTrue, ReasonCompleted, "done"),
			wantPhase: v1alpha1.TaskSucceeded, wantMessage: "done"},
		{name: "false", conditions: cond(metav1.ConditionFalse, ReasonTimeout, "too slow"),
			wantPhase: v1alpha1.TaskFailed, wantMessage: "too slow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			phase, msg := taskPhase(tt.conditions)
			if phase != tt.wantPhase || msg != tt.wantMessage {
				t.Errorf("taskPhase() = %q, %q; want %q, %q", phase, msg, tt.wantPhase, tt.wantMessage)
			}
		})
	}
}

func TestDeriveStatus(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	earlier := metav1.NewTime(now.Add(-time.Hour))
	tests := []struct {
		name           string
		set            func(*v1alpha1.TaskRun)
		completionTime *metav1.Time
		wantCompletion *metav1.Time
		wantPhase      v1alpha1.TaskPhase
	}{
		{name: "running has no completion time", set: func(t *v1alpha1.TaskRun) { setProgress(t, ReasonRunning, "r") },
			wantPhase: v1alpha1.TaskRunning},
		{name: "finished gets completion time", set: func(t *v1alpha1.TaskRun) { succeed(t, ReasonCompleted, "ok") },
			wantPhase: v1alpha1.TaskSucceeded, wantCompletion: &now},
		{name: "completion time is kept", set: func(t *v1alpha1.TaskRun) { fail(t, ReasonPodFailed, "no") },
			completionTime: &earlier, wantPhase: v1alpha1.TaskFailed, wantCompletion: &earlier},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := &v1alpha1.TaskRun{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
			task.Status.CompletionTime = tt.completionTime
			tt.set(task)
			deriveStatus(task, now)
			st := task.Status
			if st.Phase != tt.wantPhase {
				t.Errorf("phase = %q, want %q", st.Phase, tt.wantPhase)
			}
			if st.Message != st.Conditions[0].Message {
				t.Errorf("message = %q, want the condition's %q", st.Message, st.Conditions[0].Message)
			}
			if !st.CompletionTime.Equal(tt.wantCompletion) {
				t.Errorf("completionTime = %v, want %v", st.CompletionTime, tt.wantCompletion)
			}
			if st.ObservedGeneration != 3 || st.Conditions[0].ObservedGeneration != 3 {
				t.Errorf("observedGeneration = %d (condition %d), want 3", st.ObservedGeneration, st.Conditions[0].ObservedGeneration)
			}
		})
	}
}

func TestMirror(t *testing.T) {
	tests := []struct {
		name       string
		conditions []metav1.Condition
		wantPhase  v1alpha1.TaskPhase
		wantReason string
	}{
		{name: "no conditions: created is success", wantPhase: v1alpha1.TaskSucceeded, wantReason: ReasonSynchronizationCreated},
		{name: "progress conditions are ignored", conditions: []metav1.Condition{
			{Type: "Ready", Status: metav1.ConditionFalse, Reason: "Starting"},
			{Type: syncConditionSucceeded, Status: metav1.ConditionUnknown, Reason: "Running"},
		}, wantPhase: v1alpha1.TaskSucceeded, wantReason: ReasonSynchronizationCreated},
		{name: "succeeded true", conditions: []metav1.Condition{
			{Type: syncConditionSucceeded, Status: metav1.ConditionTrue, Reason: "Done"},
		}, wantPhase: v1alpha1.TaskSucceeded, wantReason: ReasonSynchronizationSucceeded},
		{name: "succeeded false", conditions: []metav1.Condition{
			{Type: syncConditionSucceeded, Status: metav1.ConditionFalse, Reason: "Broken", Message: "no source"},
		}, wantPhase: v1alpha1.TaskFailed, wantReason: ReasonSynchronizationFailed},
		{name: "failed true wins", conditions: []metav1.Condition{
			{Type: syncConditionSucceeded, Status: metav1.ConditionTrue, Reason: "Done"},
			{Type: syncConditionFailed, Status: metav1.ConditionTrue, Reason: "Broken"},
		}, wantPhase: v1alpha1.TaskFailed, wantReason: ReasonSynchronizationFailed},
		{name: "failed false is not failure", conditions: []metav1.Condition{
			{Type: syncConditionFailed, Status: metav1.ConditionFalse, Reason: "Fine"},
		}, wantPhase: v1alpha1.TaskSucceeded, wantReason: ReasonSynchronizationCreated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := &v1alpha1.TaskRun{}
			sync := &v1alpha1.Synchronization{ObjectMeta: metav1.ObjectMeta{Name: "s"}}
			sync.Status.Conditions = tt.conditions
			mirror(task, sync)
			phase, _ := taskPhase(task.Status.Conditions)
			if phase != tt.wantPhase || task.Status.Conditions[0].Reason != tt.wantReason {
				t.Errorf("mirror() = %q/%q, want %q/%q", phase, task.Status.Conditions[0].Reason, tt.wantPhase, tt.wantReason)
			}
		})
	}
}
