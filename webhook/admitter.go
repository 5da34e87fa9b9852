// Package webhook admits Tasks and TaskRuns. A Task (a runbook) is checked
// and defaulted: a spec.config that does not fit its plugin is refused with
// one field error per bad field. A TaskRun gets the snapshot of what it runs
// and its requester, then the same checks on that snapshot, the access
// checks for its creator, concurrencyPolicy and the preflight. The same
// Admitter serves the admission webhooks and `taskgate validate`.
package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/schemas"
)

// Bounds on spec.config, checked before it is decoded, so a hostile Task
// costs little to refuse.
const (
	// DefaultMaxConfigBytes is the largest spec.config accepted, as JSON.
	DefaultMaxConfigBytes = 128 << 10
	// DefaultMaxConfigDepth is the deepest nesting of objects and arrays accepted.
	DefaultMaxConfigDepth = 32
)

var (
	specPath   = field.NewPath("spec")
	pluginPath = specPath.Child("plugin")
	configPath = specPath.Child("config")
)

// Admitter validates and defaults Tasks.
type Admitter struct {
	// Schemas holds the compiled plugin and synchronization-plugin schemas.
	Schemas *schemas.Set
	// AllowedClusterRoles, when not empty, is the only ClusterRoles a
	// custom-image Task may name.
	AllowedClusterRoles []string
	// Scopes tells whether a resource is cluster-scoped; nil means a built-in
	// table (see scopes.go).
	Scopes ScopeResolver
	// MaxConfigBytes and MaxConfigDepth bound spec.config; zero means the defaults.
	MaxConfigBytes int
	MaxConfigDepth int
}

// NewAdmitter returns an Admitter for the given schemas with default bounds.
func NewAdmitter(set *schemas.Set) *Admitter {
	return &Admitter{Schemas: set}
}

// config is a Task's spec.config, decoded once and shared by the steps of
// one admission.
type config struct {
	plugin pluginAdmission
	schema *schemas.Schema
	value  map[string]any
	raw    []byte // the config as sent, for decoding into the typed config
	// typedErrs holds what decodeTyped found that the schema, which sees
	// value, cannot: a key the document repeats (value keeps the last), or
	// a config the schema passes that does not decode.
	typedErrs field.ErrorList
}

// load finds the Task's plugin and decodes its config within the bounds.
func (a *Admitter) load(task *v1alpha1.Task) (*config, field.ErrorList) {
	p, ok := plugins[task.Spec.Plugin]
	sc, hasSchema := a.Schemas.Plugin(string(task.Spec.Plugin))
	if !ok || !hasSchema {
		names := make([]string, len(v1alpha1.Plugins))
		for i, n := range v1alpha1.Plugins {
			names[i] = string(n)
		}
		if task.Spec.Plugin == "" {
			return nil, field.ErrorList{field.Required(pluginPath, schemas.Hint("", names))}
		}
		return nil, field.ErrorList{&field.Error{Type: field.ErrorTypeNotSupported, Field: pluginPath.String(),
			BadValue: string(task.Spec.Plugin), Detail: schemas.Hint(string(task.Spec.Plugin), names)}}
	}
	raw := task.Spec.Config.Raw
	if len(raw) == 0 || string(raw) == "null" {
		return nil, field.ErrorList{field.Required(configPath, "the "+string(task.Spec.Plugin)+" plugin's configuration (`taskgate schemas` writes its JSON Schema)")}
	}
	if err := a.checkBounds(raw); err != nil {
		return nil, field.ErrorList{err}
	}
	v, err := schemas.DecodeJSON(raw)
	if err != nil {
		return nil, field.ErrorList{field.Invalid(configPath, field.OmitValueType{}, "not valid JSON: "+err.Error())}
	}
	obj, isObj := v.(map[string]any)
	if !isObj {
		return nil, field.ErrorList{field.TypeInvalid(configPath, field.OmitValueType{}, "must be an object")}
	}
	return &config{plugin: p, schema: sc, value: obj, raw: raw}, nil
}

// bounds returns MaxConfigBytes and MaxConfigDepth, or their defaults.
func (a *Admitter) bounds() (maxBytes, maxDepth int) {
	maxBytes, maxDepth = a.MaxConfigBytes, a.MaxConfigDepth
	if maxBytes <= 0 {
		maxBytes = DefaultMaxConfigBytes
	}
	if maxDepth <= 0 {
		maxDepth = DefaultMaxConfigDepth
	}
	return maxBytes, maxDepth
}

