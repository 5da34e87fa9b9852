package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// defaultingHandler is the mutating webhook's admission.Handler. It decodes
// the Task once, with errors that name the field, and answers with a single
// patch operation on spec.config, the only part defaulting touches.
type defaultingHandler struct{ defaulter *Defaulter }

// validatingHandler is the validating webhook's admission.Handler.
type validatingHandler struct{ validator *Validator }

func (h defaultingHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create {
		return admission.Allowed("")
	}
	task, resp := decodeTask(req.Object.Raw, req.Name)
	if task == nil {
		return resp
	}
	before := string(task.Spec.Config.Raw)
	if err := h.defaulter.Default(admission.NewContextWithRequest(ctx, req), task); err != nil {
		return fromError(err)
	}
	if string(task.Spec.Config.Raw) == before {
		return admission.Allowed("")
	}
	// The raw JSON goes into the patch as it is: numbers keep every digit.
	return admission.Patched("", jsonpatch.JsonPatchOperation{Operation: "replace", Path: "/spec/config", Value: json.RawMessage(task.Spec.Config.Raw)})
}

func (h validatingHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	ctx = admission.NewContextWithRequest(ctx, req)
	var warnings admission.Warnings
	var err error
	switch req.Operation {
	case admissionv1.Create:
		task, resp := decodeTask(req.Object.Raw, req.Name)
		if task == nil {
			return resp
		}
		warnings, err = h.validator.ValidateCreate(ctx, task)
	case admissionv1.Update:
		task, resp := decodeTask(req.Object.Raw, req.Name)
		if task == nil {
			return resp
		}
		old, resp := decodeTask(req.OldObject.Raw, req.Name)
		if old == nil {
			return resp
		}
		warnings, err = h.validator.ValidateUpdate(ctx, old, task)
	default:
		return admission.Allowed("")
	}
	if err != nil {
		return fromError(err).WithWarnings(warnings...)
	}
	return admission.Allowed("").WithWarnings(warnings...)
}

// decodeTask decodes an admitted object. A value of the wrong type is a 422
// naming its field, as the API server's own schema check would say; bytes
// that are not JSON at all are a 400.
func decodeTask(raw []byte, name string) (*v1alpha1.Task, admission.Response) {
	task := &v1alpha1.Task{}
	err := json.Unmarshal(raw, task)
	if err == nil {
		return task, admission.Response{}
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		path := field.NewPath(strings.Split(typeErr.Field, ".")[0], strings.Split(typeErr.Field, ".")[1:]...)
		errs := field.ErrorList{field.TypeInvalid(path, field.OmitValueType{}, "must be "+jsonKind(typeErr)+", not a JSON "+typeErr.Value)}
		return nil, fromError(apierrors.NewInvalid(taskGroupKind, name, errs))
	}
	return nil, admission.Errored(http.StatusBadRequest, err)
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
