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
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/webhook"
)

// Shared by the tests of this package: one control plane, one webhook
// server. The webhook manager runs as taskgate-manager, an ordinary user
// holding exactly the chart's --act-as=requester ClusterRole, so its
// preflight dry runs go through constrained impersonation for real. The
// admin is bound to cluster-admin through the group kubeadm:cluster-admins,
// as kubeadm binds it since 1.29, not through system:masters, which
// taskgate cannot act as.
var (
	testEnv     *envtest.Environment
	adminCfg    *rest.Config // kubeadm:cluster-admins
	adminKube   string       // kubeconfig file of the same admin
	mastersCfg  *rest.Config // a user in system:masters only
	mastersKube string
	managerCfg  *rest.Config // taskgate-manager
	kubectlBin  string
	k8s         client.Client // as the admin
)

// The names the harness gives the webhook manager and the admins.
const (
	managerUser = "taskgate-manager"
	adminUser   = "test-admin"
	adminGroup  = "kubeadm:cluster-admins"
	mastersUser = "test-root"
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
	// envtest turns the ServiceAccount admission plugin off because nothing
	// creates the default ServiceAccounts; the preflight meets it in every
	// real cluster, so it is on here, and namespace() creates "default" as
	// kube-controller-manager would.
	testEnv.ControlPlane.GetAPIServer().Configure().Disable("disable-admission-plugins")
	envCfg, err := testEnv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start control plane:", err)
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop control plane:", err)
		}
	}()
	dir, err := os.MkdirTemp("", "taskgate-admission-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := addUsers(envCfg, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	defer func() { cancel(); <-stopped }() // before the control plane stops
	if err := startWebhooks(ctx, managerCfg, stopped); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// addUsers creates the manager, the admin and the masters user, grants
// them their rights with envtest's own system:masters config, and writes
// the admins' kubeconfig files into dir.
func addUsers(envCfg *rest.Config, dir string) error {
	boot, err := client.New(envCfg, client.Options{Scheme: newScheme()})
	if err != nil {
		return fmt.Errorf("bootstrap client: %w", err)
	}
	ctx := context.Background()
	objs, err := managerRBAC(ctx)
	if err != nil {
		return fmt.Errorf("manager RBAC: %w", err)
	}
	for _, obj := range objs {
		if err := boot.Create(ctx, obj); err != nil {
			return fmt.Errorf("manager RBAC: %w", err)
		}
	}
	if err := boot.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: adminGroup},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: adminGroup}},
	}); err != nil {
		return fmt.Errorf("bind %s: %w", adminGroup, err)
	}
	manager, err := testEnv.AddUser(envtest.User{Name: managerUser}, nil)
	if err != nil {
		return fmt.Errorf("add manager user: %w", err)
	}
	managerCfg = manager.Config()
	admin, err := testEnv.AddUser(envtest.User{Name: adminUser, Groups: []string{adminGroup}}, nil)
	if err != nil {
		return fmt.Errorf("add admin user: %w", err)
	}
	adminCfg = admin.Config()
	if adminKube, err = writeKubeconfig(admin, filepath.Join(dir, "admin")); err != nil {
		return err
	}
	masters, err := testEnv.AddUser(envtest.User{Name: mastersUser, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("add masters user: %w", err)
	}
	mastersCfg = masters.Config()
	if mastersKube, err = writeKubeconfig(masters, filepath.Join(dir, "masters")); err != nil {
		return err
	}
	// Tests read what the API server stored, not a cache that may lag.
	if k8s, err = client.New(adminCfg, client.Options{Scheme: newScheme()}); err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	return nil
}

func writeKubeconfig(u *envtest.AuthenticatedUser, path string) (string, error) {
	kc, err := u.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("kubeconfig: %w", err)
	}
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		return "", err
	}
	return path, nil
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
	// As the manager runs by default: requester mode, preflight on; the
	// access-review cache off, so that RBAC changes count at once.
	if err := webhook.SetupWithManager(mgr, webhook.Options{ActAs: actas.ModeRequester, Preflight: true}); err != nil {
		close(stopped)
		return fmt.Errorf("set up webhooks: %w", err)
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
