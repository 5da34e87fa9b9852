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
// mark does not. A Task started by an earlier process or another replica has
// no mark and falls back to the whole-second timestamps.
type startMarks struct {
	mu    sync.Mutex
	marks map[types.NamespacedName]startMark
}

type startMark struct {
	uid types.UID // a Task re-created under the same name is another Task
	at  time.Time
}

// start records now as task's start unless it already has a mark: a
// reconcile that sets startTime again because its first write was lost
// keeps the first mark.
func (s *startMarks) start(task *v1alpha1.Task, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := types.NamespacedName{Namespace: task.Namespace, Name: task.Name}
	if m, ok := s.marks[key]; ok && m.uid == task.UID {
		return
	}
	if s.marks == nil {
		s.marks = map[types.NamespacedName]startMark{}
	}
	s.marks[key] = startMark{uid: task.UID, at: now}
}

// take returns and forgets task's mark.
func (s *startMarks) take(task *v1alpha1.Task) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := types.NamespacedName{Namespace: task.Namespace, Name: task.Name}
	m, ok := s.marks[key]
	delete(s.marks, key)
	return m.at, ok && m.uid == task.UID
}

// forget drops the mark of a Task that is gone or being deleted, so that
// Tasks that never finish do not hold memory.
func (s *startMarks) forget(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.marks, key)
}

// runDuration is how long a Task that just finished took: from this
// process's mark to now where it started the Task, else from status.startTime
// to status.completionTime (whole seconds).
func (r *TaskReconciler) runDuration(task *v1alpha1.Task) (time.Duration, bool) {
	if at, ok := r.starts.take(task); ok {
		return r.clock.Since(at), true
	}
	start, end := task.Status.StartTime, task.Status.CompletionTime
	if start == nil || end == nil {
		return 0, false
	}
	return end.Sub(start.Time), true
}
