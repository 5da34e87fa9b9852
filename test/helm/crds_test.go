package helm_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

const (
	taskCRD    = "tasks.automation.astronetes.io"
	taskRunCRD = "taskruns.automation.astronetes.io"
)

// TestCRDUpgradePath installs the chart into a real kube-apiserver and
// follows the Task CRD through what crds/ could not do: helm upgrade
// updates it, crds.keep leaves it (and the Tasks) on uninstall, crds.keep=false
// removes it, crds.enabled=false leaves it alone, and a CRD from an older
// chart (crds/, not owned by Helm) is adopted with --take-ownership, as the
// chart README says, as is its kubectl apply step for crds.enabled=false. The webhooks are off (envtest cannot route to their
// Service) and so is the requester policy, so the test can store a Task as
// the admin.
func TestCRDUpgradePath(t *testing.T) {
	c, kc := cluster(t)
	ctx := t.Context()
	const rel, ns = "crds", "crds-system"
	deleteTaskCRD(ctx, t, c) // a clean start, whatever ran before
	t.Cleanup(func() {
		_, _ = helm(t, "uninstall", rel, "--namespace", ns, "--kubeconfig", kc)
		deleteTaskCRD(context.Background(), t, c)
	})
	chart := copyChart(t)
	base := []string{"--namespace", ns, "--kubeconfig", kc}
	// synchronizationCRD.install=false: auto would install that CRD for this release, and keep it, for the tests after this one.
	values := []string{"--set", "enableWebhooks=false", "--set", "requesterPolicy.enabled=false", "--set", "synchronizationCRD.install=false"}
	run := func(args ...string) {
		t.Helper()
		if args[0] == "install" || args[0] == "upgrade" {
			args = append(args, values...)
		}
		if out, err := helm(t, append(args, base...)...); err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	run("install", rel, chart, "--create-namespace")
	crd := getCRD(ctx, t, c, taskCRD)
	if crd == nil || crd.Annotations["meta.helm.sh/release-name"] != rel || crd.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Fatalf("after install: Task CRD annotations %v, want it owned by the release and kept", crdAnnotations(crd))
	}

	// A new chart version whose CRD has a new printer column.
	addPrinterColumn(t, filepath.Join(chart, "files", "automation.astronetes.io_tasks.yaml"), "Upgraded")
	run("upgrade", rel, chart)
	if !hasPrinterColumn(getCRD(ctx, t, c, taskCRD), "Upgraded") {
		t.Fatal("helm upgrade did not update the Task CRD")
	}

	task := &v1alpha1.Task{ObjectMeta: metav1.ObjectMeta{Name: "survives", Namespace: "default"},
		Spec: v1alpha1.TaskSpec{PluginSpec: v1alpha1.PluginSpec{Plugin: v1alpha1.PluginTransformation}}}
	task.Spec.Config.Raw = []byte(`{"resources":[{"group":"apps","version":"v1","resource":"deployments"}],"operations":[{"mergePatch":{"metadata":{"labels":{"a":"b"}}}}]}`)
	if err := c.Create(ctx, task); err != nil {
		t.Fatal(err)
	}
	run("uninstall", rel)
	if getCRD(ctx, t, c, taskCRD) == nil {
		t.Fatal("crds.keep: helm uninstall deleted the Task CRD")
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(task), task); err != nil {
		t.Fatalf("crds.keep: the Task is gone after uninstall: %v", err)
	}

	// The kept CRD still names the release, so installing it again adopts
	// it; an upgrade to crds.keep=false drops the policy (Helm's three-way
	// merge removes what the last release had and this one has not).
	run("install", rel, chart)
	run("upgrade", rel, chart, "--set", "crds.keep=false")
	if crd := getCRD(ctx, t, c, taskCRD); crd == nil || crd.Annotations["helm.sh/resource-policy"] != "" {
		t.Fatalf("crds.keep=false: Task CRD annotations %v, want no keep policy", crdAnnotations(crd))
	}
	run("uninstall", rel, "--wait")
	waitCRDGone(ctx, t, c)

	// crds.enabled=false: the release neither creates nor touches it.
	run("install", rel, chart, "--set", "crds.enabled=false")
	if getCRD(ctx, t, c, taskCRD) != nil {
		t.Fatal("crds.enabled=false created the Task CRD")
	}
	// The README's step for those who manage the CRD themselves.
	file := filepath.Join(chartDir(), "files", "automation.astronetes.io_tasks.yaml")
	if out, err := kubectl(kc, "apply", "--server-side", "-f", file); err != nil {
		t.Fatalf("kubectl apply --server-side -f %s: %v\n%s", file, err, out)
	}
	run("upgrade", rel, chart, "--set", "crds.enabled=false")
	if crd := getCRD(ctx, t, c, taskCRD); crd == nil || crd.Annotations["meta.helm.sh/release-name"] != "" {
		t.Fatalf("crds.enabled=false: the applied CRD %v was taken over", crdAnnotations(crd))
	}
	run("uninstall", rel)
	if getCRD(ctx, t, c, taskCRD) == nil {
		t.Fatal("crds.enabled=false: uninstall deleted a CRD the release does not own")
	}
	deleteTaskCRD(ctx, t, c)

	// Upgrading from a chart that had the CRD in crds/: Helm installed it
	// without ownership annotations and refuses to take it over silently.
	applyPlainCRD(ctx, t, c)
	out, err := helm(t, slices.Concat([]string{"install", rel, chart}, values, base)...)
	if err == nil || !strings.Contains(err.Error(), "invalid ownership metadata") {
		t.Fatalf("installing over a CRD from crds/: want Helm's ownership error, got %v\n%s", err, out)
	}
	run("install", rel, chart, "--take-ownership")
	crd = getCRD(ctx, t, c, taskCRD)
	if crd == nil || crd.Annotations["meta.helm.sh/release-name"] != rel || !hasPrinterColumn(crd, "Upgraded") {
		t.Fatalf("--take-ownership: Task CRD annotations %v (the new column: %v), want it owned by the release and updated", crdAnnotations(crd), hasPrinterColumn(crd, "Upgraded"))
	}
	// A second release leaves a CRD another release owns alone, and installs.
	run("install", "second", chart, "--set", "fullnameOverride=second")
	if manifest, err := helm(t, "get", "manifest", "second", "--namespace", ns, "--kubeconfig", kc); err != nil || strings.Contains(manifest, "kind: CustomResourceDefinition") {
		t.Errorf("the second release manages the Task CRD too (err %v)", err)
	}
	run("uninstall", "second")
}

