// Package admission_test checks the admission webhooks through a real
// kube-apiserver and etcd (envtest): the API server calls the webhook server
// over TLS, and users act through kubectl or client-go as they would.
package admission_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/webhook"
)

// Shared by the tests of this package: one control plane, one webhook server.
var (
	testEnv    *envtest.Environment
	adminCfg   *rest.Config
	adminKube  string // kubeconfig file of a system:masters user
	kubectlBin string
	k8s        client.Client
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

// run starts the control plane and the webhooks, runs the tests and stops
// everything, also when a test fails or panics.
func run(m *testing.M) (code int) {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.Level(zapLevel()))))
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		home, _ := os.UserHomeDir()
		assets = filepath.Join(home, ".cache", "taskgate", "envtest-v1.37.2")
		os.Setenv("KUBEBUILDER_ASSETS", assets)
	}
	kubectlBin = filepath.Join(assets, "kubectl")
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		fmt.Fprintf(os.Stderr, "no kube-apiserver in %s: run `make envtest` first\n", assets)
		return 1
	}

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{"../../config/crd"},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{webhookManifests()}},
	}
	cfg, err := testEnv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start control plane:", err)
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop control plane:", err)
		}
	}()
	adminCfg = cfg

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	defer func() { cancel(); <-stopped }() // before the control plane stops
	if err := startWebhooks(ctx, cfg, stopped); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	admin, err := testEnv.AddUser(envtest.User{Name: "test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "add admin user:", err)
		return 1
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "admin kubeconfig:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "taskgate-admission-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	adminKube = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(adminKube, kc, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// singleCall is set by TASKGATE_ADMISSION_MODE=single-call: the whole suite
// then runs against the single-call configuration (one mutating webhook that
// defaults and validates; chart value webhook.singleCall). `make test` runs
// the package in both modes.
var singleCall = os.Getenv("TASKGATE_ADMISSION_MODE") == "single-call"

// webhookManifests is the directory of the webhook configurations the API
// server is given, by mode.
func webhookManifests() string {
	if singleCall {
		return "../../config/webhook-single-call"
	}
	return "../../config/webhook"
}

func zapLevel() int {
	if os.Getenv("TASKGATE_TEST_DEBUG") != "" {
		return -1
	}
	return 1 // errors only, keep test output readable
}

func startWebhooks(ctx context.Context, cfg *rest.Config, stopped chan<- struct{}) error {
	wo := &testEnv.WebhookInstallOptions
	scheme := newScheme()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		// The webhook server drains in-flight reviews when the tests end.
		GracefulShutdownTimeout: ptr.To(5 * time.Second),
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		WebhookServer: crwebhook.NewServer(crwebhook.Options{
			Host: wo.LocalServingHost, Port: wo.LocalServingPort, CertDir: wo.LocalServingCertDir,
		}),
	})
	if err != nil {
		close(stopped)
		return fmt.Errorf("create manager: %w", err)
	}
	if err := webhook.SetupWithManager(mgr, webhook.Options{}); err != nil {
		close(stopped)
		return fmt.Errorf("set up webhooks: %w", err)
	}
	// Tests read what the API server stored, not a cache that may lag.
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		close(stopped)
		return fmt.Errorf("client: %w", err)
	}
	go func() {
		defer close(stopped)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	// The API server reaches the webhooks over TLS once they serve.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := mgr.GetWebhookServer().StartedChecker()(nil); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook server did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// kubectl runs the v1.37.2 kubectl as the admin user and returns its
// combined output.
func kubectl(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	return kubectlAs(t, adminKube, stdin, args...)
}

func kubectlAs(t *testing.T, kubeconfig, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = stringReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var _ = v1alpha1.GroupVersion
