package helm_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// One control plane for the package, started by the first test that needs
// it and stopped by TestMain, also when tests fail.
var (
	envOnce    sync.Once
	env        *envtest.Environment
	envClient  client.Client
	kubeconfig string
	envErr     error
)

// cluster returns a client and an admin kubeconfig file for the package's
// kube-apiserver. The API server has no nodes: Pods never start.
func cluster(t *testing.T) (client.Client, string) {
	t.Helper()
	requireAssets(t, "etcd", "kube-apiserver", "kubectl", "helm")
	envOnce.Do(startEnv)
	if envErr != nil {
		t.Fatalf("control plane: %v", envErr)
	}
	return envClient, kubeconfig
}

func startEnv() {
	// A generous start timeout: a loaded CI machine starts kube-apiserver slowly.
	env = &envtest.Environment{BinaryAssetsDirectory: assetsDir(), ControlPlaneStartTimeout: 90 * time.Second}
	cfg, err := env.Start()
	if err != nil {
		envErr = err
		return
	}
	scheme := runtime.NewScheme()
	if envErr = clientgoscheme.AddToScheme(scheme); envErr != nil {
		return
	}
	if envErr = v1alpha1.AddToScheme(scheme); envErr != nil {
		return
	}
	if envErr = apiextensionsv1.AddToScheme(scheme); envErr != nil {
		return
	}
	if envClient, envErr = client.New(cfg, client.Options{Scheme: scheme}); envErr != nil {
		return
	}
	dir, err := os.MkdirTemp("", "taskgate-helm-test-")
	if err != nil {
		envErr = err
		return
	}
	kubeconfig = filepath.Join(dir, "kubeconfig")
	envErr = os.WriteFile(kubeconfig, env.KubeConfig, 0o600)
}

// stopEnv stops etcd and kube-apiserver if a test started them.
func stopEnv() {
	if env != nil {
		_ = env.Stop()
	}
	if kubeconfig != "" {
		_ = os.RemoveAll(filepath.Dir(kubeconfig))
	}
}
