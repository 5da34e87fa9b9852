package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/children"
)

// logSource opens the log of a Pod's container, as the kubelet serves it
// through the API server: followed until the container ends, each line
// prefixed with its RFC 3339 timestamp and a space, from since (when not
// nil) on. It fails while the Pod does not exist or the container has not
// started.
type logSource interface {
	Stream(ctx context.Context, namespace, pod, container string, since *metav1.Time) (io.ReadCloser, error)
}

// logSourceFactory makes the logSource of a cluster.
type logSourceFactory func(*rest.Config) (logSource, error)

// podLogs is the logSource of a real cluster.
type podLogs struct{ pods corev1client.PodsGetter }

func newPodLogs(cfg *rest.Config) (logSource, error) {
	c, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("core/v1 client: %w", err)
	}
	return podLogs{pods: c}, nil
}

func (p podLogs) Stream(ctx context.Context, namespace, pod, container string, since *metav1.Time) (io.ReadCloser, error) {
	opts := &corev1.PodLogOptions{Container: container, Follow: true, Timestamps: true, SinceTime: since}
	rc, err := p.pods.Pods(namespace).GetLogs(pod, opts).Stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("log of Pod %s/%s: %w", namespace, pod, err)
	}
	return rc, nil
}

// streamLogs streams, in order, the log of each custom-image attempt's Pod
// of the followed run as its status names them, until the run ended and
// the last known attempt's log did.
func (f *follower) streamLogs(ctx context.Context, state *runState) {
	for attempt := int32(0); ctx.Err() == nil; {
		s := state.get()
		pod, ok := attemptPod(s.run, attempt)
		if !ok {
			if s.ended {
				return
			}
			select {
			case <-s.changed:
			case <-ctx.Done():
			}
			continue
		}
		f.streamPod(ctx, state, s.run.Namespace, pod, attempt)
		attempt++
	}
}

// attemptPod is the Pod of attempt n of run, once its status names that
// attempt: the Pod recorded for a finished attempt, status.customImage's
// podName for the current one once the controller created it, else the
// deterministic name the controller creates it under.
func attemptPod(run *v1alpha1.TaskRun, n int32) (string, bool) {
	if run == nil || run.Status.CustomImage == nil || n > run.Status.CustomImage.Attempt {
		return "", false
	}
	ci := run.Status.CustomImage
	switch {
	case int(n) < len(ci.Attempts) && ci.Attempts[n].Pod != "":
		return ci.Attempts[n].Pod, true
	case n == ci.Attempt && ci.PodName != "":
		return ci.PodName, true
	}
	return v1alpha1.AttemptPodName(run.Name, n), true
}

// streamPod copies the log of one attempt's Pod to the output until the
// container ends. While the log is not there (the Pod not created yet,
// the container waiting) it retries with a backoff, as long as this is
// the run's current attempt; a stream that breaks is opened again from
// the last line printed.
func (f *follower) streamPod(ctx context.Context, state *runState, namespace, pod string, attempt int32) {
	prefix := fmt.Sprintf("[pod/%s/%s] ", pod, children.ContainerName)
	backoff := wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Cap: 2 * time.Second, Steps: 1 << 30}
	var last time.Time
	for ctx.Err() == nil {
		err := f.copyOnce(ctx, namespace, pod, prefix, &last)
		if err == nil || ctx.Err() != nil {
			return
		}
		s := state.get()
		if s.ended || movedOn(s.run, attempt) {
			fmt.Fprintf(f.stderr, "taskgate run: no more log of Pod %s (attempt %d): %v\n", pod, attempt, err)
			return
		}
		select {
		case <-ctx.Done():
		case <-s.changed:
		case <-time.After(backoff.Step()):
		}
	}
}

// movedOn says run is past attempt n.
func movedOn(run *v1alpha1.TaskRun, n int32) bool {
	return run.Status.CustomImage == nil || run.Status.CustomImage.Attempt > n
}

// copyOnce opens the log once and copies it until it ends (nil) or breaks.
// last is the time of the last line printed; a stream opened again after
// a break skips the lines up to it, which were printed already.
func (f *follower) copyOnce(ctx context.Context, namespace, pod, prefix string, last *time.Time) error {
	var since *metav1.Time
	resumeAfter := *last
	if !resumeAfter.IsZero() {
		since = &metav1.Time{Time: resumeAfter}
	}
	rc, err := f.logs.Stream(ctx, namespace, pod, children.ContainerName, since)
	if err != nil {
		return err
	}
	defer rc.Close()
	r := bufio.NewReader(rc)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			stamp, text, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
			at, perr := time.Parse(time.RFC3339Nano, stamp)
			if perr != nil {
				text = strings.TrimSuffix(line, "\n") // not stamped: print it as it is
			}
			if perr != nil || resumeAfter.IsZero() || at.After(resumeAfter) {
				fmt.Fprintln(f.out, prefix+text)
			}
			if perr == nil && at.After(*last) {
				*last = at
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return fmt.Errorf("read the log of Pod %s: %w", pod, err)
		}
	}
}
