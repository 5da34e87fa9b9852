package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// requestLog records, in order, the requests a runner sends (method and
// path) and the checkpoints it asks for. At the first PATCH it also reads
// the Task from the API server, to record whether the claim was stored by
// then.
type requestLog struct {
	mu      sync.Mutex
	entries []string
	// claimAtFirstPatch is what the API server held when the first PATCH
	// went out: "claimed", "unclaimed", or an error.
	claimAtFirstPatch string
	readTask          func() (*v1alpha1.TaskRun, error)
}

func (l *requestLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, s)
}

func (l *requestLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.entries...)
}

// index is the position of the first entry with prefix, or -1.
func (l *requestLog) index(prefix string) int {
	for i, e := range l.list() {
		if strings.HasPrefix(e, prefix) {
			return i
		}
	}
	return -1
}

type recordingTransport struct {
	next http.RoundTripper
	log  *requestLog
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPatch && r.log.index("PATCH") < 0 {
		claim := "unclaimed"
		task, err := r.log.readTask()
		switch {
		case err != nil:
			claim = err.Error()
		case task.Status.Transformation != nil:
			claim = "claimed"
		}
		r.log.mu.Lock()
		r.log.claimAtFirstPatch = claim
		r.log.mu.Unlock()
	}
	r.log.add(req.Method + " " + req.URL.Path)
	return r.next.RoundTrip(req)
}

// recordingCheckpoint is the reconciler's own checkpointer (it writes the
// status to the API server), recording each save in the request log, and
// failing instead when err is set.
type recordingCheckpoint struct {
	inner checkpointer
	task  *v1alpha1.TaskRun
	log   *requestLog
	err   error
}

func (r *recordingCheckpoint) save(ctx context.Context) error {
	claimed := r.task.Status.Transformation != nil
	if r.err != nil {
		r.log.add(fmt.Sprintf("save claimed=%v failed", claimed))
		return r.err
	}
	err := r.inner.save(ctx)
	r.log.add(fmt.Sprintf("save claimed=%v err=%v", claimed, err))
	return err
}

// TestTransformationClaimBeforePatch: against a real API server, a
// transformation stores its claim (an empty status.transformation) before
// its first PATCH, so that a reconcile stopped mid-way (a crash) leaves a
// trace; it patches nothing when the claim cannot be stored, and nothing
// when it finds an earlier claim without a result (ReasonInterrupted).
func TestTransformationClaimBeforePatch(t *testing.T) {
	cp := controlPlane(t)
	ns := envNamespace(t, cp)
	for i := range 2 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("cm-%d", i), Labels: map[string]string{"claim": "test"},
			Finalizers: []string{"example.com/keep"}}} // a list for the patch to append to
		if err := cp.Client.Create(t.Context(), cm); err != nil {
			t.Fatal(err)
		}
	}
	config := `{"resources":[{"version":"v1","resource":"configmaps","scope":"Namespaced"}],` +
		`"labelSelector":{"matchLabels":{"claim":"test"}},` +
		`"operations":[{"jsonPatch":[{"op":"add","path":"/metadata/finalizers/-","value":"example.com/claim-test"}]}]}`
	tests := []struct {
		name        string
		earlier     *v1alpha1.TransformationStatus // a claim stored by an earlier reconcile
		saveErr     error
		wantErr     bool
		wantReason  string
		wantPatches int
	}{
		{name: "claim stored, then patched", wantReason: ReasonPatched, wantPatches: 2},
		{name: "claim not stored: nothing patched", saveErr: errors.New("etcd unavailable"), wantErr: true},
		{name: "earlier claim without result: interrupted, nothing patched", earlier: &v1alpha1.TransformationStatus{},
			wantReason: ReasonInterrupted},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			task := newEnvRun(t, cp.Client, ns, fmt.Sprintf("claim-%d", i), v1alpha1.PluginTransformation, config)
			if tt.earlier != nil {
				task.Status.Transformation = tt.earlier
				if err := cp.Client.Status().Update(ctx, task); err != nil {
					t.Fatal(err)
				}
			}
			log := &requestLog{readTask: func() (*v1alpha1.TaskRun, error) {
				got := &v1alpha1.TaskRun{}
				return got, cp.Client.Get(context.Background(), client.ObjectKeyFromObject(task), got)
			}}
			cfg := rest.CopyConfig(cp.Config)
			cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &recordingTransport{next: rt, log: log} })
			d := envDeps(t, cfg, nil)
			r := &TaskRunReconciler{deps: d}
			run := &transformationRunner{deps: d, discovery: discoveryFor(t, cp.Config), maxObjects: 10}
			cp := &recordingCheckpoint{inner: &attempt{r: r, run: task, saved: task.Status.DeepCopy()}, task: task, log: log, err: tt.saveErr}

			_, err := run.run(ctx, task, cp)
			if (err != nil) != tt.wantErr {
				t.Fatalf("run() error = %v, want error: %v", err, tt.wantErr)
			}
			entries := log.list()
			patches := 0
			for _, e := range entries {
				if strings.HasPrefix(e, "PATCH") {
					patches++
				}
			}
			if patches != tt.wantPatches {
				t.Fatalf("%d PATCH requests, want %d; requests in order:\n%s", patches, tt.wantPatches, strings.Join(entries, "\n"))
			}
			if tt.wantPatches > 0 {
				claim, patch := log.index("save claimed=true err=<nil>"), log.index("PATCH")
				if claim < 0 || claim > patch {
					t.Errorf("the claim was not saved before the first PATCH; requests in order:\n%s", strings.Join(entries, "\n"))
				}
				if log.claimAtFirstPatch != "claimed" {
					t.Errorf("when the first PATCH went out the API server held the Task %s, want its claim (status.transformation) stored",
						log.claimAtFirstPatch)
				}
			}
			if tt.wantReason != "" {
				if c := task.Status.Conditions; len(c) == 0 || c[0].Reason != tt.wantReason {
					t.Errorf("conditions %s, want reason %s", conditionsText(c), tt.wantReason)
				}
			}
		})
	}
}
