// Package nosync_test runs the controller on a real API server that has the
// Task CRD but no Synchronization CRD, as on a cluster without the Astronetes
// operator where the chart's minimal CRD was not installed. Who may do what
// is test/controller's business: here the manager runs as envtest's admin
// and the Tasks are requested (spec.requester set as the webhook would) by an
// admin bound to cluster-admin through an ordinary group.
package nosync_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
)

var k8s client.Client

// adminGroup is bound to cluster-admin, as kubeadm's kubeadm:cluster-admins.
const adminGroup = "test:cluster-admins"

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(os.Getenv("TASKGATE_TEST_LOG") != "")))
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		home, _ := os.UserHomeDir()
		_ = os.Setenv("KUBEBUILDER_ASSETS", filepath.Join(home, ".cache", "taskgate", "envtest-v1.37.2"))
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "automation.astronetes.io_tasks.yaml")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start control plane:", err)
		return 1
	}
	defer env.Stop() //nolint:errcheck // best effort at the end of the run

	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   cache.Options{ByObject: controller.CacheByObject(mapper)},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	if err := controller.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: 2}); err != nil {
		fmt.Fprintln(os.Stderr, "controller:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager stopped:", err)
		}
	}()
	defer func() { cancel(); <-done }()
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	admins := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "test-cluster-admins"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: adminGroup}}}
	if err := k8s.Create(ctx, admins); err != nil {
		fmt.Fprintln(os.Stderr, "bind the admin group:", err)
		return 1
	}
	return m.Run()
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
			task := &v1alpha1.Task{ObjectMeta: metav1.ObjectMeta{Name: tt.name, Namespace: "default"}, Spec: v1alpha1.TaskSpec{Plugin: tt.plugin,
				Requester: &v1alpha1.Requester{Username: "test-admin", Groups: []string{adminGroup}}}}
			task.Spec.Config.Raw = []byte(tt.config)
			if err := k8s.Create(ctx, task); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				var got v1alpha1.Task
				if err := k8s.Get(ctx, types.NamespacedName{Namespace: "default", Name: tt.name}, &got); err != nil {
					t.Fatal(err)
				}
				c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionSucceeded)
				if c != nil && c.Status != metav1.ConditionUnknown {
					if c.Status != tt.wantStatus || c.Reason != tt.wantReason {
						t.Fatalf("condition %s/%s (%s), want %s/%s", c.Status, c.Reason, c.Message, tt.wantStatus, tt.wantReason)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("Task not finished: %+v", got.Status)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
