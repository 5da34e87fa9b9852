// Package e2e_test runs taskgate on a real node: containerd, runc, the
// kubelet and kube-proxy (internal/node) beside envtest's etcd and
// kube-apiserver, with kube-controller-manager and kube-scheduler, the
// chart installed by helm with the taskgate image built here, and Pods
// that really run. It needs root and the Debian packages of
// node.Packages; elsewhere it skips with the reason, unless
// TASKGATE_E2E=require (CI, `make test-e2e`), which makes a machine that
// cannot run a node a failure. The node is stopped and the machine left as
// it was found, which TestMain checks (node.Diff of two snapshots), also
// when a test fails; a signal or the test timeout stops it too.
package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/astronetes/taskgate/internal/node"
	"github.com/astronetes/taskgate/test/testutil"
)

// cluster is the one environment of the package.
var cluster struct {
	cp    *testutil.ControlPlane
	node  *node.Node
	admin *testutil.Identity // an ordinary cluster-admin (not system:masters), as make run's user
	// taskgate is the binary the image holds, for the version check.
	taskgate string
	// helmHome isolates helm's config and cache from the user's.
	helmHome string
	// namespace is the release's.
	namespace string
}

const (
	releaseName      = "taskgate"
	releaseNamespace = "taskgate-system"
	adminsGroup      = "e2e-admins"
)

// nodeDir is fixed, not temporary: a run that crashed left its state
// there, and the next run's node.Prepare removes what it finds.
var nodeDir = filepath.Join(os.TempDir(), "taskgate-e2e-node")

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) (code int) {
	cfg := node.Config{Dir: nodeDir, Assets: testutil.AssetsDir(), RepoRoot: testutil.RepoRoot(), Log: stderrLogger()}
	if err := node.Check(cfg); err != nil {
		if os.Getenv("TASKGATE_E2E") == "require" {
			fmt.Fprintf(os.Stderr, "e2e: TASKGATE_E2E=require, but this machine cannot run a real node:\n%v\n", err)
			return 1
		}
		fmt.Printf("e2e: SKIPPED: this machine cannot run a real node (TASKGATE_E2E=require makes this a failure):\n%v\n", err)
		return 0
	}
	before := node.TakeSnapshot(nodeDir)
	defer func() {
		after := node.TakeSnapshot(nodeDir)
		if left := node.Diff(before, after); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "e2e: the node left things behind:\n  %s\n", strings.Join(left, "\n  "))
			code = 1
		}
	}()
	err := setUp(cfg)
	if err == nil {
		code = m.Run()
	} else {
		fmt.Fprintf(os.Stderr, "e2e: set-up: %v\n", err)
		code = 1
	}
	if err := tearDown(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: tear-down: %v\n", err)
		code = 1
	}
	return code
}

// setUp starts the node and the control plane and installs the chart.
func setUp(cfg node.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	// make test-e2e builds bin/taskgate first (make build) and names it;
	// a bare go test builds its own.
	var err error
	if cluster.taskgate = os.Getenv("TASKGATE_E2E_BINARY"); cluster.taskgate == "" {
		binDir, err := os.MkdirTemp("", "taskgate-e2e-bin-")
		if err != nil {
			return err
		}
		cleanups = append(cleanups, func() error { return os.RemoveAll(binDir) })
		if cluster.taskgate, err = testutil.BuildTaskgate(testutil.RepoRoot(), binDir); err != nil {
			return err
		}
	}
	cfg.TaskgateBinary = cluster.taskgate
	if cluster.node, err = node.Prepare(ctx, cfg); err != nil {
		return err
	}
	cluster.cp, err = testutil.StartControlPlane(testutil.Options{
		NoCRDs: true, // the chart installs them
		Configure: func(env *envtest.Environment) error {
			return cluster.node.ConfigureAPIServer(env)
		},
	})
	if err != nil {
		return err
	}
	// Whatever ends the tests (a signal, the test timeout), the node stops
	// before the API server it drains through. After a signal only the
	// node's address (its bridge) stays: kube-apiserver is stopped after
	// this, and the next run's node.Prepare removes it.
	cluster.cp.OnStop(func() {
		if err := cluster.node.Stop(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	})
	if err := cluster.node.Start(ctx, cluster.cp.Env); err != nil {
		return err
	}
	if cluster.admin, err = cluster.cp.AddAdmin(ctx, "e2e-admin", adminsGroup); err != nil {
		return err
	}
	fmt.Printf("e2e: node %s Ready and probed in %s\n", cluster.node.Name(), time.Since(start).Round(time.Second))
	start = time.Now()
	if cluster.helmHome, err = os.MkdirTemp("", "taskgate-e2e-helm-"); err != nil {
		return err
	}
	cleanups = append(cleanups, func() error { return os.RemoveAll(cluster.helmHome) })
	if err := installChart(ctx); err != nil {
		return err
	}
	fmt.Printf("e2e: chart installed, both replicas Ready, in %s\n", time.Since(start).Round(time.Second))
	return nil
}

// cleanups run at tear-down, last added first.
var cleanups []func() error

// tearDown stops the node (its workloads first), then the control plane.
func tearDown() error {
	var errs []error
	if cluster.node != nil {
		errs = append(errs, cluster.node.Stop(context.Background()))
	}
	if cluster.cp != nil {
		errs = append(errs, cluster.cp.Stop())
	}
	// The node's address last: kube-apiserver served there.
	errs = append(errs, cluster.node.Release(context.Background()))
	for i := len(cleanups) - 1; i >= 0; i-- {
		errs = append(errs, cleanups[i]())
	}
	return errors.Join(errs...)
}

// stderrLogger is the node's logr logger.
func stderrLogger() logr.Logger {
	return funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, "node:", args) }, funcr.Options{})
}
