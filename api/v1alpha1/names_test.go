package v1alpha1

import (
	"strings"
	"testing"
)

func TestAttemptPodName(t *testing.T) {
	long := strings.Repeat("a", 70)
	tests := []struct {
		name string
		task string
		n    int32
		want string
	}{
		{name: "attempt 0 is the Pod of a Task without retries", task: "job", n: 0, want: PodName("job")},
		{name: "attempt 1", task: "job", n: 1, want: "job-task-1"},
		{name: "attempt 10", task: "job", n: 10, want: "job-task-10"},
		{name: "long task name", task: long, n: 3, want: ChildName(long, "task", "3")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AttemptPodName(tt.task, tt.n); got != tt.want || len(got) > MaxChildNameLength {
				t.Errorf("AttemptPodName(%q, %d) = %q, want %q (at most %d characters)", tt.task, tt.n, got, tt.want, MaxChildNameLength)
			}
		})
	}
	if AttemptPodName(long, 1) == AttemptPodName(long, 2) {
		t.Errorf("attempts 1 and 2 of a long-named Task share a Pod name")
	}
}
