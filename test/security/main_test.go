// Package security_test tries the attacks of issue 13 against the whole of
// taskgate: the webhooks and the controller in one manager, running as a
// user of its own that holds exactly the ClusterRole the chart renders (helm
// template), against a real kube-apiserver and etcd (envtest). Every attack
// is made by an impersonated user holding narrow RBAC and must get nothing;
// its legitimate twin, by a user holding the rights, must still work.
//
// TASKGATE_ACT_AS=controller runs the suite against --act-as=controller
// (the chart's actAs=controller rules); the tests that only the requester
// mode can pass say so and are skipped there.
//
// envtest has no kubelet, scheduler, garbage collector, ServiceAccount or
// aggregation controller: tests create the `default` ServiceAccount as
// kube-controller-manager would (admission's preflight dry-runs a Pod with
// it) and grant rights with explicit Roles (the aggregated `edit` role is
// empty here).
package security_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/testutil"
	"github.com/astronetes/taskgate/webhook"
)

var (
	// driver is a system:masters client that sets up namespaces and RBAC
	// and impersonates the test users; it never creates a Task itself.
	driver      *rest.Config
	k8s         client.Client
	scheme      = runtime.NewScheme()
	mode        = actas.ModeRequester
	managerUser = "taskgate-manager"
	logs        = &testutil.SyncBuffer{}
)

func init() {
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if v := os.Getenv("TASKGATE_ACT_AS"); v != "" {
		var err error
		if mode, err = actas.ParseMode(v); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		home, _ := os.UserHomeDir()
		_ = os.Setenv("KUBEBUILDER_ASSETS", filepath.Join(home, ".cache", "taskgate", "envtest-"+testutil.EnvtestVersion))
	}
	var w io.Writer = logs
	if os.Getenv("TASKGATE_TEST_LOG") != "" {
		w = io.MultiWriter(logs, os.Stderr)
	}
	log.SetLogger(zap.New(zap.WriteTo(w), zap.UseDevMode(true)))

	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join("..", "..", "config", "webhook")}},
	}
	if err := requireAPIServerClientCert(env); err != nil {
		fmt.Fprintln(os.Stderr, "webhook client certificate:", err)
		return 1
	}
	var err error
	if driver, err = env.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "start control plane:", err)
		return 1
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if err := env.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "stop control plane:", err)
			}
		})
	}
	defer stop()
	testutil.StopOnSignalOrTimeout(stop)

	if k8s, err = client.New(driver, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 1
	}
	if err := k8s.Create(context.Background(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1ObjectMeta("cluster-admins"),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: adminGroup}},
	}); err != nil {
		fmt.Fprintln(os.Stderr, "bind", adminGroup, "to cluster-admin:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	defer func() { cancel(); <-stopped }() // before the control plane stops
	if err := startManager(ctx, env, stopped); err != nil {
		fmt.Fprintln(os.Stderr, err)
		fmt.Fprintln(os.Stderr, logs.String())
		return 1
	}
	code := m.Run()
	if code != 0 && os.Getenv("TASKGATE_TEST_LOG") == "" {
		fmt.Fprintln(os.Stderr, "--- manager log ---\n"+logs.String())
	}
	return code
}

// startManager runs the webhooks and the controller as managerUser, bound to
// the chart's manager ClusterRole for the suite's mode.
func startManager(ctx context.Context, env *envtest.Environment, stopped chan<- struct{}) error {
	fail := func(err error) error { close(stopped); return err }
	helm := testutil.HelmPath()
	if err := bindChartRole(ctx, helm); err != nil {
		return fail(err)
	}
	if err := applyRendered(ctx, helm, "templates/requester-policy.yaml"); err != nil {
		return fail(err)
	}
	u, err := env.AddUser(envtest.User{Name: managerUser}, nil)
	if err != nil {
		return fail(fmt.Errorf("add manager user: %w", err))
	}
	cfg := u.Config()
	wo := &env.WebhookInstallOptions
	webhookAddr = hostPort(wo.LocalServingHost, wo.LocalServingPort)
	requireCert, err := webhook.RequireClientCert(clientCAFile)
	if err != nil {
		return fail(err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  "0",
		GracefulShutdownTimeout: ptr.To(5 * time.Second),
		Cache:                   cacheOptions(),
		WebhookServer: crwebhook.NewServer(crwebhook.Options{
			Host: wo.LocalServingHost, Port: wo.LocalServingPort, CertDir: wo.LocalServingCertDir,
			TLSOpts: []func(*tls.Config){requireCert},
		}),
	})
	if err != nil {
		return fail(fmt.Errorf("create manager: %w", err))
	}
	if err := webhook.SetupWithManager(mgr, webhook.Options{ActAs: mode, Preflight: true, AccessReviewCacheTTL: 0}); err != nil {
		return fail(fmt.Errorf("set up webhooks: %w", err))
	}
	if err := controller.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: 4, ActAs: mode}); err != nil {
		return fail(fmt.Errorf("set up controller: %w", err))
	}
	go func() {
		defer close(stopped)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for mgr.GetWebhookServer().StartedChecker()(nil) != nil {
		if time.Now().After(deadline) {
			return errors.New("webhook server did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// chartValues are what an operator who lets Tasks patch RBAC objects and
// bind view or cluster-admin would set.
const chartValues = `
allowedClusterRoles: [view, cluster-admin]
transformationRules:
  - apiGroups: ["apps"]
    resources: ["deployments"]
  - apiGroups: [""]
    resources: ["configmaps"]
  - apiGroups: ["rbac.authorization.k8s.io"]
    resources: ["roles", "rolebindings"]
`

// render runs helm template on the chart for the suite's mode and returns
// the objects of one template.
func render(ctx context.Context, helm, template string) ([]unstructured.Unstructured, error) {
	values := "actAs: " + string(mode) + "\n" + chartValues
	return testutil.Render(ctx, helm, filepath.Join("..", "..", "charts", "taskgate"), values, template)
}

// applyRendered creates what the chart renders from template.
func applyRendered(ctx context.Context, helm, template string) error {
	objs, err := render(ctx, helm, template)
	if err != nil {
		return err
	}
	if len(objs) == 0 {
		return fmt.Errorf("helm template rendered nothing from %s", template)
	}
	for i := range objs {
		if err := k8s.Create(ctx, &objs[i]); err != nil {
			return fmt.Errorf("create %s %s: %w", objs[i].GetKind(), objs[i].GetName(), err)
		}
	}
	return nil
}

// bindChartRole creates the chart's manager ClusterRole for the suite's mode
// (one source of truth: charts/taskgate/templates/rbac.yaml) and binds it to
// managerUser.
func bindChartRole(ctx context.Context, helm string) error {
	objs, err := render(ctx, helm, "templates/rbac.yaml")
	if err != nil {
		return err
	}
	for i := range objs {
		if objs[i].GetKind() != "ClusterRole" {
			continue
		}
		if err := k8s.Create(ctx, &objs[i]); err != nil {
			return fmt.Errorf("create chart ClusterRole: %w", err)
		}
		name := objs[i].GetName()
		return k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1ObjectMeta(name),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: managerUser}},
		})
	}
	return errors.New("helm template rendered no ClusterRole")
}
