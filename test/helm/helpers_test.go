package helm_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/astronetes/taskgate/test/testutil"
)

const (
	releaseName = "taskgate"
	releaseNS   = "taskgate-system"
)

func repoRoot() string { return testutil.RepoRoot() }

func chartDir() string { return filepath.Join(repoRoot(), "charts", "taskgate") }

// assetsDir is where `make envtest` puts etcd, kube-apiserver, kubectl and helm.
func assetsDir() string { return testutil.AssetsDir() }

// missingAssets names the binaries of assetsDir that are not there.
func missingAssets(names ...string) []string {
	var missing []string
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(assetsDir(), n)); err != nil {
			missing = append(missing, n)
		}
	}
	return missing
}

// requireAssets skips the test when binaries are missing on a developer's
// machine, and fails it in CI, where a skipped test would hide a broken setup.
func requireAssets(t testing.TB, names ...string) {
	t.Helper()
	if missing := missingAssets(names...); len(missing) > 0 {
		msg := "missing " + strings.Join(missing, ", ") + " in " + assetsDir() + ": run `make envtest`"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// helm runs the helm binary with its own config, cache and data homes so the
// tests neither read nor write the user's.
func helm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	requireAssets(t, "helm")
	home := helmHome(t)
	cmd := exec.Command(filepath.Join(assetsDir(), "helm"), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = errors.New(strings.TrimSpace(stderr.String()) + ": " + err.Error())
	}
	return stdout.String(), err
}

var sharedHelmHome string

func helmHome(t testing.TB) string {
	if sharedHelmHome == "" {
		dir, err := os.MkdirTemp("", "taskgate-helm-home-")
		if err != nil {
			t.Fatal(err)
		}
		sharedHelmHome = dir
	}
	return sharedHelmHome
}

// render runs `helm template` for the chart in releaseNS with the given
// --set/--set-json style arguments and decodes every object that `helm
// install` creates (--skip-tests: the helm test hooks are in selftest_test.go).
func render(t testing.TB, args ...string) manifest {
	t.Helper()
	out, err := helm(t, append([]string{"template", releaseName, chartDir(), "--namespace", releaseNS, "--skip-tests"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v", args, err)
	}
	return decode(t, out)
}

// manifest is a rendered chart, one entry per object.
type manifest []*unstructured.Unstructured

func decode(t testing.TB, text string) manifest {
	t.Helper()
	var m manifest
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(text)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return m
		}
		if err != nil {
			t.Fatalf("read manifest: %v", err)
		}
		obj := map[string]any{}
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatalf("decode %q: %v", doc, err)
		}
		if len(obj) == 0 {
			continue
		}
		m = append(m, &unstructured.Unstructured{Object: obj})
	}
}

// find returns the objects of a kind.
func (m manifest) find(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range m {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// one decodes the only object of a kind into a typed object, failing when
// there is not exactly one.
func one[T any](t testing.TB, m manifest, kind string) *T {
	t.Helper()
	objs := m.find(kind)
	if len(objs) != 1 {
		t.Fatalf("want exactly one %s, got %d", kind, len(objs))
	}
	return typed[T](t, objs[0])
}

func typed[T any](t testing.TB, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := k8sruntime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s does not decode strictly: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

func TestMain(m *testing.M) {
	log.SetLogger(zap.New(zap.WriteTo(io.Discard))) // envtest's start-up chatter
	code := m.Run()
	stopEnv()
	if sharedHelmHome != "" {
		_ = os.RemoveAll(sharedHelmHome)
	}
	os.Exit(code)
}

// managerRole decodes the manager's ClusterRole (the chart's others are the
// aggregated view/edit roles of aggregate-roles.yaml).
func managerRole(t testing.TB, m manifest) *rbacv1.ClusterRole {
	t.Helper()
	var roles manifest
	for _, o := range m.find("ClusterRole") {
		if strings.HasSuffix(o.GetName(), "-manager") {
			roles = append(roles, o)
		}
	}
	return one[rbacv1.ClusterRole](t, roles, "ClusterRole")
}
