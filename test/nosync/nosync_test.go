// Package nosync_test runs the controller on a real API server that has the
// Task and TaskRun CRDs but no Synchronization CRD, as on a cluster without
// the Astronetes operator where the chart's minimal CRD was not installed.
// Who may do what is test/controller's business: here the manager runs as
// envtest's admin and the TaskRuns are admitted as the webhooks would
// (kit.Admitted: the Task's snapshot, spec.requester) for an admin bound to
// cluster-admin through an ordinary group.
package nosync_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/test/testutil"
)

var k8s client.Client

// adminGroup is bound to cluster-admin, as kubeadm's kubeadm:cluster-admins.
const adminGroup = "test:cluster-admins"

func TestMain(m *testing.M) {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(os.Getenv("TASKGATE_TEST_LOG") != "")))
	crds := filepath.Join(testutil.RepoRoot(), "config", "crd")
	opts := testutil.Options{CRDs: []string{filepath.Join(crds, "automation.astronetes.io_tasks.yaml"), filepath.Join(crds, "automation.astronetes.io_taskruns.yaml")}}
	os.Exit(testutil.RunSuite(m, opts, func(cp *testutil.ControlPlane) error {
		k8s = cp.Client
		if err := startManager(cp); err != nil {
			return err
		}
		return cp.BindClusterRole(context.Background(), "test-cluster-admins", "cluster-admin", testutil.GroupSubject(adminGroup))
	}))
}

// startManager runs the controller as envtest's admin, with the cache
// options of cmd/taskgate, which ask the API server which kinds it serves.
func startManager(cp *testutil.ControlPlane) error {
	httpClient, err := rest.HTTPClientFor(cp.Config)
	if err != nil {
		return err
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cp.Config, httpClient)
	if err != nil {
		return err
	}
	mgr, err := testutil.StartManager(cp.Config, ctrl.Options{Cache: cache.Options{ByObject: controller.CacheByObject(mapper)}},
		func(mgr ctrl.Manager) error {
			return controller.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: 2})
		})
	if err != nil {
		return err
	}
	cp.OnStop(func() {
		if err := mgr.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	})
	return nil
}

func TestWithoutSynchronizationCRD(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, config string
		plugin       v1alpha1.Plugin
		wantStatus   metav1.ConditionStatus
		wantReason   string
	}{
		{name: "sync", plugin: v1alpha1.PluginRunSync, wantStatus: metav1.ConditionFalse, wantReason: controller.ReasonSynchronizationNotServed,
			config: `{"template":{"spec":{"plugin":"kubernetes-to-kubernetes","config":{"sourceName":"a","destinationName":"b"}}}}`},
		{name: "patch", plugin: v1alpha1.PluginTransformation, wantStatus: metav1.ConditionTrue, wantReason: controller.ReasonPatched,
			config: `{"resources":[{"version":"v1","resource":"configmaps"}],"names":["cm"],"operations":[{"mergePatch":{"data":{"b":"2"}}}]}`},
	}
	if err := k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "default"}, Data: map[string]string{"a": "1"}}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := &v1alpha1.Task{ObjectMeta: metav1.ObjectMeta{Name: tt.name, Namespace: "default"}, Spec: v1alpha1.TaskSpec{PluginSpec: v1alpha1.PluginSpec{Plugin: tt.plugin}}}
			task.Spec.Config.Raw = []byte(tt.config)
			if err := k8s.Create(ctx, task); err != nil {
				t.Fatal(err)
			}
			run := kit.Admitted(task, tt.name+"-1", &v1alpha1.Requester{Username: "test-admin", Groups: []string{adminGroup}})
			if err := k8s.Create(ctx, run); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, "TaskRun "+run.Name+" finished", func() error {
				var got v1alpha1.TaskRun
				if err := k8s.Get(ctx, client.ObjectKeyFromObject(run), &got); err != nil {
					return err
				}
				c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionSucceeded)
				if c == nil || c.Status == metav1.ConditionUnknown {
					return fmt.Errorf("condition %s: %+v, want it True or False", v1alpha1.ConditionSucceeded, c)
				}
				if c.Status != tt.wantStatus || c.Reason != tt.wantReason {
					t.Fatalf("condition %s/%s (%s), want %s/%s", c.Status, c.Reason, c.Message, tt.wantStatus, tt.wantReason)
				}
				return nil
			})
		})
	}
}
