package admission_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/test/testutil"
	"github.com/astronetes/taskgate/webhook"
)

// The two refusals of a change of a TaskRun's spec, told apart by their
// text: the CRD's CEL rule (x-kubernetes-validations, self == oldSelf),
// which the API server applies before it calls any validating webhook, and
// taskgate's webhook (webhook/requester.go), the one that answers where the
// CRD has no such rule (installed from an older chart, or edited by hand).
// A Task's spec is editable (TestTaskIsARunbook).
const (
	crdImmutable     = "spec is immutable: a TaskRun runs what was admitted; create a new TaskRun to run again"
	webhookImmutable = "spec is immutable: a TaskRun runs what was admitted; create a new TaskRun (metadata.generateName works) to run again"
)

const taskRunsCRD = "taskruns.automation.astronetes.io"

// TestSpecImmutable changes a stored TaskRun's spec with the CRD's rule in
// place and with it removed; each time exactly the expected refusal comes
// back. The single-call webhook is a mutating one, called before the API
// server's schema validation, so in that mode taskgate answers in both
// cases. Labels may still change: only spec is frozen.
func TestSpecImmutable(t *testing.T) {
	ns := namespace(t, "immutable")
	must(t, k8s.Create(context.Background(), inlineRun(ns, "once", v1alpha1.PluginCustomImage, echoConfig)))
	withRule := crdImmutable
	if singleCall {
		withRule = webhookImmutable
	}
	tests := []struct {
		name        string
		withoutRule bool
		want        string
	}{
		{name: "CRD rule in place", want: withRule},
		{name: "CRD rule removed", withoutRule: true, want: webhookImmutable},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.withoutRule {
				removeImmutabilityRule(t)
			}
			image := fmt.Sprintf("busybox:1.%d", 40+i)
			// The API server serves a changed CRD a moment after storing it:
			// until then the CRD's refusal may still come back; an admitted
			// change ends the test at once.
			testutil.Eventually(t, "the refusal "+tt.want, func() error {
				err := changeImage(t, ns, "once", image)
				switch {
				case err == nil:
					t.Fatalf("spec change to %s admitted; want it refused with %q", image, tt.want)
				case !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err):
					t.Fatalf("spec change: %v; want a refusal with %q", err, tt.want)
				case !strings.Contains(err.Error(), tt.want):
					return fmt.Errorf("refusal %q, want one with %q", err, tt.want)
				}
				return nil
			})
		})
	}
	if out, err := kubectl(t, "", "label", "-n", ns, "taskrun", "once", "team=a"); err != nil {
		t.Errorf("label: %v\n%s; want labels changeable", err, out)
	}
}

// changeImage updates the TaskRun's spec.taskSpec.config.image as the admin.
func changeImage(t *testing.T, ns, name, image string) error {
	t.Helper()
	ctx := context.Background() // also from a Cleanup, after t.Context is done
	var run v1alpha1.TaskRun
	must(t, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &run))
	run.Spec.TaskSpec.Config = runtime.RawExtension{Raw: []byte(`{"image":"` + image + `","command":["echo"]}`)}
	return k8s.Update(ctx, &run)
}

