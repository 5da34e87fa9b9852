package main

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestJudge: only a refusal by taskgate's webhook that names the unknown
// field passes; every other answer fails with a message that says what went
// wrong, and only an unreachable webhook is retried. The messages are the
// API server's own (test/helm's TestHelmTestHook gets them from a real one).
func TestJudge(t *testing.T) {
	tasks := schema.GroupResource{Group: "automation.astronetes.io", Resource: "tasks"}
	status := func(code int32, reason metav1.StatusReason, msg string) error {
		return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: reason, Message: msg}}
	}
	for _, tc := range []struct {
		name      string
		err       error
		timedOut  bool
		wantErr   string // empty: passes
		retryable bool
	}{
		{name: "refused by the validating webhook",
			err: status(http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, `admission webhook "vtask.automation.astronetes.io" denied the request: Task.automation.astronetes.io "x" is invalid: spec.config.taskgateSelftest: Forbidden: unknown field "taskgateSelftest"`)},
		{name: "refused by the single-call webhook",
			err: status(http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, `admission webhook "mtask.automation.astronetes.io" denied the request: spec.config.taskgateSelftest: Forbidden: unknown field "taskgateSelftest"`)},
		{name: "admitted", wantErr: "was admitted"},
		{name: "webhook unreachable", retryable: true, wantErr: "the webhook did not answer",
			err: apierrors.NewInternalError(errors.New(`failed calling webhook "mtask.automation.astronetes.io": failed to call webhook: Post "https://taskgate-webhook.taskgate-system.svc:443/mutate-automation-astronetes-io-v1alpha1-task?timeout=5s": dial tcp 10.0.0.1:443: connect: connection refused`))},
		{name: "timed out", timedOut: true, retryable: true, wantErr: "before the timeout", err: errors.New("context deadline exceeded")},
		{name: "no RBAC", wantErr: "the test's RBAC",
			err: apierrors.NewForbidden(tasks, "", errors.New(`User "system:serviceaccount:ns:t" cannot create resource "tasks" in API group "automation.astronetes.io" in the namespace "ns"`))},
		{name: "another webhook", wantErr: "not by taskgate's webhooks",
			err: status(http.StatusForbidden, metav1.StatusReasonForbidden, `admission webhook "validate.kyverno.svc" denied the request: policy x`)},
		{name: "refused for something else", wantErr: "without naming spec.config.taskgateSelftest",
			err: status(http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, `admission webhook "vtask.automation.astronetes.io" denied the request: metadata.namespace: Forbidden`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := judge(tc.err, tc.timedOut, "ns")
			if tc.wantErr == "" {
				if err != nil || msg == "" {
					t.Fatalf("judge = %q, %v; want a pass with the refusal", msg, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("judge error %v, want one saying %q", err, tc.wantErr)
			}
			if got := errors.Is(err, errWebhookUnreachable); got != tc.retryable {
				t.Errorf("retried %v, want %v", got, tc.retryable)
			}
		})
	}
}
