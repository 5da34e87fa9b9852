package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v5"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// DecodeJSON decodes one JSON document as the validators expect it, with
// encoding/json: numbers kept exact as json.Number, so integers never turn
// into floats and a big one survives defaulting; data after the value is an
// error. A repeated key keeps its last value.
func DecodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return v, nil
}

// Validate checks instance (as decoded by DecodeJSON) against the schema and
// returns one field error per violation, each at its path under root.
func (s *Schema) Validate(instance any, root *field.Path) field.ErrorList {
	err := s.compiled.Validate(instance)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return field.ErrorList{field.InternalError(root, err)}
	}
	var errs field.ErrorList
	seen := map[string]bool{}
	for _, leaf := range leaves(ve, nil) {
		for _, fe := range s.toFieldErrors(leaf, instance, root) {
			key := fe.Error()
			if !seen[key] {
				seen[key] = true
				errs = append(errs, fe)
			}
		}
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
	return errs
}

func leaves(ve *jsonschema.ValidationError, out []*jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(ve.Causes) == 0 {
		return append(out, ve)
	}
	for _, c := range ve.Causes {
		out = leaves(c, out)
	}
	return out
}

// toFieldErrors turns one schema violation into field errors that say what
// to change, not which keyword failed.
func (s *Schema) toFieldErrors(ve *jsonschema.ValidationError, instance any, root *field.Path) field.ErrorList {
	path, value := resolve(instance, ve.InstanceLocation, root)
	keyword, schemaLoc := splitKeyword(ve.AbsoluteKeywordLocation)
	sc := s.byLocation[schemaLoc]

	switch keyword {
	case "required":
		obj, _ := value.(map[string]any)
		var errs field.ErrorList
		if sc != nil {
			for _, name := range sc.Required {
				if _, ok := obj[name]; !ok {
					errs = append(errs, field.Required(path.Child(name), describe(sc.Properties[name])))
				}
			}
		}
		if len(errs) == 0 {
			errs = append(errs, field.Required(path, ve.Message))
		}
		return errs
	case "additionalProperties":
		obj, _ := value.(map[string]any)
		var known []string
		if sc != nil {
			for name := range sc.Properties {
				known = append(known, name)
			}
		}
		var errs field.ErrorList
		for name := range obj {
			if sc == nil || sc.Properties[name] != nil {
				continue
			}
			detail := "unknown field " + strconv.Quote(name)
			if len(known) > 0 {
				detail += "; " + Hint(name, known)
			}
			errs = append(errs, field.Forbidden(path.Child(name), detail))
		}
		return errs
	case "enum":
		var valid []string
		if sc != nil {
			for _, v := range sc.Enum {
				valid = append(valid, fmt.Sprint(v))
			}
		}
		str, isString := value.(string)
		if !isString {
			return field.ErrorList{field.NotSupported(path, shortValue(value), valid)}
		}
		return field.ErrorList{&field.Error{Type: field.ErrorTypeNotSupported, Field: path.String(), BadValue: str, Detail: Hint(str, valid)}}
	case "type":
		return field.ErrorList{field.TypeInvalid(path, shortValue(value), "must be "+article(sc)+", not "+jsonType(value))}
	case "minItems":
		return field.ErrorList{field.Invalid(path, shortValue(value), fmt.Sprintf("must have at least %d item(s)", sc.MinItems))}
	case "maxItems":
		return field.ErrorList{field.TooMany(path, length(value), sc.MaxItems)}
	case "minLength":
		if sc.MinLength == 1 {
			return field.ErrorList{field.Required(path, "must not be empty")}
		}
		return field.ErrorList{field.Invalid(path, shortValue(value), fmt.Sprintf("must be at least %d characters", sc.MinLength))}
	case "maxLength":
		return field.ErrorList{field.TooLong(path, field.OmitValueType{}, sc.MaxLength)}
	case "minProperties", "maxProperties":
		return field.ErrorList{field.Invalid(path, shortValue(value), propertiesDetail(sc, value))}
	case "pattern":
		// A long expression helps nobody: say what the field should look like.
		if p := sc.Pattern.String(); len(p) <= 40 || describe(sc) == "" {
			return field.ErrorList{field.Invalid(path, shortValue(value), "must match "+strconv.Quote(p)+patternHint(sc))}
		}
		return field.ErrorList{field.Invalid(path, shortValue(value), "not in the expected form: "+describe(sc))}
	case "minimum":
		return field.ErrorList{field.Invalid(path, shortValue(value), "must be at least "+sc.Minimum.RatString())}
	case "maximum":
		return field.ErrorList{field.Invalid(path, shortValue(value), "must be at most "+sc.Maximum.RatString())}
	case "uniqueItems":
		return field.ErrorList{field.Invalid(path, shortValue(value), "must not repeat items ("+ve.Message+")")}
	}
	return field.ErrorList{field.Invalid(path, shortValue(value), ve.Message)}
}

