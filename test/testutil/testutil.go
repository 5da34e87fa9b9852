// Package testutil is the one harness of the integration test packages
// (test/admission, test/controller, test/helm, test/nosync, test/security),
// the load driver and the drills (test/load/kit adds the benchmarks' own
// parts): where the control-plane binaries are, a real kube-apiserver and
// etcd (envtest) stopped however the binary ends (controlplane.go),
// managers with the webhooks and the controller (manager.go), users with
// the chart's RBAC, the taskgate binary as a subprocess (process.go), the
// Helm chart's rendering (chart.go), the webhook manifests (webhooks.go),
// the kubelet's part for Secret volumes (kubelet.go), and the small things
// every test needs: the scheme, Eventually, a buffer a process writes while
// a test reads it, free ports.
package testutil

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// RepoRoot is the module root, found from this file's location so that the
// harness works from any working directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var assets struct {
	once sync.Once
	dir  string
}

// AssetsDir is where etcd, kube-apiserver, kubectl and helm are: the
// KUBEBUILDER_ASSETS the Makefile exports (its ENVTEST_DIR, the one place
// the Kubernetes version is said). A bare `go test` asks the Makefile for
// the same directory (`make -s envtest-dir`) and exports it, so envtest and
// subprocesses find the binaries too.
func AssetsDir() string {
	assets.once.Do(func() {
		if assets.dir = os.Getenv("KUBEBUILDER_ASSETS"); assets.dir != "" {
			return
		}
		out, err := exec.Command("make", "-s", "--no-print-directory", "-C", RepoRoot(), "envtest-dir").Output()
		if err != nil {
			fmt.Fprintf(os.Stderr, "KUBEBUILDER_ASSETS is unset and `make envtest-dir` failed (%v): run the tests through make or export it\n", err)
			return
		}
		assets.dir = strings.TrimSpace(string(out))
		_ = os.Setenv("KUBEBUILDER_ASSETS", assets.dir)
	})
	return assets.dir
}

var kubeVersion struct {
	once    sync.Once
	version string
}

// KubeVersion is the version of the kube-apiserver in AssetsDir
// ("v1.37.2"), as it reports itself, or "unknown".
func KubeVersion() string {
	kubeVersion.once.Do(func() {
		kubeVersion.version = "unknown"
		out, err := exec.Command(filepath.Join(AssetsDir(), "kube-apiserver"), "--version").Output()
		if f := strings.Fields(string(out)); err == nil && len(f) > 0 {
			kubeVersion.version = f[len(f)-1]
		}
	})
	return kubeVersion.version
}

// Scheme knows the client-go types, the CRD types and the taskgate API.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	for _, add := range []func(*k8sruntime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

// FreePort returns a TCP port free on 127.0.0.1 at the time of the call.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// MustFreePort is FreePort, failing the test on error.
func MustFreePort(t testing.TB) int {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	return port
}

// WaitTimeout bounds every Eventually: generous, since a package's tests
// share one API server on a loaded machine.
const WaitTimeout = 30 * time.Second

// PollInterval is how often Eventually checks.
const PollInterval = 100 * time.Millisecond

// Eventually polls check until it returns nil, failing the test with the
// last error after WaitTimeout. what says what was awaited.
func Eventually(t testing.TB, what string, check func() error) {
	t.Helper()
	EventuallyWithin(t, WaitTimeout, what, check)
}

// EventuallyWithin is Eventually with a timeout of its own.
func EventuallyWithin(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	EventuallyEvery(t, timeout, PollInterval, what, check)
}

// EventuallyEvery is EventuallyWithin checking every interval, for what
// must be seen soon after it happens (a certificate served, a process
// killed in a window).
func EventuallyEvery(t testing.TB, timeout, interval time.Duration, what string, check func() error) {
	t.Helper()
	if err := PollEvery(timeout, interval, check); err != nil {
		t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
	}
}

// Poll calls check every PollInterval until it returns nil or timeout
// passes, and returns the last error: Eventually for code without a
// testing.T (TestMain, the load driver).
func Poll(timeout time.Duration, check func() error) error {
	return PollEvery(timeout, PollInterval, check)
}

// PollEvery is Poll checking every interval.
func PollEvery(timeout, interval time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}

// StopOnSignalOrTimeout calls stop on SIGINT/SIGTERM (then exits 130), and a
// few seconds before -test.timeout makes the binary panic, which would skip
// every deferred Stop and leave etcd and kube-apiserver running.
// StartControlPlane arranges this for every control plane it starts.
func StopOnSignalOrTimeout(stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "%v: stopping the control plane\n", s)
		stop()
		os.Exit(130)
	}()
	if !flag.Parsed() {
		flag.Parse()
	}
	f := flag.Lookup("test.timeout")
	if f == nil {
		return
	}
	timeout, ok := f.Value.(flag.Getter).Get().(time.Duration)
	if !ok || timeout <= 0 {
		return
	}
	time.AfterFunc(timeout-min(15*time.Second, timeout/5), func() {
		fmt.Fprintln(os.Stderr, "test timeout is near: stopping the control plane")
		stop()
	})
}

// SyncBuffer is a bytes.Buffer safe for one writer (a process's output, a
// logger) and concurrent readers.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
