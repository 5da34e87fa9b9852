package schemas

import "github.com/astronetes/taskgate/api/v1alpha1"

// The rules below are the ones admission and the API server check in Go
// (webhook/plugin_*.go, k8s.io/apimachinery's validation), written as JSON
// Schema for task.json, so an editor or a CI linter refuses what the
// webhook refuses without a cluster. Only rules a schema can state are
// here; TaskSchemaUndecided lists the rest. task_test.go holds each
// pattern to the Go function it mirrors, and cmd/taskgate's tests hold
// task.json to the webhook's verdict on every test case.
//
// Patterns use only what ECMA-262 (editors, ajv) and RE2 (Go) both read
// the same way: no lookaround, no backreferences.

// Patterns, anchored, for the string formats of k8s.io/apimachinery's
// validation package.
const (
	// PatternDNSLabel is validation.IsDNS1123Label (with maxLength 63).
	PatternDNSLabel = `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// PatternDNSSubdomain is validation.IsDNS1123Subdomain (with maxLength 253).
	PatternDNSSubdomain = `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// PatternGenerateName is a metadata.generateName the API server
	// accepts and turns into a valid name (it appends five letters or
	// digits): a DNS subdomain, or one whose last label is cut short and
	// ended by "-".
	PatternGenerateName = `^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*|([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)*[a-z0-9][-a-z0-9]*-)$`
	// PatternLabelKey is validation.IsQualifiedName: an optional DNS
	// subdomain prefix and "/", then a name of 1 to 63 characters. (A prefix
	// longer than 253 characters is not caught.)
	PatternLabelKey = `^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`
	// PatternAnnotationKey is PatternLabelKey in any case, as
	// ValidateAnnotations lower-cases a key before checking it.
	PatternAnnotationKey = `^([A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`
	// PatternLabelValue is validation.IsValidLabelValue (with maxLength 63).
	PatternLabelValue = `^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`
	// PatternEnvVarName is validation.IsEnvVarName's expression; the
	// envVarName definition adds its "not . or .." rules.
	PatternEnvVarName = `^[-._a-zA-Z][-._a-zA-Z0-9]*$`
	// PatternQuantity is a string resource.ParseQuantity reads as a
	// quantity that is not negative, as custom-image's resources take them:
	// a decimal with an optional binary or decimal suffix or an exponent,
	// a minus sign only before zero. It wants a digit before the suffix,
	// where ParseQuantity reads "k", "." or "-" as zero.
	PatternQuantity = `^(\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)|-(0+(\.0*)?|\.0+))([KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]+)?$`
)

// TaskSchemaUndecided lists what the webhook or the API server refuses
// that task.json cannot: rules that compare two fields' values, need the
// cluster, or bound sizes a schema cannot count.
var TaskSchemaUndecided = []string{
	"custom-image spec.config.namespace other than the Task's namespace (the schema cannot compare it with metadata.namespace)",
	"custom-image resources.requests above resources.limits (comparing quantities)",
	"custom-image clusterRole outside the installation's allowedClusterRoles (an installation setting)",
	"kubernetes-object-transformation resources[].scope contradicting the API server's discovery (needs the cluster)",
	"kubernetes-object-transformation more namespaces x resources than admission checks (a product of two lengths)",
	"spec.config over 128 KiB or nested deeper than 32 levels, and a JSON object repeating a key",
	"metadata.annotations (and template.metadata.annotations) over 256 KiB in total",
	"a label or annotation key whose prefix is longer than 253 characters",
	"metadata.ownerReferences and managedFields as the API server checks them, and the orphan and foreground-deletion finalizers together",
	"the requester's rights (SubjectAccessReviews) and the preflight dry run",
}

// ruleDefs are the $defs task.json shares between the plugins' rules.
func ruleDefs() map[string]any {
	str := func(pattern string, maxLength int) map[string]any {
		m := map[string]any{"type": "string", "pattern": pattern}
		if maxLength > 0 {
			m["maxLength"] = maxLength
		}
		return m
	}
	return map[string]any{
		"dnsLabel":      str(PatternDNSLabel, 63),
		"dnsSubdomain":  str(PatternDNSSubdomain, 253),
		"labelKey":      str(PatternLabelKey, 317),
		"annotationKey": str(PatternAnnotationKey, 317),
		"labelValue":    str(PatternLabelValue, 63),
		"envVarName": map[string]any{"allOf": []any{
			str(PatternEnvVarName, 0),
			map[string]any{"not": map[string]any{"pattern": `^(\.|\.\..*)$`}},
		}},
		"quantity": map[string]any{"anyOf": []any{
			map[string]any{"type": "string", "minLength": 1, "pattern": PatternQuantity},
			map[string]any{"type": "number", "minimum": 0},
		}},
		"labels": map[string]any{
			"type":                 "object",
			"propertyNames":        ref("#/$defs/labelKey"),
			"additionalProperties": ref("#/$defs/labelValue"),
		},
		"annotations": map[string]any{
			"type":          "object",
			"propertyNames": ref("#/$defs/annotationKey"),
		},
	}
}

