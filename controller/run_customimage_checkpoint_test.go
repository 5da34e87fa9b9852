package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// bindingTransport records the requests a runner sends and, at the first
// POST of a ClusterRoleBinding, what the API server held then: the run's
// recorded ServiceAccount UID and the ServiceAccount's own.
type bindingTransport struct {
	next http.RoundTripper
	log  *requestLog
	// atBinding reports the stored run's serviceAccountUID and the live
	// ServiceAccount's UID at the binding's create.
	atBinding func() (recorded, live string)
	seen      *[2]string
}

func (b *bindingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/clusterrolebindings") && b.log.index("POST crb") < 0 {
		recorded, live := b.atBinding()
		*b.seen = [2]string{recorded, live}
		b.log.add("POST crb")
	}
	b.log.add(req.Method + " " + req.URL.Path)
	return b.next.RoundTrip(req)
}

// TestServiceAccountRecordedBeforeBinding: against a real API server, the
// UID of the ServiceAccount taskgate created for a run is stored in the
// run's status (status.customImage.serviceAccountUID) before anything is
// bound to it, so a ServiceAccount replaced later is never taken for the
// run's; when the UID cannot be stored, no binding is made.
func TestServiceAccountRecordedBeforeBinding(t *testing.T) {
	cp := controlPlane(t)
	ns := envNamespace(t, cp)
	config := `{"image":"busybox:1.36","command":["true"],"clusterRole":"view"}`
	tests := []struct {
		name        string
		saveErr     error
		wantBinding bool
	}{
		{name: "recorded, then bound", wantBinding: true},
		{name: "not recorded: nothing bound", saveErr: errors.New("etcd unavailable")},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			run := newEnvRun(t, cp.Client, ns, fmt.Sprintf("sa-first-%d", i), v1alpha1.PluginCustomImage, config)
			log := &requestLog{}
			var seen [2]string
			atBinding := func() (string, string) {
				stored, sa := &v1alpha1.TaskRun{}, &corev1.ServiceAccount{}
				if err := cp.Client.Get(context.Background(), client.ObjectKeyFromObject(run), stored); err != nil {
					return "get taskrun: " + err.Error(), ""
				}
				recorded := ""
				if st := stored.Status.CustomImage; st != nil {
					recorded = string(st.ServiceAccountUID)
				}
				key := client.ObjectKey{Namespace: ns, Name: v1alpha1.ServiceAccountName(run.Name, run.UID)}
				if err := cp.Client.Get(context.Background(), key, sa); err != nil {
					return recorded, "get service account: " + err.Error()
				}
				return recorded, string(sa.UID)
			}
			cfg := rest.CopyConfig(cp.Config)
			cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
				return &bindingTransport{next: rt, log: log, atBinding: atBinding, seen: &seen}
			})
			d := envDeps(t, cfg, nil)
			r := &TaskRunReconciler{deps: d}
			ci := &customImageRunner{deps: d}
			saves := &recordingCheckpoint{inner: &attempt{r: r, run: run, saved: run.Status.DeepCopy()}, task: run, log: log, err: tt.saveErr}
			if run.Status.StartTime == nil {
				setProgress(run, ReasonPending, "starting")
			}

			_, err := ci.run(ctx, run, saves)
			crb := &rbacv1.ClusterRoleBinding{}
			getErr := cp.Client.Get(ctx, client.ObjectKey{Name: v1alpha1.ClusterRoleBindingName(ns, run.Name)}, crb)
			if !tt.wantBinding {
				if err == nil || !apierrors.IsNotFound(getErr) || log.index("POST crb") >= 0 {
					t.Fatalf("run() = %v, binding get = %v; want an error and no binding created when the UID cannot be stored; requests:\n%s",
						err, getErr, strings.Join(log.list(), "\n"))
				}
				return
			}
			if err != nil || getErr != nil {
				t.Fatalf("run() = %v, binding get = %v; want the binding", err, getErr)
			}
			if seen[0] == "" || seen[0] != seen[1] {
				t.Fatalf("at the binding's create the API server held serviceAccountUID %q for the run and the ServiceAccount's UID is %q; "+
					"want the ServiceAccount's UID recorded first; requests:\n%s", seen[0], seen[1], strings.Join(log.list(), "\n"))
			}
		})
	}
}
