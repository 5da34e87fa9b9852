package webhook

import (
	"encoding/json"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// The plugins check fields of their typed config. Decoding the raw JSON a
// second time into the typed struct cost as much as the schema check for a
// small config, so the readers below build it from the decoded map instead,
// when they can give exactly what json.Unmarshal would: the document repeats
// no key (config.unique), every key is a field's exact name, and every value
// has its field's type (no nulls). Anything else (a key in another case, an
// unknown field, a quantity, an env valueFrom...) is left to json.Unmarshal
// by returning ok false. TestTypedReaders and FuzzTypedReaders hold the
// readers to json.Unmarshal.

// typedConfig returns the typed config from fromMap when it can read it,
// else from json.Unmarshal of the raw config.
func typedConfig[T any](c *config, fromMap func(*config) (*T, bool)) (*T, error) {
	if t, ok := fromMap(c); ok {
		return t, nil
	}
	return decodeTyped[T](c)
}

// reader reads typed values out of a decoded document; the first value it
// cannot read as json.Unmarshal would turns ok false for good.
type reader struct{ ok bool }

// object returns v as an object whose keys are all among fields.
func (r *reader) object(v any, fields ...string) map[string]any {
	m, isObj := v.(map[string]any)
	if !isObj {
		r.ok = false
		return nil
	}
	for k := range m {
		if !slices.Contains(fields, k) {
			r.ok = false
		}
	}
	return m
}

func (r *reader) str(v any) string {
	s, isStr := v.(string)
	if !isStr {
		r.ok = false
	}
	return s
}

// optStr reads an optional string field: absent is "".
func (r *reader) optStr(m map[string]any, key string) string {
	v, found := m[key]
	if !found {
		return ""
	}
	return r.str(v)
}

// list returns v as an array; absent (nil, !found) is a nil slice.
func (r *reader) list(v any, found bool) []any {
	if !found {
		return nil
	}
	l, isList := v.([]any)
	if !isList {
		r.ok = false
	}
	return l
}

// strs reads an optional []string field; present but empty is an empty,
// non-nil slice, as json.Unmarshal makes it.
func (r *reader) strs(m map[string]any, key string) []string {
	v, found := m[key]
	l := r.list(v, found)
	if l == nil {
		return nil
	}
	out := make([]string, len(l))
	for i, e := range l {
		out[i] = r.str(e)
	}
	return out
}

// strMap reads an optional map[string]string field.
func (r *reader) strMap(m map[string]any, key string) map[string]string {
	v, found := m[key]
	if !found {
		return nil
	}
	obj, isObj := v.(map[string]any)
	if !isObj {
		r.ok = false
		return nil
	}
	out := make(map[string]string, len(obj))
	for k, e := range obj {
		out[k] = r.str(e)
	}
	return out
}

// optBool reads an optional bool field: absent is nil.
func (r *reader) optBool(m map[string]any, key string) *bool {
	v, found := m[key]
	if !found {
		return nil
	}
	b, isBool := v.(bool)
	if !isBool {
		r.ok = false
	}
	return &b
}

// optInt64 reads an optional int64 field as json.Unmarshal parses one:
// absent is nil.
func (r *reader) optInt64(m map[string]any, key string) *int64 {
	v, found := m[key]
	if !found {
		return nil
	}
	n, isNum := v.(json.Number)
	if !isNum {
		r.ok = false
		return nil
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		r.ok = false
	}
	return &i
}

// optInt32 reads an optional int32 field as json.Unmarshal parses one:
// absent is nil.
func (r *reader) optInt32(m map[string]any, key string) *int32 {
	i64 := r.optInt64(m, key)
	if i64 == nil {
		return nil
	}
	i := int32(*i64)
	if int64(i) != *i64 {
		r.ok = false
	}
	return &i
}

// customImageFromMap reads a custom-image config; resources and env
// valueFrom are left to json.Unmarshal (quantities parse their raw text).
func customImageFromMap(c *config) (*v1alpha1.CustomImageConfig, bool) {
	if !c.unique {
		return nil, false
	}
	r := reader{ok: true}
	m := r.object(c.value, "image", "command", "args", "env", "namespace", "serviceAccountName", "clusterRole", "timeoutSeconds", "retries",
		"securityContext", "nodeSelector", "tolerations", "imagePullSecrets", "automountServiceAccountToken")
	out := &v1alpha1.CustomImageConfig{
		Image:                        r.optStr(m, "image"),
		Command:                      r.strs(m, "command"),
		Args:                         r.strs(m, "args"),
		Namespace:                    r.optStr(m, "namespace"),
		ServiceAccountName:           r.optStr(m, "serviceAccountName"),
		ClusterRole:                  r.optStr(m, "clusterRole"),
		TimeoutSeconds:               r.optInt64(m, "timeoutSeconds"),
		Retries:                      r.optInt32(m, "retries"),
		NodeSelector:                 r.strMap(m, "nodeSelector"),
		AutomountServiceAccountToken: r.optBool(m, "automountServiceAccountToken"),
	}
	if v, found := m["env"]; found {
		l := r.list(v, true)
		out.Env = make([]corev1.EnvVar, len(l))
		for i, e := range l {
			env := r.object(e, "name", "value")
			out.Env[i] = corev1.EnvVar{Name: r.optStr(env, "name"), Value: r.optStr(env, "value")}
		}
	}
	if v, found := m["securityContext"]; found {
		out.SecurityContext = r.securityContext(v)
	}
	if v, found := m["tolerations"]; found {
		l := r.list(v, true)
		out.Tolerations = make([]corev1.Toleration, len(l))
		for i, e := range l {
			t := r.object(e, "key", "operator", "value", "effect", "tolerationSeconds")
			out.Tolerations[i] = corev1.Toleration{
				Key: r.optStr(t, "key"), Operator: corev1.TolerationOperator(r.optStr(t, "operator")), Value: r.optStr(t, "value"),
				Effect: corev1.TaintEffect(r.optStr(t, "effect")), TolerationSeconds: r.optInt64(t, "tolerationSeconds"),
			}
		}
	}
	if v, found := m["imagePullSecrets"]; found {
		l := r.list(v, true)
		out.ImagePullSecrets = make([]corev1.LocalObjectReference, len(l))
		for i, e := range l {
			out.ImagePullSecrets[i].Name = r.optStr(r.object(e, "name"), "name")
		}
	}
	return out, r.ok
}

// securityContext reads a custom-image config's securityContext.
func (r *reader) securityContext(v any) *v1alpha1.CustomImageSecurityContext {
	m := r.object(v, "runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem", "allowPrivilegeEscalation",
		"privileged", "seccompProfile", "capabilities")
	out := &v1alpha1.CustomImageSecurityContext{
		RunAsUser:                r.optInt64(m, "runAsUser"),
		RunAsGroup:               r.optInt64(m, "runAsGroup"),
		RunAsNonRoot:             r.optBool(m, "runAsNonRoot"),
		ReadOnlyRootFilesystem:   r.optBool(m, "readOnlyRootFilesystem"),
		AllowPrivilegeEscalation: r.optBool(m, "allowPrivilegeEscalation"),
		Privileged:               r.optBool(m, "privileged"),
	}
	if v, found := m["seccompProfile"]; found {
		sp := r.object(v, "type", "localhostProfile")
		out.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileType(r.optStr(sp, "type"))}
		if _, found := sp["localhostProfile"]; found {
			p := r.optStr(sp, "localhostProfile")
			out.SeccompProfile.LocalhostProfile = &p
		}
	}
	if v, found := m["capabilities"]; found {
		caps := r.object(v, "add")
		out.Capabilities = &v1alpha1.CustomImageCapabilities{}
		if add := r.strs(caps, "add"); add != nil {
			out.Capabilities.Add = make([]corev1.Capability, len(add))
			for i, a := range add {
				out.Capabilities.Add[i] = corev1.Capability(a)
			}
		}
	}
	return out
}

