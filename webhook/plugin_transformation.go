package webhook

import (
	"encoding/json"
	"fmt"

	jsonpatch "github.com/evanphx/json-patch/v5"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/schemas"
)

// maxAccessChecks bounds resources × namespaces, each of which costs a
// SubjectAccessReview at admission.
const maxAccessChecks = 256

type transformation struct{}

func (transformation) Default(a *Admitter, task *v1alpha1.Task, cfg schemas.Fields) bool {
	if cfg.Has("namespaces") || task.Namespace == "" {
		return false
	}
	v, _ := cfg.Get("resources")
	resources, _ := v.([]any)
	// Only when some resource may be namespaced: cluster-scoped ones take none.
	for _, r := range resources {
		m, _ := r.(map[string]any)
		group, _ := m["group"].(string)
		version, _ := m["version"].(string)
		resource, _ := m["resource"].(string)
		if !a.clusterScoped(v1alpha1.GroupVersionResource{Group: group, Version: version, Resource: resource}) {
			cfg.Set("namespaces", []any{task.Namespace})
			return true
		}
	}
	return false
}

func (transformation) Validate(a *Admitter, _ *v1alpha1.Task, cfg *config) (field.ErrorList, []string) {
	c, ops, fast := transformationFromMap(cfg)
	if !fast {
		var err error
		if c, err = decodeTyped[v1alpha1.TransformationConfig](cfg); err != nil {
			return nil, nil // a type the schema has already reported
		}
	}
	var errs field.ErrorList
	var warnings []string
	for i, ns := range c.Namespaces {
		for _, msg := range validation.IsDNS1123Label(ns) {
			errs = append(errs, field.Invalid(configPath.Child("namespaces").Index(i), ns, msg))
		}
	}
	if a.Scopes != nil {
		for i, r := range c.Resources {
			gvr := schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Resource}
			if _, known := a.Scopes.ClusterScoped(gvr); !known {
				warnings = append(warnings, fmt.Sprintf("spec.config.resources[%d]: the API server does not serve %s/%s now; the Task fails unless it does when the Task runs", i, gvrString(r), r.Version))
			}
		}
	}
	for i, n := range c.Names {
		for _, msg := range validation.IsDNS1123Subdomain(n) {
			// Some kinds (RBAC objects) allow other names; warn rather than refuse.
			warnings = append(warnings, fmt.Sprintf("spec.config.names[%d] %q: %s", i, n, msg))
		}
	}
	if c.LabelSelector != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(c.LabelSelector,
			metav1validation.LabelSelectorValidationOptions{}, configPath.Child("labelSelector"))...)
	}
	if n := len(c.Resources) * max(1, len(c.Namespaces)); n > maxAccessChecks {
		errs = append(errs, field.Invalid(configPath.Child("namespaces"), field.OmitValueType{},
			fmt.Sprintf("resources × namespaces is %d, more than %d: split the transformation into several Tasks", n, maxAccessChecks)))
	}
	// Read from the map, every patch is one DecodePatch accepts (see
	// jsonPatchFromMap); only the checks beyond it are left.
	for i, op := range ops {
		if patch, found := op.(map[string]any)["jsonPatch"]; found {
			errs = append(errs, jsonPatchOpsFromMap(patch.([]any), i)...)
		}
	}
	for i, op := range c.Operations {
		p := operationsPath.Index(i)
		if op.JSONPatch != nil {
			if _, err := jsonpatch.DecodePatch(op.JSONPatch.Raw); err != nil {
				errs = append(errs, field.Invalid(p.Child("jsonPatch"), field.OmitValueType{}, "not a JSON patch: "+err.Error()))
			}
			errs = append(errs, validateJSONPatchOps(op.JSONPatch.Raw, p.Child("jsonPatch"))...)
		}
	}
	return errs, warnings
}

var operationsPath = configPath.Child("operations")

// validateJSONPatchOps checks what RFC 6902 requires of each operation beyond
// its shape: a value for add/replace/test, a from for move/copy.
func validateJSONPatchOps(raw []byte, path *field.Path) field.ErrorList {
	var ops []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ops); err != nil {
		return nil // reported by DecodePatch
	}
	var errs field.ErrorList
	for i, op := range ops {
		var name string
		_ = json.Unmarshal(op["op"], &name)
		_, hasValue := op["value"]
		_, hasFrom := op["from"]
		if err := jsonPatchOpError(name, hasValue, hasFrom, func() *field.Path { return path.Index(i) }); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// jsonPatchOpsFromMap is validateJSONPatchOps for the decoded jsonPatch of
// operation opIndex.
func jsonPatchOpsFromMap(ops []any, opIndex int) field.ErrorList {
	var errs field.ErrorList
	for i, op := range ops {
		o, _ := op.(map[string]any)
		name, _ := o["op"].(string)
		_, hasValue := o["value"]
		_, hasFrom := o["from"]
		at := func() *field.Path { return operationsPath.Index(opIndex).Child("jsonPatch").Index(i) }
		if err := jsonPatchOpError(name, hasValue, hasFrom, at); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// jsonPatchOpError checks one patch operation; at gives its path, built
// only for an error.
func jsonPatchOpError(name string, hasValue, hasFrom bool, at func() *field.Path) *field.Error {
	switch name {
	case "add", "replace", "test":
		if !hasValue {
			return field.Required(at().Child("value"), fmt.Sprintf("%q needs a value", name))
		}
	case "move", "copy":
		if !hasFrom {
			return field.Required(at().Child("from"), fmt.Sprintf("%q needs a from path", name))
		}
	}
	return nil
}

func (transformation) Access(a *Admitter, _ *v1alpha1.Task, cfg *config) []AccessCheck {
	c, _, fast := transformationFromMap(cfg)
	if !fast {
		var err error
		if c, err = decodeTyped[v1alpha1.TransformationConfig](cfg); err != nil {
			return nil
		}
	}
	var checks []AccessCheck
	for i, r := range c.Resources {
		namespaces := c.Namespaces
		if a.clusterScoped(r) || len(namespaces) == 0 {
			namespaces = []string{""}
		}
		for _, ns := range namespaces {
			for _, verb := range []string{"list", "patch"} {
				where := "cluster-wide"
				if ns != "" {
					where = "in namespace " + ns
				}
				checks = append(checks, AccessCheck{
					Field: configPath.Child("resources").Index(i),
					Attributes: authorizationv1.ResourceAttributes{
						Verb: verb, Group: r.Group, Version: r.Version, Resource: r.Resource, Namespace: ns,
					},
					Why: fmt.Sprintf("the transformation would %s %s %s on your behalf", verb, gvrString(r), where),
				})
			}
		}
	}
	return checks
}

func gvrString(r v1alpha1.GroupVersionResource) string {
	if r.Group == "" {
		return r.Resource
	}
	return r.Resource + "." + r.Group
}
