package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"unicode"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

var (
	taskGroupKind    = v1alpha1.GroupVersion.WithKind("Task").GroupKind()
	taskRunGroupKind = v1alpha1.GroupVersion.WithKind("TaskRun").GroupKind()
)

// handler is the webhooks' admission.Handler for one kind (a Task or a
// TaskRun): it decodes the object (and on UPDATE the old one) once, with
// errors that name the field, and gives them to create or update; any other
// operation is allowed (the configurations register CREATE and UPDATE only).
type handler[T any] struct {
	kind   schema.GroupKind
	create func(ctx context.Context, req admission.Request, obj *T) admission.Response
	update func(ctx context.Context, req admission.Request, old, obj *T) admission.Response
}

func (h handler[T]) Handle(ctx context.Context, req admission.Request) admission.Response {
	ctx = admission.NewContextWithRequest(ctx, req)
	switch req.Operation {
	case admissionv1.Create:
		obj, resp := decode[T](h.kind, req.Object.Raw, req.Name)
		if obj == nil {
			return resp
		}
		return h.create(ctx, req, obj)
	case admissionv1.Update:
		obj, resp := decode[T](h.kind, req.Object.Raw, req.Name)
		if obj == nil {
			return resp
		}
		old, resp := decode[T](h.kind, req.OldObject.Raw, req.Name)
		if old == nil {
			return resp
		}
		return h.update(ctx, req, old, obj)
	}
	return admission.Allowed("")
}

// thenValidate is single-call's answer: the mutating patch, refused if it
// refuses or if validate (run on what the patch produces) refuses, with
// validate's warnings added.
func thenValidate(patch admission.Response, validate func() admission.Response) admission.Response {
	if !patch.Allowed {
		return patch
	}
	checked := validate()
	if !checked.Allowed {
		return checked
	}
	return patch.WithWarnings(checked.Warnings...)
}

// validationResponse turns a validation's warnings and error into an answer.
func validationResponse(warnings admission.Warnings, err error) admission.Response {
	if err != nil {
		return fromError(err).WithWarnings(warnings...)
	}
	return admission.Allowed("").WithWarnings(warnings...)
}

// decode decodes an admitted object. A value of the wrong type is a 422
// naming its field, as the API server's own schema check would say; bytes
// that are not JSON at all are a 400.
func decode[T any](kind schema.GroupKind, raw []byte, name string) (*T, admission.Response) {
	obj := new(T)
	err := json.Unmarshal(raw, obj)
	if err == nil {
		return obj, admission.Response{}
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		errs := field.ErrorList{field.TypeInvalid(jsonPath(typeErr.Field), field.OmitValueType{}, "must be "+jsonKind(typeErr)+", not a JSON "+typeErr.Value)}
		return nil, fromError(apierrors.NewInvalid(kind, name, errs))
	}
	return nil, admission.Errored(http.StatusBadRequest, err)
}

// jsonPath is the field path of an UnmarshalTypeError's Field without the
// Go names of embedded structs (spec.PluginSpec.plugin is spec.plugin):
// every JSON name of the API starts in lower case.
func jsonPath(goPath string) *field.Path {
	var parts []string
	for _, p := range strings.Split(goPath, ".") {
		if p != "" && !unicode.IsUpper(rune(p[0])) {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return field.NewPath(goPath)
	}
	return field.NewPath(parts[0], parts[1:]...)
}

func jsonKind(e *json.UnmarshalTypeError) string {
	switch e.Type.Kind().String() {
	case "string":
		return "a string"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "bool":
		return "a boolean"
	}
	return "a " + e.Type.Kind().String()
}

// fromError turns a webhook error into a denial: an API status (422 Invalid
// with causes, 503, ...) as it is, anything else as a 403 with its text.
func fromError(err error) admission.Response {
	var apiStatus apierrors.APIStatus
	if errors.As(err, &apiStatus) {
		st := apiStatus.Status()
		return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &st}}
	}
	return admission.Denied(err.Error())
}
