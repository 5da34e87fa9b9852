// Package admission_test checks the admission webhooks through a real
// kube-apiserver and etcd (envtest): the API server calls the webhook server
// over TLS, and users act through kubectl or client-go as they would.
package admission_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/test/testutil"
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
	cp          *testutil.ControlPlane
	adminCfg    *rest.Config  // kubeadm:cluster-admins
	adminKube   string        // kubeconfig file of the same admin
	mastersKube string        // a user in system:masters only
	managerCfg  *rest.Config  // taskgate-manager
	k8s         client.Client // as the admin
)

// The names the harness gives the webhook manager and the admins.
const (
	managerUser = "taskgate-manager"
	adminUser   = "test-admin"
	adminGroup  = "kubeadm:cluster-admins"
	mastersUser = "test-root"
)

// TestMain starts the control plane and the webhooks, runs the tests and
// stops everything, also when a test fails or panics, on a signal and
// before the test timeout (testutil.RunSuite). The preflight meets the
// ServiceAccount admission plugin in every real cluster, so it is on here,
// and namespace() creates "default" as kube-controller-manager would.
func TestMain(m *testing.M) {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.Level(zapLevel()))))
	opts := testutil.Options{Webhooks: webhookManifests(), ServiceAccountAdmission: true}
	os.Exit(testutil.RunSuite(m, opts, func(c *testutil.ControlPlane) error {
		cp = c
		if err := addUsers(context.Background()); err != nil {
			return err
		}
		if err := installPolicies(context.Background()); err != nil {
			return err
		}
		_, err := cp.StartManager(managerCfg, ctrl.Options{WebhookServer: cp.WebhookServer()},
			func(mgr ctrl.Manager) error { return webhook.SetupWithManager(mgr, webhookOptions()) })
		return err
	}))
}

// addUsers creates the manager (the chart's RBAC), the admin and the
// masters user, and the admin's client.
func addUsers(ctx context.Context) error {
	manager, err := cp.AddChartUser(ctx, managerUser, managerValues())
	if err != nil {
		return err
	}
	managerCfg = manager.Config
	admin, err := cp.AddAdmin(ctx, adminUser, adminGroup)
	if err != nil {
		return err
	}
	adminCfg, adminKube, k8s = admin.Config, admin.Kubeconfig, admin.Client
	masters, err := cp.AddUser(envtest.User{Name: mastersUser, Groups: []string{"system:masters"}})
	if err != nil {
		return err
	}
	mastersKube = masters.Kubeconfig
	return nil
}

// singleCall is set by TASKGATE_ADMISSION_MODE=single-call: the whole suite
// then runs against the single-call configuration (one mutating webhook that
// defaults and validates; chart value webhook.singleCall). `make test` runs
// the package in both modes.
var singleCall = os.Getenv("TASKGATE_ADMISSION_MODE") == "single-call"

// cacheOff is set by TASKGATE_ADMISSION_CACHE=off: the webhooks then ask
// the API server every access question, so a test proves each check is
// made. By default they run as installed, with the shipped access-review
// cache (--access-review-cache-ttl default, 10 s). `make test` runs the
// single-call pass with the cache off.
var cacheOff = os.Getenv("TASKGATE_ADMISSION_CACHE") == "off"

// webhookOptions are the manager's defaults: requester mode, preflight on,
// the shipped access-review cache unless cacheOff.
func webhookOptions() webhook.Options {
	opts := webhook.Options{ActAs: actas.ModeRequester, Preflight: true, AccessReviewCacheTTL: webhook.DefaultAccessReviewCacheTTL}
	if cacheOff {
		opts.AccessReviewCacheTTL = 0
	}
	return opts
}

// webhookManifests is the directory of the webhook configurations the API
// server is given, by mode.
func webhookManifests() string {
	if singleCall {
		return filepath.Join(testutil.RepoRoot(), "config", "webhook-single-call")
	}
	return filepath.Join(testutil.RepoRoot(), "config", "webhook")
}

func zapLevel() int {
	if os.Getenv("TASKGATE_TEST_DEBUG") != "" {
		return -1
	}
	return 1 // errors only, keep test output readable
}

// kubectl runs the control plane's kubectl as the admin user and returns
// its combined output.
func kubectl(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	return kubectlAs(t, adminKube, stdin, args...)
}

func kubectlAs(t *testing.T, kubeconfig, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(testutil.AssetsDir(), "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}
