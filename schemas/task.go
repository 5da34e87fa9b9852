package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// TaskSchemaFile is the whole-Task schema WriteBundle writes beside the
// plugins' schemas.
const TaskSchemaFile = "task.json"

// A bundle's files name each other by relative references, and each
// file's $id is its path in the bundle: a validator that reads files
// (yaml-language-server, jsonschema/v5 with a file loader) resolves a reference against the
// file's location, one that is handed the files (ajv -r) against their
// $ids, and both find the same file, with no network.

// Bundle returns every file of the schema bundle, by its slash-separated
// path in the bundle: task.json, taskrun.json, a schema per Task plugin (run-synchronization's
// dispatching template.spec.config to the synchronization plugins') and a
// schema per synchronization plugin under synchronization/.
func (set *Set) Bundle() (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, name := range set.PluginNames() {
		src := set.plugins[name].Source
		var err error
		if name == string(v1alpha1.PluginRunSync) {
			src, err = set.runSyncBundleSchema(src)
		} else {
			src, err = withID(src, name+".json")
		}
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		files[name+".json"] = src
	}
	for _, name := range set.SyncPluginNames() {
		p := path.Join(SyncDir, name+".json")
		src, err := withID(set.syncPlugins[name].Source, p)
		if err != nil {
			return nil, fmt.Errorf("synchronization schema %s: %w", name, err)
		}
		files[p] = src
	}
	task, err := set.taskSchema()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", TaskSchemaFile, err)
	}
	files[TaskSchemaFile] = task
	run, err := set.taskRunSchema()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", TaskRunSchemaFile, err)
	}
	files[TaskRunSchemaFile] = run
	return files, nil
}

// WriteBundle writes Bundle into dir and returns the paths written, sorted.
func (set *Set) WriteBundle(dir string) ([]string, error) {
	files, err := set.Bundle()
	if err != nil {
		return nil, err
	}
	var written []string
	for _, name := range slices.Sorted(maps.Keys(files)) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", filepath.Dir(p), err)
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", p, err)
		}
		written = append(written, p)
	}
	return written, nil
}

// taskSchema is task.json: the Task envelope as the API server and the
// webhook check it, spec.config dispatched on spec.plugin to the plugin's
// schema plus the rules of its admission code that a schema can state.
func (set *Set) taskSchema() ([]byte, error) {
	spec, err := set.pluginSpecSchema("The runbook: which plugin runs and how, and how its runs are kept. Creating or editing a Task runs nothing; a TaskRun runs it.")
	if err != nil {
		return nil, err
	}
	limit := func(kind string, def int) map[string]any {
		return map[string]any{"description": fmt.Sprintf("How many %s TaskRuns of this Task are kept; older ones are deleted. Unset: the installation's default (%d unless set).", kind, def),
			"type": "integer", "minimum": 0, "maximum": maxInt32}
	}
	properties := spec["properties"].(map[string]any)
	properties["concurrencyPolicy"] = map[string]any{"description": "Allow (the default): runs of this Task may overlap. Forbid: a TaskRun is refused while another run of this Task has not finished.",
		"enum": []any{string(v1alpha1.ConcurrencyAllow), string(v1alpha1.ConcurrencyForbid)}}
	properties["successfulRunsHistoryLimit"] = limit("succeeded", 3)
	properties["failedRunsHistoryLimit"] = limit("failed", 1)
	properties["requester"] = requesterSchema("Deprecated and ignored: recorded on Tasks by taskgate before TaskRuns; a run's requester is the TaskRun's.")
	properties["ttlSecondsAfterFinished"] = ttlSchema("Deprecated and ignored on a Task: set it on the TaskRun.")
	return set.document(TaskSchemaFile, "Task", "A whole Task document, as the API server and the taskgate admission webhook check it.", spec)
}

// maxInt32 bounds the CRD's int32 fields.
const maxInt32 = 2147483647