// pluginRules are, per plugin, the rules of its admission code that
// task.json adds to the plugin's own schema.
func pluginRules() map[string]any {
	return map[string]any{
		string(v1alpha1.PluginCustomImage):    customImageRules(),
		string(v1alpha1.PluginTransformation): transformationRules(),
		string(v1alpha1.PluginRunSync): props(map[string]any{
			"template": props(map[string]any{
				"metadata": props(map[string]any{
					"labels":      ref("#/$defs/labels"),
					"annotations": ref("#/$defs/annotations"),
				}),
			}),
		}),
	}
}

// customImageRules mirror customImage.Validate and validatePodFields.
func customImageRules() map[string]any {
	quantities := map[string]any{"additionalProperties": ref("#/$defs/quantity")}
	toleration := map[string]any{
		"properties": map[string]any{
			"key": map[string]any{"anyOf": []any{map[string]any{"const": ""}, ref("#/$defs/labelKey")}},
		},
		"allOf": []any{
			// Exists takes no value; Equal (the default) needs a key and a label value.
			map[string]any{
				"if":   whenEquals("operator", "Exists"),
				"then": props(map[string]any{"value": map[string]any{"const": ""}}),
				"else": map[string]any{
					"required":   []any{"key"},
					"properties": map[string]any{"key": map[string]any{"minLength": 1}, "value": ref("#/$defs/labelValue")},
				},
			},
			map[string]any{
				"if":   map[string]any{"required": []any{"tolerationSeconds"}},
				"then": map[string]any{"required": []any{"effect"}, "properties": map[string]any{"effect": map[string]any{"const": "NoExecute"}}},
			},
		},
	}
	seccomp := map[string]any{
		"if":   whenEquals("type", "Localhost"),
		"then": map[string]any{"required": []any{"localhostProfile"}},
		"else": map[string]any{"not": map[string]any{"required": []any{"localhostProfile"}}},
	}
	return props(map[string]any{
		"env":                items(props(map[string]any{"name": ref("#/$defs/envVarName")})),
		"serviceAccountName": ref("#/$defs/dnsSubdomain"),
		// ClusterRole names are path segments; built-in ones may hold a colon.
		"clusterRole":      map[string]any{"anyOf": []any{map[string]any{"pattern": ":"}, ref("#/$defs/dnsSubdomain")}},
		"resources":        props(map[string]any{"requests": quantities, "limits": quantities}),
		"nodeSelector":     ref("#/$defs/labels"),
		"tolerations":      items(toleration),
		"imagePullSecrets": items(props(map[string]any{"name": ref("#/$defs/dnsSubdomain")})),
		"securityContext":  props(map[string]any{"seccompProfile": seccomp}),
	})
}

// transformationRules mirror transformation.Validate: namespaces are
// namespace names, the label selector is one the API server accepts, and
// each JSON patch operation has what RFC 6902 requires of it.
func transformationRules() map[string]any {
	requirement := map[string]any{
		"properties": map[string]any{
			"key":    ref("#/$defs/labelKey"),
			"values": items(ref("#/$defs/labelValue")),
		},
		"allOf": []any{
			map[string]any{
				"if":   whenIn("operator", "In", "NotIn"),
				"then": map[string]any{"required": []any{"values"}, "properties": map[string]any{"values": map[string]any{"minItems": 1}}},
			},
			map[string]any{
				"if":   whenIn("operator", "Exists", "DoesNotExist"),
				"then": props(map[string]any{"values": map[string]any{"maxItems": 0}}),
			},
		},
	}
	patchOp := map[string]any{"allOf": []any{
		map[string]any{"if": whenIn("op", "add", "replace", "test"), "then": map[string]any{"required": []any{"value"}}},
		map[string]any{"if": whenIn("op", "move", "copy"), "then": map[string]any{"required": []any{"from"}}},
	}}
	return props(map[string]any{
		"namespaces": items(ref("#/$defs/dnsLabel")),
		"labelSelector": props(map[string]any{
			"matchLabels":      ref("#/$defs/labels"),
			"matchExpressions": items(requirement),
		}),
		"operations": items(props(map[string]any{"jsonPatch": items(patchOp)})),
	})
}

func ref(to string) map[string]any { return map[string]any{"$ref": to} }

func props(p map[string]any) map[string]any { return map[string]any{"properties": p} }

func items(s map[string]any) map[string]any { return map[string]any{"items": s} }

// whenEquals is an "if" that holds when the object's field is value.
func whenEquals(field string, value any) map[string]any {
	return map[string]any{"required": []any{field}, "properties": map[string]any{field: map[string]any{"const": value}}}
}

// whenIn is an "if" that holds when the object's field is one of values.
func whenIn(field string, values ...any) map[string]any {
	return map[string]any{"required": []any{field}, "properties": map[string]any{field: map[string]any{"enum": values}}}
}
