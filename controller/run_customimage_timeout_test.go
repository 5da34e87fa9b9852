package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// A Pod that cannot be created for a reason that may pass is retried, the
// Task saying why, until status.startTime+timeout: then the Task fails with
// ReasonTimeout, whether or not a Pod ever existed.
func TestNotStarted(t *testing.T) {
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	transient := apierrors.NewInternalError(errors.New(`failed calling webhook "policy.example.com": connection refused`))
	tests := []struct {
		name        string
		timeout     *int64
		elapsed     time.Duration
		err         error
		pending     string // the Task's message before
		wantErr     bool
		wantRequeue time.Duration
		wantReason  string
		wantText    string
		wantDone    bool
	}{
		{name: "no timeout: backoff", err: transient, elapsed: time.Hour, wantErr: true},
		{name: "well before the timeout", timeout: ptr.To[int64](60), elapsed: 10 * time.Second, err: transient,
			wantRequeue: notStartedRetry, wantReason: ReasonPending, wantText: "connection refused"},
		{name: "just before the timeout: called back when it is due", timeout: ptr.To[int64](60), elapsed: 58 * time.Second, err: transient,
			wantRequeue: 3 * time.Second, wantReason: ReasonPending, wantText: "retrying until the timeout"},
		{name: "timeout passed", timeout: ptr.To[int64](60), elapsed: 61 * time.Second, err: transient,
			wantReason: ReasonTimeout, wantText: "was not created within the timeout of 1m0s: Internal error occurred", wantDone: true},
		{name: "deadline passed before the create", timeout: ptr.To[int64](60), elapsed: 30 * time.Second, err: errDeadlinePassed,
			wantReason: ReasonTimeout, wantText: "was not created within the timeout of 1m0s", wantDone: true},
		{name: "deadline passed after a retry: the last error is told", timeout: ptr.To[int64](60), elapsed: 61 * time.Second, err: errDeadlinePassed,
			pending:    "pod t-task is not created yet (retrying until the timeout): connection refused",
			wantReason: ReasonTimeout, wantText: "was not created within the timeout of 1m0s: connection refused", wantDone: true},
		{name: "stale status is the reconciler's", timeout: ptr.To[int64](60), elapsed: 61 * time.Second,
			err: fmt.Errorf("record: %w", errStaleStatus), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &customImageRunner{deps: &deps{clock: clocktesting.NewFakePassiveClock(start.Add(tt.elapsed))}}
			task := &v1alpha1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: "t", Namespace: "ns"}}
			task.Status.StartTime = &metav1.Time{Time: start}
			if tt.pending != "" {
				setProgress(task, ReasonPending, tt.pending)
			}
			requeue, err := c.notStarted(context.Background(), task, &v1alpha1.CustomImageConfig{TimeoutSeconds: tt.timeout}, tt.err)
			if tt.wantErr {
				if err == nil || len(task.Status.Conditions) != 0 {
					t.Fatalf("err = %v, conditions %+v; want the error returned, status untouched", err, task.Status.Conditions)
				}
				return
			}
			if err != nil || requeue != tt.wantRequeue {
				t.Fatalf("notStarted() = %v, %v; want %v, nil", requeue, err, tt.wantRequeue)
			}
			if len(task.Status.Conditions) != 1 {
				t.Fatalf("conditions %+v", task.Status.Conditions)
			}
			cond := task.Status.Conditions[0]
			if cond.Reason != tt.wantReason || !strings.Contains(cond.Message, tt.wantText) || isFinished(&task.Status) != tt.wantDone {
				t.Errorf("condition %s %q (finished %v), want %s containing %q (finished %v)",
					cond.Reason, cond.Message, isFinished(&task.Status), tt.wantReason, tt.wantText, tt.wantDone)
			}
		})
	}
}
