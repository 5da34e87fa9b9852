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
// the Task once, with errors that name the field, and answers with a patch
// of spec.config and spec.requester, the only parts it touches.
type defaultingHandler struct{ defaulter *Defaulter }

// validatingHandler is the validating webhook's admission.Handler.
type validatingHandler struct{ validator *Validator }

// singleCallHandler is the single-call webhook's admission.Handler: one
// mutating webhook that defaults a new Task and then validates the defaulted
// Task in the same call, so the API server makes one round trip instead of
// two. It answers with the same patch, refusals and warnings as the pair.
type singleCallHandler struct {
	defaulter *Defaulter
	validator *Validator
}

func (h defaultingHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	switch req.Operation {
	case admissionv1.Create:
		task, resp := decodeTask(req.Object.Raw, req.Name)
		if task == nil {
			return resp
		}
		return defaultCreate(ctx, h.defaulter, req, task)
	case admissionv1.Update:
		resp, _ := restoreUpdate(req)
		return resp
	}
	return admission.Allowed("")
}

func (h validatingHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	switch req.Operation {
	case admissionv1.Create:
		task, resp := decodeTask(req.Object.Raw, req.Name)
		if task == nil {
			return resp
		}
		return validateCreate(ctx, h.validator, req, task)
	case admissionv1.Update:
		return validateUpdate(ctx, h.validator, req)
	}
	return admission.Allowed("")
}

func (h singleCallHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	switch req.Operation {
	case admissionv1.Create:
		task, resp := decodeTask(req.Object.Raw, req.Name)
		if task == nil {
			return resp
		}
		patch := defaultCreate(ctx, h.defaulter, req, task)
		if !patch.Allowed {
			return patch
		}
		checked := validateCreate(ctx, h.validator, req, task) // the defaulted Task
		if !checked.Allowed {
			return checked
		}
		return patch.WithWarnings(checked.Warnings...)
	case admissionv1.Update:
		patch, restored := restoreUpdate(req)
		if !patch.Allowed {
			return patch
		}
		if restored != nil {
			req.Object.Raw = restored
		}
		checked := validateUpdate(ctx, h.validator, req)
		if !checked.Allowed {
			return checked
		}
		return patch.WithWarnings(checked.Warnings...)
	}
	return admission.Allowed("")
}

// restoreUpdate answers an UPDATE with a patch that puts back what
// admission filled into a list at create and the update dropped (see
// restoreScopes), returning the object to validate when it patched. It
// never refuses but for an object that is not a Task: the validating
// webhook judges the change.
func restoreUpdate(req admission.Request) (admission.Response, []byte) {
	task, resp := decodeTask(req.Object.Raw, req.Name)
	if task == nil {
		return resp, nil
	}
	old, resp := decodeTask(req.OldObject.Raw, req.Name)
	if old == nil || task.Spec.Plugin != v1alpha1.PluginTransformation || old.Spec.Plugin != task.Spec.Plugin {
		return admission.Allowed(""), nil
	}
	cfg, changed := restoreScopes(old.Spec.Config.Raw, task.Spec.Config.Raw)
	if !changed {
		return admission.Allowed(""), nil
	}
	task.Spec.Config.Raw = cfg
	obj, err := json.Marshal(task)
	if err != nil {
		return admission.Allowed(""), nil // the validating webhook judges the update as sent
	}
	return admission.Patched("", jsonpatch.JsonPatchOperation{Operation: "replace", Path: "/spec/config", Value: json.RawMessage(cfg)}), obj
}

// defaultCreate fills in a new Task's defaults in place and records its
// requester, answering with one patch: a replace of spec.config when a
// default changed it, and an add of spec.requester unless it already names
// the user creating the Task.
func defaultCreate(ctx context.Context, d *Defaulter, req admission.Request, task *v1alpha1.Task) admission.Response {
	before := string(task.Spec.Config.Raw)
	if err := d.Default(admission.NewContextWithRequest(ctx, req), task); err != nil {
		return fromError(err)
	}
	var ops []jsonpatch.JsonPatchOperation
	if string(task.Spec.Config.Raw) != before {
		// The raw JSON goes into the patch as it is: numbers keep every digit.
		ops = append(ops, jsonpatch.JsonPatchOperation{Operation: "replace", Path: "/spec/config", Value: json.RawMessage(task.Spec.Config.Raw)})
	}
	op, warnings := recordRequester(task, req.UserInfo)
	if op != nil {
		ops = append(ops, *op)
	}
	if len(ops) == 0 {
		return admission.Allowed("")
	}
	return admission.Patched("", ops...).WithWarnings(warnings...)
}

func validateCreate(ctx context.Context, v *Validator, req admission.Request, task *v1alpha1.Task) admission.Response {
	warnings, err := v.ValidateCreate(admission.NewContextWithRequest(ctx, req), task)
	return validationResponse(warnings, err)
}

func validateUpdate(ctx context.Context, v *Validator, req admission.Request) admission.Response {
	task, resp := decodeTask(req.Object.Raw, req.Name)
	if task == nil {
		return resp
	}
	old, resp := decodeTask(req.OldObject.Raw, req.Name)
	if old == nil {
		return resp
	}
	warnings, err := v.ValidateUpdate(admission.NewContextWithRequest(ctx, req), old, task)
	return validationResponse(warnings, err)
}

func validationResponse(warnings admission.Warnings, err error) admission.Response {
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
