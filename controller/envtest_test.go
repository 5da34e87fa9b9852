package controller

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/load/kit"
	"github.com/astronetes/taskgate/test/testutil"
)

// The tests in this package that depend on what the API server decides
// (AlreadyExists, what is stored when) share one real kube-apiserver and etcd
// (envtest, KUBEBUILDER_ASSETS), started by the first of them that needs
// it; the pure unit tests never start it. TestMain stops it however the
// binary ends (see testutil.StopOnSignalOrTimeout), also when a test fails.
var (
	envOnce sync.Once
	envCP   *kit.ControlPlane
	envErr  error
	envStop sync.Once
)

func TestMain(m *testing.M) {
	stop := func() {
		envStop.Do(func() {
			if envCP != nil {
				if err := envCP.Stop(); err != nil {
					fmt.Fprintln(os.Stderr, err)
				}
			}
		})
	}
	testutil.StopOnSignalOrTimeout(stop)
	code := m.Run()
	stop()
	os.Exit(code)
}

// controlPlane returns the package's control plane, starting it on first use.
func controlPlane(t *testing.T) *kit.ControlPlane {
	t.Helper()
	envOnce.Do(func() { envCP, envErr = kit.StartControlPlane("..") })
	if envErr != nil {
		t.Fatalf("envtest: %v", envErr)
	}
	return envCP
}

// envNamespace creates a namespace of the test's own.
func envNamespace(t *testing.T, cp *kit.ControlPlane) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ctl-"}}
	if err := cp.Client.Create(t.Context(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

// envDeps are runner dependencies talking to the real API server through
// cfg, in actas.ModeController (the clients' identity is not what these
// tests are about): client (cached) stands in for the API server like the
// manager's cache would, reader is the API server itself.
func envDeps(t *testing.T, cfg *rest.Config, cached client.Client) *deps {
	t.Helper()
	scheme := testutil.Scheme()
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := client.New(cfg, client.Options{Scheme: scheme, Mapper: mapper, HTTPClient: httpClient})
	if err != nil {
		t.Fatal(err)
	}
	if cached == nil {
		cached = direct
	}
	factory, err := actas.NewFactory(actas.ModeController, cfg, scheme, mapper)
	if err != nil {
		t.Fatal(err)
	}
	return &deps{client: cached, reader: direct, scheme: scheme, recorder: events.NewFakeRecorder(100),
		clock: clock.RealClock{}, actAs: factory}
}

// staleCache is a client whose reads do not see the objects for which hide
// says so yet, as the manager's informer cache lags behind a create it has
// not received the watch event of. Writes go to the API server.
type staleCache struct {
	client.Client
	hide func(client.Object) bool
}

func (s *staleCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if err := s.Client.Get(ctx, key, obj, opts...); err != nil {
		return err
	}
	if s.hide(obj) {
		gvk, _ := apiutil.GVKForObject(obj, s.Scheme())
		return apierrors.NewNotFound(schema.GroupResource{Group: gvk.Group, Resource: strings.ToLower(gvk.Kind) + "s"}, key.Name)
	}
	return nil
}

// hideChildren hides every object carrying the run label: the cache has
// seen none of the run's children.
func hideChildren(o client.Object) bool {
	_, ok := o.GetLabels()[v1alpha1.TaskRunLabel]
	return ok
}

// newEnvRun creates a one-off TaskRun (inline spec.taskSpec) in ns through
// the API server (no webhook runs here: its spec is taken as given) and
// returns it with its UID.
func newEnvRun(t *testing.T, c client.Client, ns, name string, plugin v1alpha1.Plugin, config string) *v1alpha1.TaskRun {
	t.Helper()
	task := &v1alpha1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.TaskRunSpec{TaskSpec: &v1alpha1.PluginSpec{Plugin: plugin, Config: runtime.RawExtension{Raw: []byte(config)}}},
	}
	if err := c.Create(t.Context(), task); err != nil {
		t.Fatalf("create taskrun %s: %v", name, err)
	}
	return task
}

// discoveryFor is a discovery client of cfg.
func discoveryFor(t *testing.T, cfg *rest.Config) discovery.DiscoveryInterface {
	t.Helper()
	d, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
