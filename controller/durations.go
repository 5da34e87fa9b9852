package controller

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// startMarks remember when this process started carrying out each Task, on
// its own clock (time.Now's monotonic reading). status.startTime and
// completionTime are stored in whole seconds, so a duration computed from
// them turns a 300 ms transformation into 0 s or 1 s; one measured from the
// mark does not. A run started by an earlier process or another replica has
// no mark and falls back to the whole-second timestamps.
type startMarks struct {
	mu    sync.Mutex
	marks map[types.NamespacedName]startMark
}

type startMark struct {
	uid types.UID // a run re-created under the same name is another Task
	at  time.Time
}

// start records now as run's start unless it already has a mark: a
// reconcile that sets startTime again because its first write was lost
// keeps the first mark.
func (s *startMarks) start(run *v1alpha1.TaskRun, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := types.NamespacedName{Namespace: run.Namespace, Name: run.Name}
	if m, ok := s.marks[key]; ok && m.uid == run.UID {
		return
	}
	if s.marks == nil {
		s.marks = map[types.NamespacedName]startMark{}
	}
	s.marks[key] = startMark{uid: run.UID, at: now}
}

// take returns and forgets run's mark.
func (s *startMarks) take(run *v1alpha1.TaskRun) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := types.NamespacedName{Namespace: run.Namespace, Name: run.Name}
	m, ok := s.marks[key]
	delete(s.marks, key)
	return m.at, ok && m.uid == run.UID
}

// forget drops the mark of a run that is gone or being deleted, so that
// runs that never finish do not hold memory.
func (s *startMarks) forget(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.marks, key)
}

// runDuration is how long a run that just finished took: from this
// process's mark to now where it started the run, else from status.startTime
// to status.completionTime (whole seconds).
func (r *TaskRunReconciler) runDuration(run *v1alpha1.TaskRun) (time.Duration, bool) {
	if at, ok := r.starts.take(run); ok {
		return r.clock.Since(at), true
	}
	start, end := run.Status.StartTime, run.Status.CompletionTime
	if start == nil || end == nil {
		return 0, false
	}
	return end.Sub(start.Time), true
}