func crdAnnotations(crd *apiextensionsv1.CustomResourceDefinition) map[string]string {
	if crd == nil {
		return nil
	}
	return crd.Annotations
}

func copyChart(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "taskgate")
	if err := os.CopyFS(dir, os.DirFS(chartDir())); err != nil {
		t.Fatalf("copy chart: %v", err)
	}
	return dir
}

func readCRD(t *testing.T, path string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(data, crd); err != nil {
		t.Fatal(err)
	}
	return crd
}

func addPrinterColumn(t *testing.T, path, name string) {
	t.Helper()
	crd := readCRD(t, path)
	for i := range crd.Spec.Versions {
		crd.Spec.Versions[i].AdditionalPrinterColumns = append(crd.Spec.Versions[i].AdditionalPrinterColumns,
			apiextensionsv1.CustomResourceColumnDefinition{Name: name, Type: "string", JSONPath: ".spec.plugin"})
	}
	data, err := yaml.Marshal(crd)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func hasPrinterColumn(crd *apiextensionsv1.CustomResourceDefinition, name string) bool {
	if crd == nil {
		return false
	}
	for _, v := range crd.Spec.Versions {
		for _, c := range v.AdditionalPrinterColumns {
			if c.Name == name {
				return true
			}
		}
	}
	return false
}

// applyPlainCRD creates the Task CRD the way Helm's crds/ did: no Helm labels or annotations.
func applyPlainCRD(ctx context.Context, t *testing.T, c client.Client) {
	t.Helper()
	crd := readCRD(t, filepath.Join(chartDir(), "files", "automation.astronetes.io_tasks.yaml"))
	if err := c.Create(ctx, crd); err != nil {
		t.Fatal(err)
	}
}

func deleteTaskCRD(ctx context.Context, t *testing.T, c client.Client) {
	t.Helper()
	// Both of the chart's CRDs: a TaskRun CRD kept (crds.keep) by one release
	// would block the next release's install.
	releaseRuns(ctx, c)
	for _, name := range []string{taskCRD, taskRunCRD} {
		err := c.Delete(ctx, &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: name}})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete CRD %s: %v", name, err)
			return
		}
	}
	waitCRDGone(ctx, t, c)
}

func waitCRDGone(ctx context.Context, t *testing.T, c client.Client) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for getCRD(ctx, t, c, taskCRD) != nil || getCRD(ctx, t, c, taskRunCRD) != nil {
		releaseRuns(ctx, c)
		if time.Now().After(deadline) {
			t.Fatalf("the Task or TaskRun CRD is still there after 60s: Task CRD %v, TaskRun CRD %v",
				crdAnnotations(getCRD(ctx, t, c, taskCRD)), crdAnnotations(getCRD(ctx, t, c, taskRunCRD)))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// releaseRuns removes taskgate's finalizer from every TaskRun an earlier
// test's release left behind when its manager went with the release: with
// no controller to run the cleanup, they would hold the TaskRun CRD's
// deletion forever (the finalizer an operator removes by hand in that case).
func releaseRuns(ctx context.Context, c client.Client) {
	runs := &v1alpha1.TaskRunList{}
	if err := c.List(ctx, runs); err != nil {
		return // the CRD is gone already
	}
	for i := range runs.Items {
		r := &runs.Items[i]
		if len(r.Finalizers) == 0 {
			continue
		}
		patched := r.DeepCopy()
		patched.Finalizers = nil
		_ = c.Patch(ctx, patched, client.MergeFrom(r))
	}
}