// removeImmutabilityRule removes the x-kubernetes-validations of the
// TaskRun CRD's spec until the test ends, then puts them back and waits
// until the API server applies them again.
func removeImmutabilityRule(t *testing.T) {
	t.Helper()
	var crd apiextensionsv1.CustomResourceDefinition
	must(t, k8s.Get(t.Context(), client.ObjectKey{Name: taskRunsCRD}, &crd))
	saved := make([]apiextensionsv1.ValidationRules, len(crd.Spec.Versions))
	for i := range crd.Spec.Versions {
		spec := specSchema(t, &crd, i)
		saved[i] = spec.XValidations
		spec.XValidations = nil
		crd.Spec.Versions[i].Schema.OpenAPIV3Schema.Properties["spec"] = spec
	}
	if len(saved) == 0 || !slices.ContainsFunc(saved[0], func(r apiextensionsv1.ValidationRule) bool { return r.Rule == "self == oldSelf" }) {
		t.Fatalf("the TaskRun CRD's spec has validations %+v; want the rule self == oldSelf to remove", saved)
	}
	must(t, k8s.Update(t.Context(), &crd))
	t.Cleanup(func() {
		ctx := context.Background()
		var crd apiextensionsv1.CustomResourceDefinition
		if err := k8s.Get(ctx, client.ObjectKey{Name: taskRunsCRD}, &crd); err != nil {
			t.Fatalf("get the TaskRun CRD to restore it: %v", err)
		}
		for i := range crd.Spec.Versions {
			spec := specSchema(t, &crd, i)
			spec.XValidations = saved[i]
			crd.Spec.Versions[i].Schema.OpenAPIV3Schema.Properties["spec"] = spec
		}
		if err := k8s.Update(ctx, &crd); err != nil {
			t.Fatalf("restore the TaskRun CRD's immutability rule: %v", err)
		}
		if singleCall {
			return // taskgate answers first in this mode: nothing tells the rule is served
		}
		ns := namespace(t, "immutable-restored")
		if err := k8s.Create(ctx, inlineRun(ns, "probe", v1alpha1.PluginCustomImage, echoConfig)); err != nil {
			t.Fatalf("create: %v", err)
		}
		testutil.Eventually(t, "the CRD's rule served again", func() error {
			if err := changeImage(t, ns, "probe", "busybox:1.99"); err == nil || !strings.Contains(err.Error(), crdImmutable) {
				return fmt.Errorf("spec change: %v, want the CRD's refusal %q", err, crdImmutable)
			}
			return nil
		})
	})
}

func specSchema(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition, version int) apiextensionsv1.JSONSchemaProps {
	t.Helper()
	v := crd.Spec.Versions[version]
	if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
		t.Fatalf("the CRD's version %s has no schema", v.Name)
	}
	spec, ok := v.Schema.OpenAPIV3Schema.Properties["spec"]
	if !ok {
		t.Fatalf("the CRD's version %s has no spec property", v.Name)
	}
	return spec
}

// TestConfigBounds sends configs past the webhook's bounds (webhook
// DefaultMaxConfigBytes, DefaultMaxConfigDepth) through the API server,
// which takes them (its own limits are far larger): taskgate refuses each
// with the field path and the bound, and nothing is stored.
func TestConfigBounds(t *testing.T) {
	ns := namespace(t, "bounds")
	deep := strings.Repeat("[", webhook.DefaultMaxConfigDepth+1) + strings.Repeat("]", webhook.DefaultMaxConfigDepth+1)
	tests := []struct {
		name, config, want string
	}{
		{name: "oversized", want: fmt.Sprintf("spec.config: Too long: may not be more than %d bytes", webhook.DefaultMaxConfigBytes),
			config: `{"image":"busybox:1.36","command":["echo"],"args":["` + strings.Repeat("x", webhook.DefaultMaxConfigBytes) + `"]}`},
		{name: "too deep", want: fmt.Sprintf("spec.config: Invalid value: nested more than %d levels deep", webhook.DefaultMaxConfigDepth),
			config: `{"image":"busybox:1.36","command":["echo"],"args":` + deep + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := &v1alpha1.Task{ObjectMeta: metav1.ObjectMeta{Name: strings.ReplaceAll(tt.name, " ", "-"), Namespace: ns},
				Spec: v1alpha1.TaskSpec{PluginSpec: v1alpha1.PluginSpec{Plugin: v1alpha1.PluginCustomImage, Config: runtime.RawExtension{Raw: []byte(tt.config)}}}}
			err := k8s.Create(t.Context(), task)
			var status apierrors.APIStatus
			if err == nil || !errors.As(err, &status) || !strings.Contains(err.Error(), `admission webhook "`) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("create a %d-byte config: %v; want taskgate's refusal with %q", len(tt.config), err, tt.want)
			}
			if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(task), &v1alpha1.Task{}); !apierrors.IsNotFound(err) {
				t.Errorf("get the refused Task: %v, want NotFound", err)
			}
		})
	}
}
