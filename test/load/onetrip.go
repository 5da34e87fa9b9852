package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/webhook"
)

// oneTrip is the option measured as modeOneTrip: one mutating webhook that
// defaults and then validates (schema, plugin rules, SubjectAccessReviews)
// in the same call, so the API server makes one round trip instead of two.
// It uses taskgate's own Defaulter and Validator and HTTP handler; only the
// split between two webhooks differs. Not for production as it stands: it
// validates before any later mutating webhook of the cluster runs.
func oneTrip(mgr ctrl.Manager, a *webhook.Admitter, authz webhook.Authorizer) http.Handler {
	d := &webhook.Defaulter{Admitter: a}
	v := &webhook.Validator{Admitter: a, Authz: authz}
	dec := admission.NewDecoder(mgr.GetScheme())
	h := admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		ctx = admission.NewContextWithRequest(ctx, req)
		task := &v1alpha1.Task{}
		if err := dec.Decode(req, task); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		var warnings admission.Warnings
		var err error
		switch req.Operation {
		case admissionv1.Create:
			if err = d.Default(ctx, task); err == nil {
				warnings, err = v.ValidateCreate(ctx, task)
			}
		case admissionv1.Update:
			old := &v1alpha1.Task{}
			if err = dec.DecodeRaw(req.OldObject, old); err != nil {
				return admission.Errored(http.StatusBadRequest, err)
			}
			warnings, err = v.ValidateUpdate(ctx, old, task)
		default:
			return admission.Allowed("")
		}
		if err != nil {
			return denied(err).WithWarnings(warnings...)
		}
		raw, err := json.Marshal(task)
		if err != nil {
			return admission.Errored(http.StatusInternalServerError, err)
		}
		return admission.PatchResponseFromRaw(req.Object.Raw, raw).WithWarnings(warnings...)
	})
	return webhook.NewReviewHandler(&admission.Webhook{Handler: h})
}

// denied answers as controller-runtime's validating wrapper does: the
// Status of an API error (422 with its causes), 403 otherwise.
func denied(err error) admission.Response {
	var apiStatus apierrors.APIStatus
	if errors.As(err, &apiStatus) {
		st := apiStatus.Status()
		return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &st}}
	}
	return admission.Denied(err.Error())
}
