package v1alpha1

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
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

// A run's ServiceAccount cannot be named before the run exists: it carries
// part of the run's random UID, so two runs of one name get distinct ones.
func TestServiceAccountName(t *testing.T) {
	long := strings.Repeat("r", 70)
	tests := []struct {
		run  string
		uid  string
		want string
	}{
		{run: "hello-x7k2q", uid: "0f8c2a4e-1b2d-4c3e-9f00-123456789abc", want: "hello-x7k2q-0f8c2a4e"},
		{run: "hello-x7k2q", uid: "", want: "hello-x7k2q-sa"},
		{run: long, uid: "0f8c2a4e-1b2d-4c3e-9f00-123456789abc", want: ChildName(long, "0f8c2a4e")},
	}
	for _, tt := range tests {
		if got := ServiceAccountName(tt.run, types.UID(tt.uid)); got != tt.want || len(got) > MaxChildNameLength {
			t.Errorf("ServiceAccountName(%q, %q) = %q, want %q", tt.run, tt.uid, got, tt.want)
		}
	}
	if ServiceAccountName("r", "aaaaaaaa-0") == ServiceAccountName("r", "bbbbbbbb-0") {
		t.Error("two runs named r share a ServiceAccount")
	}
}