// checkBounds refuses an oversized or too deeply nested config by scanning
// the raw JSON, before any decoding work is spent on it.
func (a *Admitter) checkBounds(raw []byte) *field.Error {
	maxBytes, maxDepth := a.bounds()
	if len(raw) > maxBytes {
		return field.TooLong(configPath, field.OmitValueType{}, maxBytes)
	}
	depth := 0
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '"': // skip the string: brackets in it do not nest
			for i++; i < len(raw) && raw[i] != '"'; i++ {
				if raw[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
			if depth > maxDepth {
				return field.Invalid(configPath, field.OmitValueType{},
					"nested more than "+strconv.Itoa(maxDepth)+" levels deep; flatten the configuration")
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// Default fills in the Task's defaults: the schema's static defaults, then
// those that depend on the Task (its namespace, its name). It returns errors
// only when the Task is too broken to default (unknown plugin, config that is
// not a JSON object); everything else is left to Validate. A changed config
// is written back with json.Marshal (keys sorted), and the mutating webhook
// sends the difference as one JSON patch.
func (a *Admitter) Default(task *v1alpha1.Task) field.ErrorList {
	c, errs := a.load(task)
	if len(errs) > 0 {
		return errs
	}
	changed := c.schema.ApplyDefaults(c.value)
	changed = c.plugin.Default(a, task, c.value) || changed
	if !changed {
		return nil
	}
	raw, err := json.Marshal(c.value)
	if err != nil {
		return field.ErrorList{field.InternalError(configPath, fmt.Errorf("encode defaulted config: %w", err))}
	}
	task.Spec.Config.Raw = raw
	task.Spec.Config.Object = nil
	return nil
}

// Validate checks the Task against its plugin's schema, then the rules no
// schema can say (the Task's own namespace, label syntax, patch documents...).
// It returns every error at once, and warnings for what is allowed but unwise.
func (a *Admitter) Validate(task *v1alpha1.Task) (field.ErrorList, []string) {
	errs, warnings, _ := a.check(task, false)
	return errs, warnings
}

// AccessChecks lists what the requesting user must be allowed to do for the
// Task to be admitted; the controller acts with its own identity, so without
// these a Task would lend the user the controller's rights. It expects a Task
// that passed Validate.
func (a *Admitter) AccessChecks(task *v1alpha1.Task) []AccessCheck {
	c, errs := a.load(task)
	if len(errs) > 0 {
		return nil
	}
	return c.plugin.Access(a, task, c)
}

// check validates the Task and, when it is valid and access is asked for,
// lists its access checks from the same decoded config.
func (a *Admitter) check(task *v1alpha1.Task, access bool) (field.ErrorList, []string, []AccessCheck) {
	c, errs := a.load(task)
	if len(errs) > 0 {
		return errs, nil, nil
	}
	// The plugin's own rules run even when the schema found errors, so the
	// user sees every mistake at once; they skip what they cannot decode.
	errs = c.schema.Validate(c.value, configPath)
	more, warnings := c.plugin.Validate(a, task, c)
	errs = mergeErrors(errs, more)
	// A repeated key, or (with no other error to explain it) a config the
	// typed decode refuses: what the schema could not see in the map.
	if len(c.typedErrs) > 0 && (len(errs) == 0 || c.typedErrs[0].Type == field.ErrorTypeDuplicate) {
		errs = mergeErrors(errs, c.typedErrs)
	}
	if len(errs) > 0 {
		return errs, nil, nil // warnings about a Task that is refused anyway are noise
	}
	if !access {
		return nil, warnings, nil
	}
	return nil, warnings, c.plugin.Access(a, task, c)
}

// mergeErrors appends more to errs, dropping a second error for a field that
// already has one of the same type, and keeps them ordered by field.
func mergeErrors(errs, more field.ErrorList) field.ErrorList {
	if len(more) == 0 {
		return errs
	}
	seen := make(map[string]bool, len(errs))
	for _, e := range errs {
		seen[e.Field+"|"+string(e.Type)] = true
	}
	for _, e := range more {
		if !seen[e.Field+"|"+string(e.Type)] {
			errs = append(errs, e)
		}
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
	return errs
}

// decodeTyped turns a config into its typed form as the API server decodes
// a request (sigs.k8s.io/json): keys match the json tags case-sensitively,
// so a key in another case is an unknown field (the schema names it) and
// not read into the struct; a repeated key is recorded in c.typedErrs, as
// the API server's strict field validation refuses one. It fails on types
// the schema refuses, and records the error for check, which refuses a
// config the schema passed that still does not decode.
func decodeTyped[T any](c *config) (*T, error) {
	var out T
	dups, err := sigsjson.UnmarshalStrict(c.raw, &out, sigsjson.DisallowDuplicateFields)
	if err != nil {
		c.typedErrs = field.ErrorList{field.Invalid(configPath, field.OmitValueType{}, "does not decode as the plugin's configuration: "+err.Error())}
		return nil, err
	}
	c.typedErrs = nil
	for _, d := range dups {
		at := configPath.String()
		var fe sigsjson.FieldError
		if errors.As(d, &fe) && fe.FieldPath() != "" {
			at += "." + fe.FieldPath()
		}
		c.typedErrs = append(c.typedErrs, &field.Error{Type: field.ErrorTypeDuplicate, Field: at, BadValue: field.OmitValueType{},
			Detail: "written more than once (the API server keeps only the last); write it once"})
	}
	return &out, nil
}
