package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// logGrace is how long the log of a run that ended may take to drain
// before the command stops waiting for it.
const logGrace = 10 * time.Second

// errRunDeleted ends following a TaskRun that was deleted before it ended.
var errRunDeleted = errors.New("deleted before it finished")

// follower follows one TaskRun to its end.
type follower struct {
	c      client.WithWatch
	logs   logSource
	out    *lockedWriter
	stderr io.Writer
}

// exitStatus follows run and returns the exit status its end calls for.
func (f *follower) exitStatus(ctx context.Context, run *v1alpha1.TaskRun) int {
	phase, err := f.follow(ctx, run)
	ref := fmt.Sprintf("TaskRun %s/%s", run.Namespace, run.Name)
	switch {
	case ctx.Err() != nil:
		fmt.Fprintf(f.stderr, "taskgate run: interrupted: stopped following; %s keeps running (kubectl get taskrun -n %s %s)\n", ref, run.Namespace, run.Name)
		return exitInterrupted
	case errors.Is(err, errRunDeleted):
		fmt.Fprintf(f.stderr, "taskgate run: %s was %v\n", ref, err)
		return exitFailed
	case err != nil:
		fmt.Fprintf(f.stderr, "taskgate run: follow %s: %v; it keeps running\n", ref, err)
		return exitFailed
	case phase == v1alpha1.TaskSucceeded:
		return exitSucceeded
	}
	return exitFailed
}

// follow prints each phase change of run, streams its Pods' logs, and
// returns the phase it ended in. It watches the TaskRun through an
// informer, which lists again after a watch error (UntilWithSync), so a
// dropped connection or an expired resourceVersion loses no end.
func (f *follower) follow(ctx context.Context, run *v1alpha1.TaskRun) (v1alpha1.TaskPhase, error) {
	lw := f.listWatch(run.Namespace, run.Name)
	// One list first: a user who may not list or watch TaskRuns hears it
	// at once, not through the informer's endless retries.
	if _, err := lw.ListWithContext(ctx, metav1.ListOptions{}); err != nil {
		return "", err
	}
	state := newRunState()
	logCtx, stopLogs := context.WithCancel(ctx)
	defer stopLogs()
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		f.streamLogs(logCtx, state)
	}()
	var printed string
	var last *v1alpha1.TaskRun
	_, err := watchtools.UntilWithSync(ctx, lw, &v1alpha1.TaskRun{}, nil, func(ev watch.Event) (bool, error) {
		if ev.Type == watch.Deleted {
			return true, errRunDeleted
		}
		r, ok := ev.Object.(*v1alpha1.TaskRun)
		if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified) {
			return false, nil
		}
		if line := phaseLine(r); line != printed {
			fmt.Fprintln(f.out, line)
			printed = line
		}
		last = r
		done := finished(r.Status.Phase)
		state.set(r, done)
		return done, nil
	})
	state.end()
	select {
	case <-logsDone:
	case <-time.After(logGrace):
		fmt.Fprintf(f.stderr, "taskgate run: the Pod's log did not end %v after the run did; it may be cut short\n", logGrace)
		stopLogs()
		<-logsDone
	}
	if err != nil || ctx.Err() != nil {
		return "", err
	}
	return last.Status.Phase, nil
}

// listWatch lists and watches the one TaskRun namespace/name.
func (f *follower) listWatch(namespace, name string) *cache.ListWatch {
	only := fields.OneTermEqualSelector("metadata.name", name)
	opts := func(raw metav1.ListOptions) *client.ListOptions {
		raw.FieldSelector = only.String()
		return &client.ListOptions{Namespace: namespace, FieldSelector: only, Limit: raw.Limit, Continue: raw.Continue, Raw: &raw}
	}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, raw metav1.ListOptions) (runtime.Object, error) {
			list := &v1alpha1.TaskRunList{}
			if err := f.c.List(ctx, list, opts(raw)); err != nil {
				return nil, fmt.Errorf("list TaskRun %s/%s: %w", namespace, name, err)
			}
			return list, nil
		},
		WatchFuncWithContext: func(ctx context.Context, raw metav1.ListOptions) (watch.Interface, error) {
			w, err := f.c.Watch(ctx, &v1alpha1.TaskRunList{}, opts(raw))
			if err != nil {
				return nil, fmt.Errorf("watch TaskRun %s/%s: %w", namespace, name, err)
			}
			return w, nil
		},
	}
}

// phaseLine is what follow prints for run's state: its phase and message.
// A run the controller has not written yet is Pending.
func phaseLine(run *v1alpha1.TaskRun) string {
	phase, msg := run.Status.Phase, run.Status.Message
	if phase == "" {
		phase, msg = v1alpha1.TaskPending, "waiting for the taskgate controller"
	}
	line := fmt.Sprintf("TaskRun %s: %s", run.Name, phase)
	if msg != "" {
		line += ": " + msg
	}
	return line
}

func finished(p v1alpha1.TaskPhase) bool {
	return p == v1alpha1.TaskSucceeded || p == v1alpha1.TaskFailed
}

// runState is the latest state of the followed TaskRun, shared with the
// log streamer, which waits on changed for the next one.
type runState struct {
	mu      sync.Mutex
	run     *v1alpha1.TaskRun
	ended   bool
	changed chan struct{} // closed (and replaced) on every change
}

func newRunState() *runState { return &runState{changed: make(chan struct{})} }

func (s *runState) set(run *v1alpha1.TaskRun, ended bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.run, s.ended = run, s.ended || ended
	close(s.changed)
	s.changed = make(chan struct{})
}

// end says no state will follow (the run ended, or following stopped).
func (s *runState) end() { s.set(s.get().run, true) }

// snapshot is one reading of a runState.
type snapshot struct {
	run     *v1alpha1.TaskRun // nil before the first event
	ended   bool
	changed <-chan struct{}
}

func (s *runState) get() snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return snapshot{run: s.run, ended: s.ended, changed: s.changed}
}

// lockedWriter serialises writes, so a phase line never lands inside a
// log line.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
