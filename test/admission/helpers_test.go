package admission_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
)

// namespace creates a namespace for one test, with the ServiceAccount
// "default" that kube-controller-manager (which envtest does not run)
// creates in every namespace.
func namespace(t *testing.T, name string) string {
	t.Helper()
	bareNamespace(t, name, nil)
	if err := testutil.EnsureDefaultServiceAccount(context.Background(), k8s, name); err != nil {
		t.Fatal(err)
	}
	return name
}

// bareNamespace creates a namespace with labels and no ServiceAccount, as a
// namespace is before kube-controller-manager got to it.
func bareNamespace(t *testing.T, name string, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := k8s.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

// taskYAML is a Task manifest with the config indented under spec.config.
func taskYAML(name, ns string, plugin v1alpha1.Plugin, config string) string {
	var b strings.Builder
	b.WriteString("apiVersion: automation.astronetes.io/v1alpha1\nkind: Task\nmetadata:\n  name: " + name + "\n  namespace: " + ns + "\nspec:\n  plugin: " + string(plugin) + "\n  config:\n")
	for _, line := range strings.Split(strings.TrimRight(config, "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}
