package controller

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

func TestRequesterSlots(t *testing.T) {
	s := newRequesterSlots()
	steps := []struct {
		who, run   string
		release    bool
		wantOK     bool
		wantHolder string
	}{
		{who: "alice", run: "ns/a1", wantOK: true, wantHolder: "ns/a1"},
		{who: "alice", run: "ns/a2", wantOK: false, wantHolder: "ns/a1"},
		{who: "bob", run: "ns/b1", wantOK: true, wantHolder: "ns/b1"},   // another requester is never held up
		{who: "alice", run: "ns/a1", wantOK: true, wantHolder: "ns/a1"}, // the holder reconciled again
		{who: "alice", release: true},
		{who: "alice", run: "ns/a2", wantOK: true, wantHolder: "ns/a2"},
	}
	for i, st := range steps {
		if st.release {
			s.release(st.who)
			continue
		}
		holder, ok := s.acquire(st.who, st.run)
		if ok != st.wantOK || holder != st.wantHolder {
			t.Errorf("step %d: acquire(%s, %s) = %s, %v; want %s, %v", i, st.who, st.run, holder, ok, st.wantHolder, st.wantOK)
		}
	}
	var off *requesterSlots
	if _, ok := off.acquire("alice", "x"); !ok {
		t.Error("a nil requesterSlots must let every run through")
	}
}

// A requester's second transformation waits, Pending and unclaimed, giving
// its worker back, while the first patches.
func TestTransformationWaitsForItsRequestersSlot(t *testing.T) {
	slots := newRequesterSlots()
	slots.acquire("alice", "ns/first")
	r := &transformationRunner{slots: slots}
	run := &v1alpha1.TaskRun{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "second"},
		Spec: v1alpha1.TaskRunSpec{Requester: &v1alpha1.Requester{Username: "alice"},
			TaskSpec: &v1alpha1.PluginSpec{Plugin: v1alpha1.PluginTransformation, Config: runtime.RawExtension{
				Raw: []byte(`{"resources":[{"version":"v1","resource":"configmaps"}],"operations":[{"mergePatch":{"metadata":{"labels":{"a":"b"}}}}]}`)}}}}
	after, err := r.run(t.Context(), run, &noCheckpoint{})
	if err != nil || after != slotRetry {
		t.Fatalf("run() = %v, %v; want a requeue after %v", after, err, slotRetry)
	}
	phase, msg := taskPhase(run.Status.Conditions)
	if phase != v1alpha1.TaskPending || !strings.Contains(msg, "ns/first") || run.Status.Transformation != nil {
		t.Fatalf("phase %s, message %q, claim %v; want Pending naming ns/first, unclaimed", phase, msg, run.Status.Transformation)
	}
}