// document is a whole-object schema file: apiVersion, kind, metadata, the
// given spec, and the $defs the plugins' rules and metadata refer to.
func (set *Set) document(id, kind, description string, spec map[string]any) ([]byte, error) {
	defs := ruleDefs()
	defs["objectMeta"] = objectMetaSchema(kind)
	return encode(map[string]any{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"$id":     id,
		"title":   kind + " (" + v1alpha1.GroupVersion.String() + ")",
		"description": description + " Written by `taskgate schemas`; the plugins' schemas beside it hold the plugin configurations. " +
			"Left to `taskgate validate` and the webhook: " + strings.Join(TaskSchemaUndecided, "; ") + ".",
		"type":                 "object",
		"additionalProperties": false,
		"required":             []any{"apiVersion", "kind", "metadata", "spec"},
		"properties": map[string]any{
			"apiVersion": map[string]any{"description": "The automation API's group and version.", "const": v1alpha1.GroupVersion.String()},
			"kind":       map[string]any{"description": "Always " + kind + ".", "const": kind},
			"metadata":   ref("#/$defs/objectMeta"),
			"spec":       spec,
			"status":     map[string]any{"description": "Written by the controller; ignored when the " + kind + " is created.", "type": "object"},
		},
		"$defs": defs,
	})
}

// pluginSpecSchema is a plugin and its config (a Task's spec, a TaskRun's
// spec.taskSpec): one branch per plugin of v1alpha1.Plugins, each holding
// config to the plugin's schema and its admission rules.
func (set *Set) pluginSpecSchema(description string) (map[string]any, error) {
	plugins := make([]any, len(v1alpha1.Plugins))
	var dispatch []any
	rules := pluginRules()
	for i, p := range v1alpha1.Plugins {
		name := string(p)
		plugins[i] = name
		if _, ok := set.plugins[name]; !ok {
			return nil, fmt.Errorf("plugin %s has no schema", name)
		}
		config := []any{ref(name + ".json")}
		if r, ok := rules[name]; ok {
			config = append(config, r)
		}
		dispatch = append(dispatch, map[string]any{
			"if":   whenEquals("plugin", name),
			"then": props(map[string]any{"config": map[string]any{"allOf": config}}),
		})
	}
	return map[string]any{
		"description":          description,
		"type":                 "object",
		"additionalProperties": false,
		"required":             []any{"plugin", "config"},
		"properties": map[string]any{
			"plugin": map[string]any{"description": "The automation to run.", "enum": plugins},
			"config": map[string]any{"description": "The plugin's configuration, checked against its schema (<plugin>.json beside this file).", "type": "object"},
		},
		"allOf": dispatch,
	}, nil
}

// requesterSchema is a Requester: who created the object.
func requesterSchema(description string) map[string]any {
	return map[string]any{
		"description":          description,
		"type":                 "object",
		"additionalProperties": false,
		"required":             []any{"username"},
		"properties": map[string]any{
			"username": map[string]any{"description": "The user's name.", "type": "string"},
			"uid":      map[string]any{"description": "The user's UID.", "type": "string"},
			"groups":   map[string]any{"description": "The user's groups.", "type": "array", "items": map[string]any{"type": "string"}},
			"extra":    map[string]any{"description": "The authenticator's extra attributes.", "type": "object", "additionalProperties": map[string]any{"type": "array", "items": map[string]any{"type": "string"}}},
		},
	}
}

func ttlSchema(description string) map[string]any {
	return map[string]any{"description": description, "type": "integer", "minimum": 0, "maximum": maxInt32}
}

