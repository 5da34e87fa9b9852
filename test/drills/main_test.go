// Package drills_test puts taskgate through faults against a real
// kube-apiserver and etcd (envtest): the manager killed with SIGKILL while
// Tasks are in flight (some held by an admission webhook of the drill's own
// at a chosen point: between creating a child and recording it, or with a
// transformation's patch in flight), hostile Tasks through the webhooks,
// and webhook certificates rotated while Tasks are created, by hand and by
// the manager's own rotator.
//
// The short versions run in `go test ./test/...`; TASKGATE_SOAK=1 (`make
// soak`) makes them long. The tests change shared state (the webhook
// certificate, the webhook configurations) and run one after the other.
// TASKGATE_DRILL_DEBUG=1 prints the managers' output even when a drill
// passes; TASKGATE_TEST_LOG=1 the in-process webhook server's logs.
package drills_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/test/testutil"
	"github.com/astronetes/taskgate/webhook"
)

const root = "../.."

// Shared by the drills: one control plane, one webhook server (in this
// process, so its memory can be read), its certificate directory and CA.
// As in production under the default --act-as=requester, the Tasks are
// created by admin, bound to cluster-admin through the ordinary group
// kit.AdminGroup (as kubeadm does; constrained impersonation refuses to
// impersonate system:masters, envtest's own admin), and both the webhooks
// and `taskgate manager` run as manager, an ordinary user holding exactly
// the chart's requester-mode rules (a system:masters manager would
// impersonate through the legacy path instead).
var (
	cp       *kit.ControlPlane
	admin    *testutil.Identity
	manager  *testutil.Identity
	hooks    kit.Webhooks // as in config/webhook/manifests.yaml
	certDir  string
	caNow    *kit.CA // the CA that issued the serving certificate
	whServer crwebhook.Server
	whURL    string
)

// soak is set by TASKGATE_SOAK=1: the long versions of the drills.
var soak = os.Getenv("TASKGATE_SOAK") != ""

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

// run starts the control plane and the webhooks, runs the drills, and
// stops everything whatever happens: return, panic in this goroutine,
// SIGINT/SIGTERM, or the test binary's -timeout about to fire.
func run(m *testing.M) int {
	flag.Parse()
	level := zapcore.ErrorLevel
	if os.Getenv("TASKGATE_TEST_LOG") != "" {
		level = zapcore.DebugLevel
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(level)))
	var err error
	if cp, err = kit.StartControlPlane(root); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var once sync.Once
	var stopWebhooks func()
	stop := func() {
		once.Do(func() {
			if stopWebhooks != nil {
				stopWebhooks()
			}
			if err := cp.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
			if certDir != "" {
				_ = os.RemoveAll(certDir)
			}
			testutil.RemoveTaskgateBinary()
		})
	}
	defer stop()
	testutil.StopOnSignalOrTimeout(stop)
	if admin, err = cp.AddAdmin(context.Background(), "drill-admin"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if manager, err = cp.AddManager(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if stopWebhooks, err = startWebhooks(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// startWebhooks runs taskgate's webhooks as the manager does (a manager's
// webhook server, wired by webhook.SetupWithManager) with a certificate of
// our own CA, so that the drills can rotate both.
func startWebhooks() (stop func(), err error) {
	if caNow, err = kit.NewCA("taskgate-drill-ca-1"); err != nil {
		return nil, err
	}
	if certDir, _, err = kit.NewCertDir(caNow); err != nil {
		return nil, err
	}
	port, err := testutil.FreePort()
	if err != nil {
		return nil, err
	}
	whURL = fmt.Sprintf("https://127.0.0.1:%d", port)
	mgr, err := ctrl.NewManager(manager.Config, ctrl.Options{
		Scheme:                  testutil.Scheme(),
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  "0",
		GracefulShutdownTimeout: ptr.To(5 * time.Second),
		WebhookServer:           crwebhook.NewServer(crwebhook.Options{Host: "127.0.0.1", Port: port, CertDir: certDir}),
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	// The manager's defaults: access-review cache, act as the requester,
	// preflight on.
	opts := webhook.Options{AccessReviewCacheTTL: webhook.DefaultAccessReviewCacheTTL, ActAs: actas.ModeRequester, Preflight: true}
	if err := webhook.SetupWithManager(mgr, opts); err != nil {
		return nil, fmt.Errorf("set up webhooks: %w", err)
	}
	whServer = mgr.GetWebhookServer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "webhook manager:", err)
		}
	}()
	stop = func() { cancel(); <-done }
	deadline := time.Now().Add(30 * time.Second)
	for whServer.StartedChecker()(nil) != nil {
		if time.Now().After(deadline) {
			stop()
			return nil, errors.New("webhook server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if hooks, err = kit.LoadWebhooks(root); err != nil {
		stop()
		return nil, err
	}
	if err := installWebhooks(context.Background(), caNow.PEM); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// installWebhooks points both webhook configurations at our server, trusting
// caBundle.
func installWebhooks(ctx context.Context, caBundle []byte) error {
	w := hooks.Point(whURL, caBundle, webhook.MutatePath, webhook.ValidatePath)
	return w.Apply(ctx, cp.Client, hooks)
}

// short picks the short or the soak value.
func short[T any](shortV, soakV T) T {
	if soak {
		return soakV
	}
	return shortV
}
