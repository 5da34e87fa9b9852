package webhook

import (
	"encoding/json"
	"fmt"

	jsonpatch "github.com/evanphx/json-patch/v5"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

type transformation struct{}

// Default fills in each resource's scope, the one its rights are checked in
// (see checkedScope), and the Task's namespace as namespaces when some
// resource may be namespaced.
func (transformation) Default(a *Admitter, task *v1alpha1.Task, cfg map[string]any) bool {
	resources, _ := cfg["resources"].([]any)
	changed, namespaced := false, false
	for _, r := range resources {
		m, isObj := r.(map[string]any)
		if !isObj {
			continue
		}
		group, _ := m["group"].(string)
		version, _ := m["version"].(string)
		resource, _ := m["resource"].(string)
		gvr := v1alpha1.GroupVersionResource{Group: group, Version: version, Resource: resource}
		scope, known := a.scopeOf(gvr)
		// A resource not served now may be namespaced when the Task runs.
		namespaced = namespaced || scope != v1alpha1.ScopeCluster
		if _, has := m["scope"]; has || (!known && a.Scopes == nil) {
			continue // the user's, checked by Validate; or no cluster to ask
		}
		if !known {
			scope = v1alpha1.ScopeCluster // not served: checked cluster-wide
		}
		m["scope"] = string(scope)
		changed = true
	}
	if _, has := cfg["namespaces"]; namespaced && !has && task.Namespace != "" {
		cfg["namespaces"] = []any{task.Namespace}
		changed = true
	}
	return changed
}

func (transformation) Validate(a *Admitter, _ *v1alpha1.Task, cfg *config) (field.ErrorList, []string) {
	c, err := decodeTyped[v1alpha1.TransformationConfig](cfg)
	if err != nil {
		return nil, nil // a type the schema has already reported
	}
	var errs field.ErrorList
	var warnings []string
	for i, ns := range c.Namespaces {
		for _, msg := range validation.IsDNS1123Label(ns) {
			errs = append(errs, field.Invalid(configPath.Child("namespaces").Index(i), ns, msg))
		}
	}
	for i, r := range c.Resources {
		e, w := validateScope(a, r, configPath.Child("resources").Index(i))
		if e != nil {
			errs = append(errs, e)
		}
		if w != "" {
			warnings = append(warnings, fmt.Sprintf("spec.config.resources[%d]: %s", i, w))
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
	if n := transformationCheckCount(a, c); n > MaxAccessChecks {
		at := configPath.Child("namespaces")
		if len(c.Namespaces) == 0 {
			at = configPath.Child("resources")
		}
		errs = append(errs, field.Invalid(at, field.OmitValueType{}, fmt.Sprintf(errTooManyChecks, n, MaxAccessChecks)))
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
	c, err := decodeTyped[v1alpha1.TransformationConfig](cfg)
	if err != nil {
		return nil
	}
	var checks []AccessCheck
	for i, r := range c.Resources {
		at := configPath.Child("resources").Index(i)
		for _, ns := range checkedNamespaces(a, r, c.Namespaces) {
			checks = append(checks, resourceChecks(r, ns, at)...)
		}
	}
	return checks
}
