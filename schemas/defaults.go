package schemas

import (
	"encoding/json"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// ApplyDefaults fills in the schema's static defaults ("default") for fields
// that instance leaves out. It never creates a missing parent object, so a
// default under an optional object applies only when the user wrote that
// object. It reports whether it changed anything.
func (s *Schema) ApplyDefaults(instance any) bool {
	return s.applyDefaults(s.compiled, instance)
}

// HasDefaults reports whether ApplyDefaults can change any instance.
func (s *Schema) HasDefaults() bool {
	return s.mayDefault[s.compiled]
}

func (s *Schema) applyDefaults(sc *jsonschema.Schema, v any) bool {
	if !s.mayDefault[sc] {
		return false
	}
	sc = follow(sc)
	changed := false
	switch x := v.(type) {
	case map[string]any:
		for name, prop := range sc.Properties {
			cur, ok := x[name]
			if !ok {
				if d := defaultOf(prop); d != nil {
					x[name] = copyJSON(d)
					changed = true
				}
				continue
			}
			changed = s.applyDefaults(prop, cur) || changed
		}
	case []any:
		if sc.Items2020 != nil {
			for _, item := range x {
				changed = s.applyDefaults(sc.Items2020, item) || changed
			}
		}
	}
	return changed
}

// follow goes through the $refs that applyDefaults goes through: those of a
// schema with no properties or items of its own.
func follow(sc *jsonschema.Schema) *jsonschema.Schema {
	for sc != nil && sc.Ref != nil && len(sc.Properties) == 0 && sc.Items2020 == nil {
		sc = sc.Ref
	}
	return sc
}

// findDefaults returns the subschemas under which applyDefaults can add a
// value: one with a property that has a default, or a property or items
// schema that is itself such a subschema. Schemas can refer to each other in
// cycles, so it repeats until nothing more is found.
func findDefaults(root *jsonschema.Schema) map[*jsonschema.Schema]bool {
	var all []*jsonschema.Schema
	seen := map[*jsonschema.Schema]bool{}
	var walk func(*jsonschema.Schema)
	walk = func(sc *jsonschema.Schema) { // the edges applyDefaults follows
		if sc == nil || seen[sc] {
			return
		}
		seen[sc] = true
		all = append(all, sc)
		walk(sc.Ref)
		for _, p := range sc.Properties {
			walk(p)
		}
		walk(sc.Items2020)
	}
	walk(root)
	may := map[*jsonschema.Schema]bool{}
	for changed := true; changed; {
		changed = false
		for _, sc := range all {
			if may[sc] {
				continue
			}
			if mayAddDefault(follow(sc), may) {
				may[sc] = true
				changed = true
			}
		}
	}
	return may
}

func mayAddDefault(sc *jsonschema.Schema, may map[*jsonschema.Schema]bool) bool {
	if sc == nil {
		return false
	}
	for _, prop := range sc.Properties {
		if defaultOf(prop) != nil || may[prop] {
			return true
		}
	}
	return sc.Items2020 != nil && may[sc.Items2020]
}

func defaultOf(sc *jsonschema.Schema) any {
	for sc != nil {
		if sc.Default != nil {
			return sc.Default
		}
		sc = sc.Ref
	}
	return nil
}

// copyJSON deep-copies a decoded default so instances never share it; numbers
// become json.Number as DecodeJSON would give them.
func copyJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = copyJSON(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyJSON(e)
		}
		return out
	case float64:
		b, _ := json.Marshal(x)
		return json.Number(b)
	}
	return v
}
