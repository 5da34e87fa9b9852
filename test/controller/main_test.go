// Package controller_test runs the Task controller against a real
// kube-apiserver and etcd (envtest), in-process, with the CRDs from
// config/crd.
//
// The controller runs as a user outside system:masters with exactly the
// chart's rules (rbac_test.go), so child writes go through constrained
// impersonation for real. The webhook does not run in this package: tests
// set spec.requester themselves, as the mutating webhook would.
//
// envtest has no kubelet, no scheduler, no garbage collector and no Job or
// namespace controller. Tests that need a Pod to run or finish set its status
// as a kubelet would (see setPodStatus); nothing relies on owner references
// being collected.
package controller_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

// The one control plane of this package, shared by every test; each test
// works in its own namespace with its own manager.
var (
	cfg       *rest.Config // system:masters: the tests' own client
	k8sClient client.Client
	// managerCfg is the manager's identity in --act-as=requester mode,
	// controllerModeCfg in --act-as=controller mode.
	managerCfg, controllerModeCfg *rest.Config
	scheme                        = runtime.NewScheme()
)

func init() {
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

// run starts the control plane, runs the tests and stops the control plane,
// whatever happened: m.Run returning, a panic in this goroutine, Ctrl-C, or
// the test binary's -timeout about to fire (it panics in a goroutine of its
// own, which would skip every defer and leave etcd and kube-apiserver
// running).
func run(m *testing.M) int {
	flag.Parse()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		home, _ := os.UserHomeDir()
		_ = os.Setenv("KUBEBUILDER_ASSETS", filepath.Join(home, ".cache", "taskgate", "envtest-v1.37.2"))
	}
	// Managers log through their own per-test loggers; this silences the
	// "log.SetLogger(...) was never called" warning of anything else.
	log.SetLogger(testLogger(os.Stderr, os.Getenv("TASKGATE_TEST_LOG") != ""))

	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	cfg, err = env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "start envtest (KUBEBUILDER_ASSETS=%s): %v\n", os.Getenv("KUBEBUILDER_ASSETS"), err)
		return 1
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if err := env.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
			}
		})
	}
	// The binary is about to die: no time for kube-apiserver to drain its
	// watches. Kill the control plane, then let envtest remove its files.
	stopNow := func() {
		killChildren()
		stop()
	}
	defer stop() // also runs while a panic of this goroutine unwinds
	testutil.StopOnSignalOrTimeout(stopNow)

	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		return 1
	}
	if managerCfg, controllerModeCfg, err = setUpIdentities(env, k8sClient); err != nil {
		fmt.Fprintf(os.Stderr, "identities: %v\n", err)
		return 1
	}
	ctrl.SetLogger(log.Log)
	return m.Run()
}

// killChildren sends SIGKILL to this process's children: the control plane's
// etcd and kube-apiserver, the only processes the tests start. Linux only
// (it reads /proc); elsewhere it does nothing.
func killChildren() {
	self := strconv.Itoa(os.Getpid())
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after it.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 1 && fields[1] == self {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
