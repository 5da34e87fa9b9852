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

// handler is the webhooks' admission.Handler: it decodes a created Task once,
// with errors that name the field, and gives it to create; an update goes to
// update; any other operation is allowed (the configurations register
// CREATE and UPDATE only).
type handler struct {
	create func(context.Context, admission.Request, *v1alpha1.Task) admission.Response
	update func(context.Context, admission.Request) admission.Response
}

func (h handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	switch req.Operation {
	case admissionv1.Create:
		task, resp := decodeTask(req.Object.Raw, req.Name)
		if task == nil {
			return resp
		}
		return h.create(ctx, req, task)
	case admissionv1.Update:
		return h.update(ctx, req)
	}
	return admission.Allowed("")
}

// defaultingHandler is the mutating webhook's handler. It answers with a
// patch of spec.config and spec.requester, the only parts it touches.
func defaultingHandler(d *Defaulter) handler {
	return handler{
		create: func(ctx context.Context, req admission.Request, task *v1alpha1.Task) admission.Response {
			return defaultCreate(ctx, d, req, task)
		},
		update: func(_ context.Context, req admission.Request) admission.Response {
			resp, _ := restoreUpdate(req)
			return resp
		},
	}
}

// validatingHandler is the validating webhook's handler.
func validatingHandler(v *Validator) handler {
	return handler{
		create: func(ctx context.Context, req admission.Request, task *v1alpha1.Task) admission.Response {
			return validateCreate(ctx, v, req, task)
		},
		update: func(ctx context.Context, req admission.Request) admission.Response {
			return validateUpdate(ctx, v, req)
		},
	}
}

// singleCallHandler is the single-call webhook's handler: one mutating
// webhook that defaults a new Task and then validates the defaulted Task in
// the same call, so the API server makes one round trip instead of two. It
// answers with the same patch, refusals and warnings as the pair.
func singleCallHandler(d *Defaulter, v *Validator) handler {
	return handler{
		create: func(ctx context.Context, req admission.Request, task *v1alpha1.Task) admission.Response {
			return thenValidate(defaultCreate(ctx, d, req, task), func() admission.Response {
				return validateCreate(ctx, v, req, task) // the defaulted Task
			})
		},
		update: func(ctx context.Context, req admission.Request) admission.Response {
			patch, restored := restoreUpdate(req)
			if restored != nil {
				req.Object.Raw = restored
			}
			return thenValidate(patch, func() admission.Response { return validateUpdate(ctx, v, req) })
		},
	}
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
