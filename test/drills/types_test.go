package drills_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/astronetes/taskgate/schemas"
	"github.com/astronetes/taskgate/test/load/kit"
)

// openFields are where any JSON value is valid, so no type is wrong: the
// values of JSON patch operations and the documents of merge patches.
var openFields = []string{".jsonPatch[", ".mergePatch."}

// wrongTypeCases take every seed sample and, at every level of its config,
// put a value of the wrong type in one place: each must be refused with 422
// naming that field. spec, spec.plugin and spec.config themselves too.
func wrongTypeCases(t *testing.T) []hostileCase {
	t.Helper()
	samples, err := kit.Samples(root)
	if err != nil {
		t.Fatal(err)
	}
	good := samples[0]
	cases := []hostileCase{
		{name: "spec is a string", body: []byte(`{"apiVersion":"automation.astronetes.io/v1alpha1","kind":"Task","metadata":{"name":"spec-string"},"spec":"x"}`),
			wantCode: 422, wantField: "spec"},
		{name: "spec.plugin is a number", body: kit.TaskJSON("plugin-number", "", good.Spec.Config.Raw), wantCode: 422, wantField: "spec.plugin"},
		{name: "spec.config is a string", body: kit.TaskJSON("config-string", good.Spec.Plugin, []byte(`"x"`)), wantCode: 422, wantField: "spec.config"},
		{name: "spec.config is an array", body: kit.TaskJSON("config-array", good.Spec.Plugin, []byte(`[1]`)), wantCode: 422, wantField: "spec.config"},
	}
	cases[1].body = []byte(strings.Replace(string(cases[1].body), `"plugin":""`, `"plugin":5`, 1))
	for si, s := range samples {
		v, err := schemas.DecodeJSON(s.Spec.Config.Raw)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		walk(v, "spec.config", func(path string, replace func(any) any) {
			for _, open := range openFields {
				if strings.Contains(path, open) {
					return
				}
			}
			cfg, err := json.Marshal(replace(nil))
			if err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("type-%d-%d", si, n)
			n++
			cases = append(cases, hostileCase{name: "wrong type at " + path + " (" + string(s.Spec.Plugin) + ")",
				body: kit.TaskJSON(name, s.Spec.Plugin, cfg), wantCode: 422, wantField: path})
		})
	}
	return cases
}

// wrongValue is a value of another JSON type than v.
func wrongValue(v any) any {
	if _, isString := v.(string); isString {
		return 12345
	}
	return "wrong" // for objects, arrays, numbers, booleans

}

// step is one step of a path into a JSON document: a key or an index.
type step struct {
	key   string
	index int // when key is ""
}

// walk calls visit for every value below the root doc (not doc itself)
// with its field path under root and a function that returns a deep copy
// of doc in which that one value is replaced by a wrong one.
func walk(doc any, root string, visit func(path string, replace func(any) any)) {
	var rec func(cur any, path string, steps []step)
	rec = func(cur any, path string, steps []step) {
		var children []step
		switch x := cur.(type) {
		case map[string]any:
			for k := range x {
				children = append(children, step{key: k})
			}
			sort.Slice(children, func(i, j int) bool { return children[i].key < children[j].key })
		case []any:
			for i := range x {
				children = append(children, step{index: i})
			}
		}
		for _, c := range children {
			childSteps := append(append([]step{}, steps...), c)
			childPath := fmt.Sprintf("%s[%d]", path, c.index)
			if c.key != "" {
				childPath = path + "." + c.key
			}
			child := get(cur, c)
			visit(childPath, func(any) any { return replaced(doc, childSteps, wrongValue(child)) })
			rec(child, childPath, childSteps)
		}
	}
	rec(doc, root, nil)
}

func get(cur any, s step) any {
	if s.key != "" {
		return cur.(map[string]any)[s.key]
	}
	return cur.([]any)[s.index]
}

// replaced is a copy of doc with the value at steps set to val.
func replaced(doc any, steps []step, val any) any {
	out := runtime.DeepCopyJSONValue(doc)
	cur := out
	for _, s := range steps[:len(steps)-1] {
		cur = get(cur, s)
	}
	last := steps[len(steps)-1]
	if last.key != "" {
		cur.(map[string]any)[last.key] = val
	} else {
		cur.([]any)[last.index] = val
	}
	return out
}
