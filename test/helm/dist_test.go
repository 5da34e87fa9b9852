package helm_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestDistUpToDate renders dist/ again with the Makefile's own recipe and
// compares: a chart change without `make dist` fails here.
func TestDistUpToDate(t *testing.T) {
	requireAssets(t, "helm")
	tmp := t.TempDir()
	cmd := exec.Command("make", "--no-print-directory", "-s", "dist", "DIST_DIR="+tmp, "HELM="+filepath.Join(assetsDir(), "helm"))
	cmd.Dir = repoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make dist: %v\n%s", err, out)
	}
	for _, name := range []string{"install.yaml", "synchronization-crd.yaml"} {
		want, err := os.ReadFile(filepath.Join(tmp, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(repoRoot(), "dist", name))
		if err != nil {
			t.Fatalf("%v: run `make dist` and commit dist/", err)
		}
		if string(got) != string(want) {
			t.Errorf("dist/%s is stale: run `make dist` and commit it", name)
		}
	}
}
