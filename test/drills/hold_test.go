package drills_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

// holdLabel marks the objects a holdHook may hold: the ConfigMaps a
// transformation patches, and TaskRuns whose status write is to be held.
const holdLabel = "drills.taskgate.test/hold"

// holdHook is a validating admission webhook of the drill's own, on the
// drills' webhook server, that holds chosen requests in flight until the
// drill releases them, so that a kill lands at a known point:
//
//   - an UPDATE (a PATCH) of a held ConfigMap: a transformation's patch;
//   - the UPDATE of a held TaskRun's status that records a child (a Pod or a
//     Synchronization): the run is then between creating its child and
//     writing its status.
//
// It counts every request it sees per object (dry runs apart), so a drill
// can tell how often a patch was sent.
type holdHook struct {
	mu    sync.Mutex
	holds map[string]*hold // by holdKey
	dry   atomic.Int64     // dry-run requests, for the probe
}

// hold is one object whose requests are held.
type hold struct {
	seen    chan struct{} // closed when the first request is being held
	release chan struct{} // closed to let it through
	once    sync.Once
	calls   atomic.Int64 // requests seen for the object, dry runs apart
	since   atomic.Int64 // when the first request was held, Unix nanoseconds
	// records, for a TaskRun's status, says which status write to hold:
	// the first that records what it names (recordsChild by default).
	records func(*v1alpha1.TaskRun) bool
}

// heldAt is when the first request was held (zero before).
func (hd *hold) heldAt() time.Time {
	if n := hd.since.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

func holdKey(resource, ns, name string) string { return resource + " " + ns + "/" + name }

var hookSeq atomic.Int64

// newHoldHook registers the hook at a path of its own and a
// ValidatingWebhookConfiguration sending it ConfigMap updates and TaskRun
// status updates of ns that carry holdLabel. It waits until the API server
// sends the hook requests (a dry-run probe reaches it), and removes the
// configuration, releasing whatever is held, when the test ends.
func newHoldHook(t *testing.T, ns string, probe client.Object) *holdHook {
	t.Helper()
	h := &holdHook{holds: map[string]*hold{}}
	path := fmt.Sprintf("/drill-hold-%d", hookSeq.Add(1))
	whServer.Register(path, &admission.Webhook{Handler: admission.HandlerFunc(h.handle)})
	sel := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: holdLabel, Operator: metav1.LabelSelectorOpExists}}}
	nsSel := &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}
	hook := func(name string, rule admissionregv1.Rule) admissionregv1.ValidatingWebhook {
		return admissionregv1.ValidatingWebhook{
			Name:                    name,
			ClientConfig:            admissionregv1.WebhookClientConfig{URL: ptr.To(whURL + path), CABundle: caNow.PEM},
			Rules:                   []admissionregv1.RuleWithOperations{{Operations: []admissionregv1.OperationType{admissionregv1.Update}, Rule: rule}},
			FailurePolicy:           ptr.To(admissionregv1.Fail),
			NamespaceSelector:       nsSel,
			ObjectSelector:          sel,
			SideEffects:             ptr.To(admissionregv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To[int32](30),
			AdmissionReviewVersions: []string{"v1"},
		}
	}
	cfg := &admissionregv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "drill-hold-" + ns},
		Webhooks: []admissionregv1.ValidatingWebhook{
			hook("configmaps.hold.drills.taskgate.test", admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}}),
			hook("taskrunstatus.hold.drills.taskgate.test", admissionregv1.Rule{APIGroups: []string{v1alpha1.GroupVersion.Group},
				APIVersions: []string{v1alpha1.GroupVersion.Version}, Resources: []string{"taskruns/status"}}),
		},
	}
	if err := cp.Client.Create(t.Context(), cfg); err != nil {
		t.Fatalf("create the hold webhook: %v", err)
	}
	t.Cleanup(func() {
		h.releaseAll()
		if err := cp.Client.Delete(context.Background(), cfg); err != nil {
			t.Errorf("delete the hold webhook: %v", err)
		}
	})
	// The API server picks the configuration up through an informer: wait
	// until a dry-run update of probe (labelled holdLabel) reaches the hook.
	testutil.EventuallyEvery(t, 30*time.Second, 50*time.Millisecond, "the API server to call the hold webhook", func() error {
		err := cp.Client.Patch(t.Context(), probe, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"annotations":{"probe":"x"}}}`)),
			client.DryRunAll)
		if err != nil {
			return err
		}
		if h.dry.Load() == 0 {
			return fmt.Errorf("a dry-run update of %s did not reach the hook", probe.GetName())
		}
		return nil
	})
	return h
}

// expect makes the hook hold the first qualifying request for the object.
func (h *holdHook) expect(resource, ns, name string) *hold {
	return h.expectStatus(resource, ns, name, recordsChild)
}

// expectStatus is expect, holding the first status write of a TaskRun that
// records says qualifies.
func (h *holdHook) expectStatus(resource, ns, name string, records func(*v1alpha1.TaskRun) bool) *hold {
	h.mu.Lock()
	defer h.mu.Unlock()
	hd := &hold{seen: make(chan struct{}), release: make(chan struct{}), records: records}
	h.holds[holdKey(resource, ns, name)] = hd
	return hd
}

// Release lets the held request, and any later one, through.
func (hd *hold) Release() { hd.once.Do(func() { close(hd.release) }) }

// Held reports whether a request is being held (or was).
func (hd *hold) Held() bool { return testutil.Closed(hd.seen) }

func (h *holdHook) releaseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, hd := range h.holds {
		hd.Release()
	}
}

func (h *holdHook) handle(ctx context.Context, req admission.Request) admission.Response {
	if req.DryRun != nil && *req.DryRun {
		h.dry.Add(1)
		return admission.Allowed("")
	}
	resource := req.Resource.Resource
	if req.SubResource != "" {
		resource += "/" + req.SubResource
	}
	h.mu.Lock()
	hd := h.holds[holdKey(resource, req.Namespace, req.Name)]
	h.mu.Unlock()
	if hd == nil {
		return admission.Allowed("")
	}
	if resource == "taskruns/status" {
		task := &v1alpha1.TaskRun{}
		if err := json.Unmarshal(req.Object.Raw, task); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if !hd.records(task) {
			return admission.Allowed("") // a checkpoint before the child
		}
	}
	if hd.calls.Add(1) == 1 {
		hd.since.Store(time.Now().UnixNano())
		close(hd.seen)
	}
	select {
	case <-hd.release:
	case <-ctx.Done():
	}
	return admission.Allowed("")
}

// recordsBinding: the status names the run's ClusterRoleBinding (the
// checkpoint written after the binding is created, before the Pod).
func recordsBinding(task *v1alpha1.TaskRun) bool {
	ci := task.Status.CustomImage
	return ci != nil && ci.ClusterRoleBindingName != ""
}

// recordsChild: the status names the run's Pod or Synchronization.
func recordsChild(task *v1alpha1.TaskRun) bool {
	if ci := task.Status.CustomImage; ci != nil && ci.PodName != "" {
		return true
	}
	return task.Status.Synchronization != nil
}

// waitHeld waits until every hold holds its request.
func waitHeld(t *testing.T, timeout time.Duration, holds map[string]*hold) {
	t.Helper()
	testutil.EventuallyEvery(t, timeout, 20*time.Millisecond, "the held requests", func() error {
		for name, hd := range holds {
			if !hd.Held() {
				return fmt.Errorf("%s not held yet", name)
			}
		}
		return nil
	})
}
