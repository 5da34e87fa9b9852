package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// notStartedRetry is how soon a custom-image Task whose Pod could not be
// created yet, for a reason that may pass, is tried again. The runner asks
// for it itself rather than returning the error, because
// controller-runtime's backoff grows to many minutes and ignores any
// requeue asked with an error: the timeout would then not hold.
const notStartedRetry = 5 * time.Second

// errDeadlinePassed: the run's timeout passed before its Pod was created.
var errDeadlinePassed = errors.New("the timeout passed before the pod was created")

// timeLeft is how long the run has until its timeout, counted from
// status.startTime whether or not a Pod exists; due is false when there is
// no timeout to enforce.
func (c *customImageRunner) timeLeft(run *v1alpha1.TaskRun, cfg *v1alpha1.CustomImageConfig) (left time.Duration, due bool) {
	if cfg.TimeoutSeconds == nil || run.Status.StartTime == nil {
		return 0, false
	}
	// startTime is stored in whole seconds, rounded down: the extra second
	// makes sure no Task is stopped before it ran for its full timeout.
	timeout := time.Duration(*cfg.TimeoutSeconds) * time.Second
	return run.Status.StartTime.Add(timeout + time.Second).Sub(c.clock.Now()), true
}

// notStarted decides what a reconcile that could not create the Pod (nor
// what it needs) for a reason that may pass does: it fails the run with
// ReasonTimeout once the timeout is due, and until then says in the run's
// message what is in the way and asks to be called again, no later than
// the timeout. Without a timeout the error is returned for
// controller-runtime's backoff, as are the reconciler's own.
func (c *customImageRunner) notStarted(ctx context.Context, run *v1alpha1.TaskRun, cfg *v1alpha1.CustomImageConfig, err error) (time.Duration, error) {
	left, due := c.timeLeft(run, cfg)
	if !due || errors.Is(err, errStaleStatus) || errors.Is(err, errTaskGone) {
		return 0, err
	}
	timeout := time.Duration(*cfg.TimeoutSeconds) * time.Second
	var attempt int32
	if st := run.Status.CustomImage; st != nil {
		attempt = st.Attempt
	}
	pod := v1alpha1.AttemptPodName(run.Name, attempt)
	waiting := fmt.Sprintf("pod %s is not created yet (retrying until the timeout): ", pod)
	if left <= 0 || errors.Is(err, errDeadlinePassed) {
		why := err.Error()
		if errors.Is(err, errDeadlinePassed) {
			// The reconcile asked for at the deadline does not try again:
			// tell the error the last attempt met, as the run said it.
			why = ""
			if c := meta.FindStatusCondition(run.Status.Conditions, v1alpha1.ConditionSucceeded); c != nil {
				if rest, found := strings.CutPrefix(c.Message, waiting); found {
					why = rest
				}
			}
		}
		msg := fmt.Sprintf("pod %s was not created within the timeout of %s", pod, timeout)
		if why != "" {
			msg += ": " + why
		}
		fail(run, ReasonTimeout, msg)
		return 0, nil
	}
	log.FromContext(ctx).Error(err, "pod not created yet; retrying", "pod", pod, "timeoutIn", left.String())
	setProgress(run, ReasonPending, waiting+err.Error())
	return min(left, notStartedRetry), nil
}

// enforceTimeout stops a Pod that ran past the run's timeout and fails the
// Task; otherwise it asks to be called back when the timeout is due. The
// controller does this itself rather than trusting activeDeadlineSeconds
// alone: that deadline counts from the Pod's start, so a Pod stuck pulling
// its image would never time out.
func (c *customImageRunner) enforceTimeout(ctx context.Context, run *v1alpha1.TaskRun, pod *corev1.Pod, cfg *v1alpha1.CustomImageConfig) (time.Duration, error) {
	left, due := c.timeLeft(run, cfg)
	if !due {
		return 0, nil
	}
	timeout := time.Duration(*cfg.TimeoutSeconds) * time.Second
	if left > 0 {
		return left, nil
	}
	// The manager's own delete, of the Pod ensurePod proved this run
	// created (its recorded UID), with a UID precondition so a Pod
	// recreated under the same name is never the one deleted. Whatever
	// stands in the way, the run ends here: a timeout always ends it, and
	// its end removes the binding.
	st := run.Status.CustomImage
	if st == nil || st.PodUID == "" || pod.UID != st.PodUID {
		fail(run, ReasonTimeout, fmt.Sprintf("did not finish within %s; pod %s is not one this run recorded creating and was left alone", timeout, pod.Name))
		return 0, nil
	}
	err := c.client.Delete(ctx, pod, client.Preconditions{UID: &pod.UID}, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if client.IgnoreNotFound(err) != nil {
		return 0, fmt.Errorf("delete pod %s/%s after timeout: %w", pod.Namespace, pod.Name, err)
	}
	log.FromContext(ctx).Info("pod deleted after timeout", "pod", klog.KObj(pod), "timeout", timeout.String())
	c.event(run, corev1.EventTypeWarning, EventPodDeleted, "Delete", "deleted pod %s: it ran past the timeout of %s", pod.Name, timeout)
	fail(run, ReasonTimeout, fmt.Sprintf("pod %s did not finish within %s and was deleted", pod.Name, timeout))
	return 0, nil
}