// objectMetaSchema is metadata as the API server checks it for a
// namespaced custom resource (ValidateObjectMeta with NameIsDNSSubdomain):
// a name or a generateName, a namespace name, labels and annotations.
func objectMetaSchema(kind string) map[string]any {
	open := map[string]any{}
	str := map[string]any{"type": "string"}
	return map[string]any{
		"description":          "Standard object metadata. The " + kind + "'s name must be a DNS subdomain (lower case, digits, '-' and '.'); without a namespace, kubectl's current one is used.",
		"type":                 "object",
		"additionalProperties": false,
		"anyOf":                []any{map[string]any{"required": []any{"name"}}, map[string]any{"required": []any{"generateName"}}},
		"properties": map[string]any{
			"name":            map[string]any{"description": "Name of the " + kind + ": a DNS subdomain, at most 253 characters, e.g. restore-from-dr.", "type": "string", "minLength": 1, "maxLength": 253, "pattern": PatternDNSSubdomain},
			"generateName":    map[string]any{"description": "Prefix of a name the API server generates when name is left out, e.g. nightly-.", "type": "string", "maxLength": 253, "pattern": PatternGenerateName},
			"namespace":       map[string]any{"description": "Namespace of the " + kind + ": a DNS label, at most 63 characters.", "type": "string", "maxLength": 63, "pattern": PatternDNSLabel},
			"labels":          map[string]any{"description": "Labels of the " + kind + ".", "$ref": "#/$defs/labels"},
			"annotations":     map[string]any{"description": "Annotations of the " + kind + ".", "$ref": "#/$defs/annotations", "additionalProperties": str},
			"finalizers":      map[string]any{"description": "Finalizers; taskgate adds its own.", "type": "array", "items": ref("#/$defs/labelKey")},
			"ownerReferences": map[string]any{"description": "Objects the " + kind + " belongs to.", "type": "array", "items": map[string]any{"type": "object"}},
			// Set by the API server; accepted as kubectl get -o yaml prints them.
			"generation": map[string]any{"type": "integer", "minimum": 0},
			"uid":        open, "resourceVersion": open, "creationTimestamp": open,
			"deletionTimestamp": open, "deletionGracePeriodSeconds": open, "managedFields": open, "selfLink": open,
		},
	}
}

// runSyncBundleSchema is run-synchronization's schema with
// template.spec.plugin limited to the synchronization plugins and
// template.spec.config checked against the named plugin's schema.
func (set *Set) runSyncBundleSchema(src []byte) ([]byte, error) {
	doc, err := decodeSchema(src)
	if err != nil {
		return nil, err
	}
	spec, ok := dig(doc, "properties", "template", "properties", "spec")
	if !ok {
		return nil, fmt.Errorf("no properties.template.properties.spec to dispatch on")
	}
	plugin, ok := dig(spec, "properties", "plugin")
	if !ok {
		return nil, fmt.Errorf("no template.spec.plugin")
	}
	names := set.SyncPluginNames()
	enum := make([]any, len(names))
	dispatch := make([]any, len(names))
	for i, n := range names {
		enum[i] = n
		dispatch[i] = map[string]any{
			"if":   whenEquals("plugin", n),
			"then": map[string]any{"required": []any{"config"}, "properties": map[string]any{"config": ref(path.Join(SyncDir, n+".json"))}},
		}
	}
	plugin["enum"] = enum
	spec["allOf"] = dispatch
	doc["$id"] = string(v1alpha1.PluginRunSync) + ".json"
	return encode(doc)
}

// dig walks m through nested objects.
func dig(m map[string]any, keys ...string) (map[string]any, bool) {
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil, false
		}
		m = next
	}
	return m, true
}

// withID returns src with its $id set to id: as it is when it already
// says so, else re-encoded.
func withID(src []byte, id string) ([]byte, error) {
	doc, err := decodeSchema(src)
	if err != nil {
		return nil, err
	}
	if doc["$id"] == id {
		return src, nil
	}
	doc["$id"] = id
	return encode(doc)
}

// decodeSchema decodes a schema document as DecodeJSON does (numbers kept
// as written); a schema is a JSON object.
func decodeSchema(src []byte) (map[string]any, error) {
	v, err := DecodeJSON(src)
	if err != nil {
		return nil, err
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("not a JSON object")
	}
	return doc, nil
}

// encode writes a schema indented, without escaping <, > and &, which
// descriptions use.
func encode(doc any) ([]byte, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	e.SetIndent("", "  ")
	if err := e.Encode(doc); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
