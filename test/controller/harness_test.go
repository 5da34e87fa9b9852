package controller_test

import (
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/testutil"
)

// testLogger logs to w, or nowhere unless verbose.
func testLogger(w io.Writer, verbose bool) logr.Logger {
	if !verbose {
		w = io.Discard
	}
	return zap.New(zap.WriteTo(w), zap.UseDevMode(true))
}

// newNamespace creates a namespace of the test's own. envtest has no
// namespace controller, so it is not deleted afterwards.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "tg-"}}
	if err := k8sClient.Create(t.Context(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

// parallelWithManager starts most tests here: in parallel with the others,
// in a namespace of the test's own, with a manager watching only it.
func parallelWithManager(t *testing.T) (ns string) {
	t.Helper()
	t.Parallel()
	ns = newNamespace(t)
	startManager(t, ns)
	return ns
}

// managerOptions vary a test's manager: its identity (managerCfg unless
// set) and the controller's options (two workers per plugin unless set).
type managerOptions struct {
	config     *rest.Config
	controller controller.Options
}

// startManager runs a manager with taskgate's controllers as managerUser in
// --act-as=requester mode, watching only ns so that tests in parallel do not
// reconcile each other's runs. The returned function stops it and waits
// until it has stopped; it also runs at the end of the test. The manager's
// logs are printed if the test fails.
func startManager(t *testing.T, ns string) (stop func()) {
	t.Helper()
	return startManagerWith(t, ns, managerOptions{})
}

// startManagerWith is startManager with opts.
func startManagerWith(t *testing.T, ns string, opts managerOptions) (stop func()) {
	t.Helper()
	if opts.config == nil {
		opts.config = managerCfg
	}
	if opts.controller.MaxConcurrentReconciles == 0 {
		opts.controller.MaxConcurrentReconciles = 2
	}
	logs := &testutil.SyncBuffer{}
	var w io.Writer = logs
	if os.Getenv("TASKGATE_TEST_LOG") != "" {
		w = io.MultiWriter(logs, os.Stderr)
	}
	mgr, err := testutil.StartManager(opts.config, ctrl.Options{
		Scheme: scheme,
		Logger: testLogger(w, true).WithValues("test", t.Name()),
		Cache:  controller.CacheOptions(nil, ns),
		// Tests start several managers in one process, each with the same "task-<plugin>" controllers.
		Controller:              config.Controller{SkipNameValidation: ptr.To(true)},
		GracefulShutdownTimeout: ptr.To(10 * time.Second),
	}, func(mgr ctrl.Manager) error { return controller.SetupWithManager(mgr, opts.controller) })
	if err != nil {
		t.Fatalf("start manager: %v", err)
	}
	stop = func() {
		if err := mgr.Stop(); err != nil {
			t.Errorf("manager stopped with error: %v", err)
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("logs of the manager:\n%s", logs.String())
		}
	})
	return stop
}

// get reads obj by key from the API server.
func get(t *testing.T, key client.ObjectKey, obj client.Object) error {
	return k8sClient.Get(t.Context(), key, obj)
}

// mustGet reads obj or fails the test.
func mustGet(t *testing.T, ns, name string, obj client.Object) {
	t.Helper()
	if err := get(t, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatalf("get %T %s/%s: %v", obj, ns, name, err)
	}
}

// mustCreate creates obj or fails the test.
func mustCreate(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8sClient.Create(t.Context(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// errNotYet says what a poll is still waiting for.
func errNotYet(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}

// runSA is the name of the ServiceAccount taskgate creates for the TaskRun
// ns/name, which holds part of the run's UID.
func runSA(t *testing.T, ns, name string) string {
	t.Helper()
	run := &v1alpha1.TaskRun{}
	mustGet(t, ns, name, run)
	return v1alpha1.ServiceAccountName(run.Name, run.UID)
}
