package helm_test

import (
	"sync"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/test/testutil"
)

// One control plane for the package, without CRDs (the chart installs
// them), started by the first test that needs it and stopped by TestMain,
// also when tests fail, and on a signal or near the test timeout
// (testutil.StartControlPlane).
var (
	envOnce sync.Once
	env     *testutil.ControlPlane
	envErr  error
)

// cluster returns a client and an admin kubeconfig file for the package's
// kube-apiserver. The API server has no nodes: Pods never start.
func cluster(t *testing.T) (client.Client, string) {
	t.Helper()
	requireAssets(t, "etcd", "kube-apiserver", "kubectl", "helm")
	envOnce.Do(func() { env, envErr = testutil.StartControlPlane(testutil.Options{NoCRDs: true}) })
	if envErr != nil {
		t.Fatalf("control plane: %v", envErr)
	}
	return env.Client, env.Kubeconfig
}

// stopEnv stops etcd and kube-apiserver if a test started them.
func stopEnv() {
	if env != nil {
		_ = env.Stop()
	}
}
