package controller

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// fakeCheckpoint records the status each save would write.
type fakeCheckpoint struct {
	task  *v1alpha1.TaskRun
	saved []v1alpha1.CustomImageStatus
	err   error
}

func (f *fakeCheckpoint) save(context.Context) error {
	if f.err != nil {
		return f.err
	}
	f.saved = append(f.saved, *f.task.Status.CustomImage.DeepCopy())
	return nil
}

// The next attempt is recorded (checkpointed) before anything else, and
// only while the timeout leaves time for it.
func TestNextAttempt(t *testing.T) {
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		elapsed     time.Duration
		saveErr     error
		wantStarted bool
		wantErr     bool
		wantReason  string
		wantSaves   int
	}{
		{name: "time left: checkpoint then start", elapsed: 10 * time.Second, wantStarted: true, wantReason: ReasonPending, wantSaves: 1},
		{name: "timeout passed: no attempt", elapsed: 61 * time.Second, wantReason: ReasonTimeout},
		{name: "checkpoint fails: nothing started", elapsed: 10 * time.Second, saveErr: errors.New("conflict"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := events.NewFakeRecorder(4)
			c := &customImageRunner{deps: &deps{clock: clocktesting.NewFakePassiveClock(start.Add(tt.elapsed)), recorder: rec}}
			task := &v1alpha1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: "t", Namespace: "ns"}}
			task.Status.StartTime = &metav1.Time{Time: start}
			task.Status.CustomImage = &v1alpha1.CustomImageStatus{PodName: "t-task", ExitCode: ptr.To[int32](2)}
			cfg := &v1alpha1.CustomImageConfig{TimeoutSeconds: ptr.To[int64](60), Retries: ptr.To[int32](2)}
			cp := &fakeCheckpoint{task: task, err: tt.saveErr}
			failed := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "t-task", Namespace: "ns"}}

			started, err := c.nextAttempt(context.Background(), task, cfg, failed, cp)
			if (err != nil) != tt.wantErr || started != tt.wantStarted {
				t.Fatalf("nextAttempt() = %v, %v; want started %v, error %v", started, err, tt.wantStarted, tt.wantErr)
			}
			if len(cp.saved) != tt.wantSaves {
				t.Fatalf("%d checkpoints, want %d", len(cp.saved), tt.wantSaves)
			}
			if tt.wantSaves > 0 {
				if s := cp.saved[0]; s.Attempt != 1 || s.PodName != "" || s.ExitCode != nil {
					t.Errorf("checkpoint %+v, want attempt 1 with no pod yet", s)
				}
				if ev := <-rec.Events; !strings.Contains(ev, EventPodFailed) || !strings.Contains(ev, "attempt 1 of 3 failed with exit code 2") ||
					!strings.Contains(ev, "t-task-1") {
					t.Errorf("event %q", ev)
				}
			}
			if tt.wantReason != "" {
				if c := task.Status.Conditions; len(c) != 1 || c[0].Reason != tt.wantReason {
					t.Errorf("conditions %+v, want reason %s", c, tt.wantReason)
				}
			}
		})
	}
}

// Each finished attempt is recorded once, however often it is seen.
func TestRecordAttempt(t *testing.T) {
	st := &v1alpha1.CustomImageStatus{}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "t-task"}}
	term := &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error"}
	recordAttempt(st, pod, term)
	recordAttempt(st, pod, term)
	if len(st.Attempts) != 1 || *st.Attempts[0].ExitCode != 2 || st.Attempts[0].Reason != "Error" || st.Attempts[0].Pod != "t-task" {
		t.Fatalf("attempts %+v, want one: t-task exit 2 Error", st.Attempts)
	}
	st.Attempt = 1
	evicted := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "t-task-1"}, Status: corev1.PodStatus{Reason: "Evicted"}}
	recordAttempt(st, evicted, nil)
	if len(st.Attempts) != 2 || st.Attempts[1].ExitCode != nil || st.Attempts[1].Reason != "Evicted" {
		t.Fatalf("attempts %+v, want the evicted one without exit code", st.Attempts)
	}
}
