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
	return applyDefaults(s.compiled, instance)
}

func applyDefaults(sc *jsonschema.Schema, v any) bool {
	for sc != nil && sc.Ref != nil && len(sc.Properties) == 0 && sc.Items2020 == nil {
		sc = sc.Ref
	}
	if sc == nil {
		return false
	}
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
			changed = applyDefaults(prop, cur) || changed
		}
	case []any:
		if sc.Items2020 != nil {
			for _, item := range x {
				changed = applyDefaults(sc.Items2020, item) || changed
			}
		}
	}
	return changed
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