// splitKeyword splits ".../properties/image/minLength" into the keyword and
// the location of the schema that holds it.
func splitKeyword(loc string) (keyword, schemaLoc string) {
	i := strings.LastIndex(loc, "/")
	if i < 0 {
		return loc, ""
	}
	return loc[i+1:], loc[:i]
}

// resolve walks a JSON pointer through instance, building the field path (an
// index for array elements, a child for object keys) and returning the value.
func resolve(instance any, pointer string, root *field.Path) (*field.Path, any) {
	path, cur := root, instance
	if pointer == "" {
		return path, cur
	}
	for _, seg := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return path.Child(seg), nil
			}
			path, cur = path.Index(i), c[i]
		case map[string]any:
			path, cur = path.Child(seg), c[seg]
		default:
			return path.Child(seg), nil
		}
	}
	return path, cur
}

// describe gives the first sentence of a property's description, the hint a
// user needs to fill a required field.
func describe(sc *jsonschema.Schema) string {
	for sc != nil && sc.Description == "" && sc.Ref != nil {
		sc = sc.Ref
	}
	if sc == nil {
		return ""
	}
	return firstSentence(sc.Description)
}

func patternHint(sc *jsonschema.Schema) string {
	if d := describe(sc); d != "" {
		return " (" + d + ")"
	}
	return ""
}

func propertiesDetail(sc *jsonschema.Schema, value any) string {
	names := make([]string, 0, len(sc.Properties))
	for n := range sc.Properties {
		names = append(names, strconv.Quote(n))
	}
	sort.Strings(names)
	if sc.MinProperties == 1 && sc.MaxProperties == 1 {
		return "must set exactly one of " + strings.Join(names, ", ")
	}
	if obj, ok := value.(map[string]any); ok && sc.MaxProperties >= 0 && len(obj) > sc.MaxProperties {
		return fmt.Sprintf("must have at most %d fields", sc.MaxProperties)
	}
	return fmt.Sprintf("must have at least %d field(s)", sc.MinProperties)
}

func article(sc *jsonschema.Schema) string {
	if sc == nil || len(sc.Types) == 0 {
		return "another type"
	}
	words := make([]string, len(sc.Types))
	for i, t := range sc.Types {
		switch t {
		case "object", "array", "integer":
			words[i] = "an " + t
		default:
			words[i] = "a " + t
		}
	}
	return strings.Join(words, " or ")
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return "an integer"
		}
		return "a number"
	case float64, int, int64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func length(v any) int {
	switch x := v.(type) {
	case []any:
		return len(x)
	case map[string]any:
		return len(x)
	case string:
		return len(x)
	}
	return 0
}

// shortValue keeps error messages readable: scalars as they are (long strings
// cut), objects and arrays left out.
func shortValue(v any) any {
	switch x := v.(type) {
	case string:
		if len(x) > 64 {
			return x[:61] + "..."
		}
		return x
	case json.Number:
		return x.String()
	case bool, nil, float64:
		return x
	}
	return field.OmitValueType{}
}

// firstSentence cuts a description after its first sentence: a full stop
// followed by a capital letter, so "e.g. busybox" does not end it.
func firstSentence(d string) string {
	for i := 0; i+2 < len(d); i++ {
		if d[i] == '.' && d[i+1] == ' ' && d[i+2] >= 'A' && d[i+2] <= 'Z' {
			return d[:i+1]
		}
	}
	return d
}
