// Package security_test tries the attacks of issue 13 against the whole of
// taskgate: the webhooks and the controller in one manager, running as a
// user of its own that holds exactly the ClusterRole the chart renders (helm
// template), against a real kube-apiserver and etcd (envtest). Every attack
// is made by an impersonated user holding narrow RBAC and must get nothing;
// its legitimate twin, by a user holding the rights, must still work.
//
// TASKGATE_ACT_AS=controller runs the suite against --act-as=controller
// (the chart's actAs=controller rules); a test whose outcome differs by
// mode asserts each mode's.
//
// envtest has no kubelet, scheduler, garbage collector, ServiceAccount or
// aggregation controller: tests create the `default` ServiceAccount as
// kube-controller-manager would (admission's preflight dry-runs a Pod with
// it) and grant rights with explicit Roles (the aggregated `edit` role is
// empty here).
package security_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/controller"
	"github.com/astronetes/taskgate/test/testutil"
	"github.com/astronetes/taskgate/webhook"
)

var (
	cp *testutil.ControlPlane
	// driver is a system:masters client that sets up namespaces and RBAC
	// and impersonates the test users; it never creates a Task itself.
	driver      *rest.Config
	k8s         client.Client
	scheme      = testutil.Scheme()
	mode        = actas.ModeRequester
	managerUser = "taskgate-manager"
	logs        = &testutil.SyncBuffer{}
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if v := os.Getenv("TASKGATE_ACT_AS"); v != "" {
		var err error
		if mode, err = actas.ParseMode(v); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	var w io.Writer = logs
	if os.Getenv("TASKGATE_TEST_LOG") != "" {
		w = io.MultiWriter(logs, os.Stderr)
	}
	log.SetLogger(zap.New(zap.WriteTo(w), zap.UseDevMode(true)))

	// The ServiceAccount admission plugin on, as in every real cluster: a
	// Pod naming a ServiceAccount that does not exist is refused.
	opts := testutil.Options{Webhooks: filepath.Join(testutil.RepoRoot(), "config", "webhook"), Configure: requireAPIServerClientCert,
		ServiceAccountAdmission: true}
	code := testutil.RunSuite(m, opts, func(c *testutil.ControlPlane) error {
		cp, driver, k8s = c, c.Config, c.Client
		if err := cp.BindClusterRole(context.Background(), "cluster-admins", "cluster-admin", testutil.GroupSubject(adminGroup)); err != nil {
			return err
		}
		return startManager(context.Background())
	})
	if code != 0 && os.Getenv("TASKGATE_TEST_LOG") == "" {
		fmt.Fprintln(os.Stderr, "--- manager log ---\n"+logs.String())
	}
	return code
}

// startManager runs the webhooks and the controller as managerUser, holding
// the chart's manager ClusterRole for the suite's mode, with the chart's
// requester policy installed.
func startManager(ctx context.Context) error {
	if err := applyRendered(ctx, "templates/requester-policy.yaml"); err != nil {
		return err
	}
	u, err := cp.AddChartUser(ctx, managerUser, chartValuesFor(mode))
	if err != nil {
		return err
	}
	wo := &cp.Env.WebhookInstallOptions
	webhookAddr = hostPort(wo.LocalServingHost, wo.LocalServingPort)
	requireCert, err := webhook.RequireClientCert(clientCAFile)
	if err != nil {
		return err
	}
	_, err = cp.StartManager(u.Config, ctrl.Options{Scheme: scheme, Cache: controller.CacheOptions(nil), WebhookServer: cp.WebhookServer(requireCert)},
		func(mgr ctrl.Manager) error {
			return webhook.SetupWithManager(mgr, webhook.Options{ActAs: mode, Preflight: true, AccessReviewCacheTTL: 0})
		},
		func(mgr ctrl.Manager) error {
			return controller.SetupWithManager(mgr, controller.Options{MaxConcurrentReconciles: 4, ActAs: mode})
		})
	return err
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

// chartValuesFor are chartValues for the act-as mode m.
func chartValuesFor(m actas.Mode) string { return "actAs: " + string(m) + "\n" + chartValues }

// render runs helm template on the chart for the suite's mode and returns
// the objects of one template.
func render(ctx context.Context, template string) ([]unstructured.Unstructured, error) {
	return testutil.Render(ctx, testutil.HelmPath(), filepath.Join(testutil.RepoRoot(), "charts", "taskgate"), chartValuesFor(mode), template)
}

// applyRendered creates what the chart renders from template.
func applyRendered(ctx context.Context, template string) error {
	objs, err := render(ctx, template)
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