// transformationFromMap reads a transformation config but its operations,
// whose patches it checks itself (see jsonPatchFromMap); operations are
// returned as decoded.
func transformationFromMap(c *config) (*v1alpha1.TransformationConfig, []any, bool) {
	if !c.unique {
		return nil, nil, false
	}
	r := reader{ok: true}
	m := r.object(c.value, "resources", "namespaces", "names", "labelSelector", "operations")
	out := &v1alpha1.TransformationConfig{
		Namespaces: r.strs(m, "namespaces"),
		Names:      r.strs(m, "names"),
	}
	if v, found := m["resources"]; found {
		l := r.list(v, true)
		out.Resources = make([]v1alpha1.GroupVersionResource, len(l))
		for i, e := range l {
			gvr := r.object(e, "group", "version", "resource", "scope")
			out.Resources[i] = v1alpha1.GroupVersionResource{
				Group: r.optStr(gvr, "group"), Version: r.optStr(gvr, "version"), Resource: r.optStr(gvr, "resource"),
				Scope: v1alpha1.ResourceScope(r.optStr(gvr, "scope")),
			}
		}
	}
	if v, found := m["labelSelector"]; found {
		sel := r.object(v, "matchLabels", "matchExpressions")
		out.LabelSelector = &metav1.LabelSelector{MatchLabels: r.strMap(sel, "matchLabels")}
		if v, found := sel["matchExpressions"]; found {
			l := r.list(v, true)
			out.LabelSelector.MatchExpressions = make([]metav1.LabelSelectorRequirement, len(l))
			for i, e := range l {
				req := r.object(e, "key", "operator", "values")
				out.LabelSelector.MatchExpressions[i] = metav1.LabelSelectorRequirement{
					Key: r.optStr(req, "key"), Operator: metav1.LabelSelectorOperator(r.optStr(req, "operator")), Values: r.strs(req, "values"),
				}
			}
		}
	}
	v, found := m["operations"]
	ops := r.list(v, found)
	for _, op := range ops {
		o := r.object(op, "jsonPatch", "mergePatch")
		if p, found := o["jsonPatch"]; found && !jsonPatchFromMap(p) {
			return nil, nil, false
		}
		if p, found := o["mergePatch"]; found && p == nil {
			return nil, nil, false // null: json.Unmarshal leaves the field nil
		}
	}
	if !r.ok {
		return nil, nil, false
	}
	return out, ops, true
}

