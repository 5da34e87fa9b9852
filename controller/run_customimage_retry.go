package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// maxAttempts bounds status.customImage.attempts: the schema allows at most
// 10 retries, so 11 attempts.
const maxAttempts = 11

// recordAttempt adds the finished Pod of the current attempt to
// status.customImage.attempts, once: follow runs on every reconcile.
func recordAttempt(st *v1alpha1.CustomImageStatus, pod *corev1.Pod, term *corev1.ContainerStateTerminated) {
	if len(st.Attempts) != int(st.Attempt) || len(st.Attempts) >= maxAttempts {
		return
	}
	a := v1alpha1.CustomImageAttempt{Pod: pod.Name, Reason: pod.Status.Reason}
	if term != nil {
		a.ExitCode = &term.ExitCode
		a.Reason = term.Reason
	}
	st.Attempts = append(st.Attempts, a)
}

// attemptSuffix says, in the run's final message, which attempt ended it;
// nothing for a run without retries, whose message stays as it was.
func attemptSuffix(st *v1alpha1.CustomImageStatus, cfg *v1alpha1.CustomImageConfig) string {
	retries := deref(cfg.Retries)
	if retries == 0 {
		return ""
	}
	return fmt.Sprintf(" (attempt %d of %d)", st.Attempt+1, retries+1)
}

// nextAttempt moves the run on to its next attempt after the current Pod's
// container exited non-zero. The new attempt number is written (a
// checkpoint) before its Pod is created: a controller that stops after the
// checkpoint creates that attempt's Pod on the next reconcile (ensurePod
// finds it if it was created already), and one that stops before it judges
// the same failed Pod again. Either way no attempt gets two Pods and none
// is skipped. The failed Pod stays, owned by the run, with its logs.
//
// The timeout covers every attempt: once it passed, no attempt starts and
// the run fails with ReasonTimeout (started is false).
func (c *customImageRunner) nextAttempt(ctx context.Context, run *v1alpha1.TaskRun, cfg *v1alpha1.CustomImageConfig, failed *corev1.Pod, cp checkpointer) (started bool, err error) {
	st := run.Status.CustomImage
	code := deref(st.ExitCode)
	total := deref(cfg.Retries) + 1
	if left, due := c.timeLeft(run, cfg); due && left <= 0 {
		fail(run, ReasonTimeout, fmt.Sprintf("attempt %d of %d failed with exit code %d (pod %s) and the timeout of %ds passed: no attempt is left time",
			st.Attempt+1, total, code, failed.Name, deref(cfg.TimeoutSeconds)))
		return false, nil
	}
	st.Attempt++
	st.PodName, st.PodUID, st.CreationToken = "", "", ""
	st.ExitCode = nil
	next := v1alpha1.AttemptPodName(run.Name, st.Attempt)
	msg := fmt.Sprintf("attempt %d of %d failed with exit code %d (pod %s); starting attempt %d (pod %s)",
		st.Attempt, total, code, failed.Name, st.Attempt+1, next)
	setProgress(run, ReasonPending, msg)
	if err := cp.save(ctx); err != nil {
		return false, fmt.Errorf("record attempt %d: %w", st.Attempt, err)
	}
	log.FromContext(ctx).Info("attempt failed; retrying", "pod", failed.Name, "exitCode", code, "attempt", st.Attempt, "nextPod", next)
	c.event(run, corev1.EventTypeWarning, EventPodFailed, "Retry", "%s", msg)
	return true, nil
}
