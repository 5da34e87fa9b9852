package controller

import (
	"sync"
	"time"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// slotRetry is how soon a transformation waiting for its requester's slot
// looks again.
const slotRetry = 2 * time.Second

// requesterSlots lets each requester run one transformation at a time in
// this process: the fair share between requesters. acquire never blocks, so
// a waiting run gives its worker back at once.
type requesterSlots struct {
	mu      sync.Mutex
	holders map[string]string // requester -> the run holding its slot
}

func newRequesterSlots() *requesterSlots {
	return &requesterSlots{holders: map[string]string{}}
}

// acquire takes who's slot for run. It returns false, and the run holding
// the slot, when another run of who holds it. A nil requesterSlots shares
// nothing out: every run gets its slot.
func (s *requesterSlots) acquire(who, run string) (holder string, ok bool) {
	if s == nil {
		return run, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, busy := s.holders[who]; busy && h != run {
		return h, false
	}
	s.holders[who] = run
	return run, true
}

// release frees who's slot.
func (s *requesterSlots) release(who string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.holders, who)
}

// requesterKey is whom a run's fair share is counted for: its requester's
// username (every identity of one person shares one slot), or, for a run
// without one (--act-as=controller with an old run), its namespace.
func requesterKey(run *v1alpha1.TaskRun) string {
	if r := run.Spec.Requester; r != nil && r.Username != "" {
		return r.Username
	}
	return "namespace " + run.Namespace
}