// jsonPatchFromMap reports whether a decoded jsonPatch is one that
// jsonpatch.DecodePatch accepts for sure: a list of objects, each with a
// known op, a string path, a value for add and replace and a string from for
// move and copy. Any other is left to DecodePatch and its error message.
func jsonPatchFromMap(v any) bool {
	ops, isList := v.([]any)
	if !isList {
		return false
	}
	for _, op := range ops {
		o, isObj := op.(map[string]any)
		if !isObj {
			return false
		}
		name, _ := o["op"].(string)
		switch name {
		case "add", "replace":
			if _, has := o["value"]; !has {
				return false
			}
		case "move", "copy":
			if _, isStr := o["from"].(string); !isStr {
				return false
			}
		case "remove", "test":
		default:
			return false
		}
		if _, isStr := o["path"].(string); !isStr {
			return false
		}
	}
	return true
}

// runSyncFromMap reads a run-synchronization config but template.spec.config,
// which the plugin reads from the decoded map (it is the synchronization
// plugin's, checked against that plugin's schema).
func runSyncFromMap(c *config) (*v1alpha1.RunSynchronizationConfig, bool) {
	if !c.unique {
		return nil, false
	}
	r := reader{ok: true}
	m := r.object(c.value, "template")
	out := &v1alpha1.RunSynchronizationConfig{}
	if v, found := m["template"]; found {
		tmpl := r.object(v, "metadata", "spec")
		if v, found := tmpl["metadata"]; found {
			meta := r.object(v, "labels", "annotations")
			out.Template.Metadata = v1alpha1.SynchronizationTemplateMeta{
				Labels: r.strMap(meta, "labels"), Annotations: r.strMap(meta, "annotations"),
			}
		}
		if v, found := tmpl["spec"]; found {
			spec := r.object(v, "restartPolicy", "plugin", "config")
			out.Template.Spec.RestartPolicy = r.optStr(spec, "restartPolicy")
			out.Template.Spec.Plugin = r.optStr(spec, "plugin")
			if cfg, found := spec["config"]; found && cfg == nil {
				return nil, false
			}
		}
	}
	return out, r.ok
}
