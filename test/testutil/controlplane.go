package testutil

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Options say what StartControlPlane starts.
type Options struct {
	// CRDs are files or directories of CRDs to install; nil means the
	// repository's config/crd.
	CRDs []string
	// NoCRDs installs none (the chart's install brings them).
	NoCRDs bool
	// Webhooks is a directory of webhook configurations that envtest
	// installs, pointed at its local serving host, port and certificate
	// (see ControlPlane.WebhookServer); empty installs none.
	Webhooks string
	// ServiceAccountAdmission turns on the ServiceAccount admission plugin,
	// which envtest turns off because nothing creates the default
	// ServiceAccounts; taskgate's preflight meets it in every real cluster.
	// Tests then create them (EnsureDefaultServiceAccount).
	ServiceAccountAdmission bool
	// Configure changes the environment before it starts (e.g. API server
	// flags).
	Configure func(*envtest.Environment) error
}

// ControlPlane is one etcd and kube-apiserver from AssetsDir.
type ControlPlane struct {
	Env *envtest.Environment
	// Config and Client are envtest's admin (system:masters), without a
	// client-side rate limit: the load is bounded by the callers.
	Config *rest.Config
	Client client.Client
	// Kubeconfig is the admin's kubeconfig file, for subprocesses.
	Kubeconfig string
	// Dir is a directory of the control plane's own, removed by Stop.
	Dir string

	mu      sync.Mutex
	onStop  []func()
	once    sync.Once
	stopErr error
}

// StartControlPlane starts etcd and kube-apiserver and installs what opts
// say. The control plane is stopped by Stop, and also, whatever the tests
// are doing, on SIGINT/SIGTERM and shortly before -test.timeout fires (see
// StopOnSignalOrTimeout); callers still defer Stop for the ordinary end and
// for a panic of their own goroutine.
func StartControlPlane(opts Options) (*ControlPlane, error) {
	dir := AssetsDir()
	if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err != nil {
		return nil, fmt.Errorf("no kube-apiserver in %q: run `make envtest` first", dir)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    dir,
		ControlPlaneStartTimeout: 90 * time.Second, // a loaded machine starts kube-apiserver slowly
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	if !opts.NoCRDs {
		env.CRDDirectoryPaths = opts.CRDs
		if env.CRDDirectoryPaths == nil {
			env.CRDDirectoryPaths = []string{filepath.Join(RepoRoot(), "config", "crd")}
		}
		env.ErrorIfCRDPathMissing = true
	}
	if opts.Webhooks != "" {
		env.WebhookInstallOptions = envtest.WebhookInstallOptions{Paths: []string{opts.Webhooks}}
	}
	if opts.ServiceAccountAdmission {
		env.ControlPlane.GetAPIServer().Configure().Disable("disable-admission-plugins")
	}
	if opts.Configure != nil {
		if err := opts.Configure(env); err != nil {
			return nil, fmt.Errorf("configure the control plane: %w", err)
		}
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start the control plane (KUBEBUILDER_ASSETS=%s): %w", dir, err)
	}
	cp := &ControlPlane{Env: env}
	track(cp)
	if err := cp.init(cfg); err != nil {
		return nil, errors.Join(err, cp.Stop())
	}
	return cp, nil
}

// RunSuite is a TestMain's body for a package with one control plane: it
// starts the control plane with opts, lets setup prepare it (users,
// managers: cp.StartManager stops them with it), runs the tests and stops
// everything, also when a test fails or setup panics. TestMain calls
// os.Exit(testutil.RunSuite(m, ...)).
func RunSuite(m *testing.M, opts Options, setup func(*ControlPlane) error) int {
	cp, err := StartControlPlane(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	if err := setup(cp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func (cp *ControlPlane) init(cfg *rest.Config) error {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 1e6, 1e6
	cp.Config = cfg
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	cp.Client = c
	if cp.Dir, err = os.MkdirTemp("", "taskgate-cp-"); err != nil {
		return err
	}
	cp.Kubeconfig = filepath.Join(cp.Dir, "kubeconfig")
	return os.WriteFile(cp.Kubeconfig, cp.Env.KubeConfig, 0o600)
}

// OnStop runs f when the control plane stops, before etcd and
// kube-apiserver do (last registered first): managers stop while the API
// server still answers.
func (cp *ControlPlane) OnStop(f func()) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.onStop = append(cp.onStop, f)
}

// Stop runs the OnStop functions, stops the control plane and removes its
// files. It may be called more than once and from several goroutines; all
// wait for the first.
func (cp *ControlPlane) Stop() error {
	cp.once.Do(func() {
		untrack(cp)
		cp.mu.Lock()
		fs := cp.onStop
		cp.mu.Unlock()
		for i := len(fs) - 1; i >= 0; i-- {
			fs[i]()
		}
		if err := cp.Env.Stop(); err != nil {
			cp.stopErr = fmt.Errorf("stop the control plane: %w", err)
		}
		if cp.Dir != "" {
			_ = os.RemoveAll(cp.Dir)
		}
	})
	return cp.stopErr
}

// WebhookServer is a webhook server on envtest's local serving host, port
// and certificate, which the configurations of Options.Webhooks call.
func (cp *ControlPlane) WebhookServer(tlsOpts ...func(*tls.Config)) crwebhook.Server {
	wo := &cp.Env.WebhookInstallOptions
	return crwebhook.NewServer(crwebhook.Options{
		Host: wo.LocalServingHost, Port: wo.LocalServingPort, CertDir: wo.LocalServingCertDir, TLSOpts: tlsOpts,
	})
}

// The live control planes, stopped all at once when a signal comes or the
// test binary's timeout is near.
var live struct {
	sync.Mutex
	once sync.Once
	cps  map[*ControlPlane]struct{}
}

func track(cp *ControlPlane) {
	live.once.Do(func() { StopOnSignalOrTimeout(stopAll) })
	live.Lock()
	defer live.Unlock()
	if live.cps == nil {
		live.cps = map[*ControlPlane]struct{}{}
	}
	live.cps[cp] = struct{}{}
}

func untrack(cp *ControlPlane) {
	live.Lock()
	defer live.Unlock()
	delete(live.cps, cp)
}

// stopAll stops every live control plane. The binary is about to die:
// there is no time for kube-apiserver to drain its watches, so this
// process's children (etcd, kube-apiserver, taskgate subprocesses) are
// killed first and envtest then only removes its files.
func stopAll() {
	live.Lock()
	cps := make([]*ControlPlane, 0, len(live.cps))
	for cp := range live.cps {
		cps = append(cps, cp)
	}
	live.Unlock()
	if len(cps) == 0 {
		return
	}
	killChildren()
	for _, cp := range cps {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
}

// killChildren sends SIGKILL to this process's children. Linux only (it
// reads /proc); elsewhere it does nothing and Stop takes its usual time.
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
