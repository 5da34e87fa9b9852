package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// The harnesses give their managers the RBAC that the Helm chart renders
// (charts/taskgate/templates/rbac.yaml), not a hand-written copy of it: the
// chart is the one source of truth, and a rule added to or dropped from it
// reaches every harness at once.

// HelmPath is the helm binary `make envtest` puts beside kube-apiserver.
func HelmPath() string { return filepath.Join(AssetsDir(), "helm") }

// Render runs `helm template taskgate <chartDir> --namespace taskgate-system`
// offline with values (a YAML document of chart values) and returns the
// objects of template (e.g. "templates/rbac.yaml"). helm gets config, cache
// and data homes of its own, removed afterwards: nothing is read from or
// written to the user's helm setup.
func Render(ctx context.Context, helm, chartDir, values, template string) ([]unstructured.Unstructured, error) {
	home, err := os.MkdirTemp("", "taskgate-helm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(home)
	valuesFile := filepath.Join(home, "values.yaml")
	if err := os.WriteFile(valuesFile, []byte(values), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, helm, "template", "taskgate", chartDir, "--namespace", "taskgate-system",
		"-f", valuesFile, "--show-only", template)
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm template %s --show-only %s: %w\n%s", chartDir, template, err, stderr.String())
	}
	var objs []unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(&stdout, 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, fmt.Errorf("decode %s: %w", template, err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// ChartClusterRole returns the manager ClusterRole that the chart's
// templates/rbac.yaml renders with values (see Render). Callers rename it
// and bind it to their manager user.
func ChartClusterRole(ctx context.Context, helm, chartDir, values string) (*rbacv1.ClusterRole, error) {
	objs, err := Render(ctx, helm, chartDir, values, "templates/rbac.yaml")
	if err != nil {
		return nil, err
	}
	var role *rbacv1.ClusterRole
	for i := range objs {
		if objs[i].GetKind() != "ClusterRole" {
			continue
		}
		if role != nil {
			return nil, errors.New("the chart's templates/rbac.yaml renders more than one ClusterRole")
		}
		role = &rbacv1.ClusterRole{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(objs[i].Object, role); err != nil {
			return nil, fmt.Errorf("decode the chart's ClusterRole: %w", err)
		}
	}
	if role == nil {
		return nil, errors.New("the chart's templates/rbac.yaml renders no ClusterRole")
	}
	if len(role.Rules) == 0 {
		return nil, fmt.Errorf("the chart's ClusterRole %s has no rules", role.Name)
	}
	return role, nil
}

// ChartRules is rules as the chart value transformationRules takes them:
// apiGroups and resources only (the chart adds the verbs of its mode).
func ChartRules(rules []rbacv1.PolicyRule) []map[string][]string {
	out := make([]map[string][]string, 0, len(rules))
	for _, r := range rules {
		out = append(out, map[string][]string{"apiGroups": r.APIGroups, "resources": r.Resources})
	}
	return out
}
