// Package controller_test runs taskgate's controllers (TaskRuns, Tasks)
// against a real kube-apiserver and etcd (envtest), in-process, with the
// CRDs from config/crd.
//
// The controller runs as a user outside system:masters with exactly the
// chart's rules (rbac_test.go), so child writes go through constrained
// impersonation for real. The webhook does not run in this package: tests
// set what it sets on a TaskRun themselves (spec.requester, and for a run of
// a Task spec.taskSpec, the task label and the Task as owner; see runOf).
//
// envtest has no kubelet, no scheduler, no garbage collector and no Job or
// namespace controller. Tests that need a Pod to run or finish set its status
// as a kubelet would (see setPodStatus); nothing relies on owner references
// being collected.
package controller_test

import (
	"os"
	"testing"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/astronetes/taskgate/test/testutil"
)

// The one control plane of this package, shared by every test; each test
// works in its own namespace with its own manager.
var (
	cp        *testutil.ControlPlane
	k8sClient client.Client // system:masters: the tests' own client
	// managerCfg is the manager's identity in --act-as=requester mode,
	// controllerModeCfg in --act-as=controller mode.
	managerCfg, controllerModeCfg *rest.Config
	scheme                        = testutil.Scheme()
)

// TestMain starts the control plane, runs the tests and stops the control
// plane, whatever happened: m.Run returning, a panic in this goroutine,
// Ctrl-C, or the test binary's -timeout about to fire (testutil.RunSuite).
func TestMain(m *testing.M) {
	// Managers log through their own per-test loggers; this silences the
	// "log.SetLogger(...) was never called" warning of anything else.
	log.SetLogger(testLogger(os.Stderr, os.Getenv("TASKGATE_TEST_LOG") != ""))
	ctrl.SetLogger(log.Log)
	os.Exit(testutil.RunSuite(m, testutil.Options{}, func(c *testutil.ControlPlane) (err error) {
		cp, k8sClient = c, c.Client
		managerCfg, controllerModeCfg, err = setUpIdentities(cp)
		return err
	}))
}
