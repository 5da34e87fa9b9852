package webhook

import (
	"context"
	"fmt"
	"reflect"

	"gomodules.xyz/jsonpatch/v2"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/schemas"
)

// Who a run acts as: a TaskRun's spec.requester is recorded from the create
// request's userInfo, and neither it nor the finalizer that guarantees the
// run's cleanup can be taken away afterwards.

var (
	requesterPath  = specPath.Child("requester")
	finalizersPath = field.NewPath("metadata", "finalizers")
)

// Texts of the requester and finalizer answers, as constants so tests and
// docs quote them exactly.
const (
	warnRequesterReplaced = "spec.requester is recorded by taskgate as the user who creates the TaskRun (%s); the value supplied was replaced"
	errRequesterMismatch  = "must be the user who creates the TaskRun (%s), as taskgate's mutating webhook records it: " +
		"another mutating webhook changed it, or taskgate's did not run"
	errRequesterChanged = "spec.requester records who created the TaskRun, whose rights the run acts with; it cannot change"
	errSpecChanged      = "spec is immutable: a TaskRun runs what was admitted; create a new TaskRun (metadata.generateName works) to run again"
	errFinalizerRemoved = "only taskgate's manager%s may remove the %s finalizer: it removes what the run created " +
		"(its ClusterRoleBinding) first, so that nothing outlives it; delete the object and the finalizer goes once cleanup is done"
)

// recordRequester sets run.Spec.Requester to the user creating it. It
// returns the patch operation that records it (nil when the run already
// says so, as on a reinvocation) and a warning when a different requester
// was supplied.
func recordRequester(run *v1alpha1.TaskRun, user authenticationv1.UserInfo) (*jsonpatch.JsonPatchOperation, []string) {
	r := actas.FromUserInfo(user)
	supplied := run.Spec.Requester
	if supplied != nil && equality.Semantic.DeepEqual(supplied, r) {
		return nil, nil
	}
	run.Spec.Requester = r
	op := &jsonpatch.JsonPatchOperation{Operation: "add", Path: "/spec/requester", Value: r}
	if supplied == nil {
		return op, nil
	}
	return op, []string{fmt.Sprintf(warnRequesterReplaced, actas.Describe(r))}
}

// checkRequester refuses a new TaskRun whose spec.requester is not the user
// creating it. In the webhook pair the validating webhook runs after every
// mutating one, so this catches a later webhook that rewrote the requester.
func checkRequester(run *v1alpha1.TaskRun, user authenticationv1.UserInfo) field.ErrorList {
	want := actas.FromUserInfo(user)
	if run.Spec.Requester != nil && equality.Semantic.DeepEqual(run.Spec.Requester, want) {
		return nil
	}
	return field.ErrorList{field.Invalid(requesterPath, field.OmitValueType{}, fmt.Sprintf(errRequesterMismatch, actas.Describe(want)))}
}

// accessSubject is the user the access checks ask about, and the hint a
// refusal carries: the requester as taskgate will impersonate them, or in
// ModeController the request's own user.
func accessSubject(mode actas.Mode, user authenticationv1.UserInfo) (authenticationv1.UserInfo, string) {
	if mode == actas.ModeController {
		return user, ""
	}
	r := actas.FromUserInfo(user)
	return actas.Effective(r), actas.MastersHint(r)
}

// runSpecChanges refuses any change of a TaskRun's spec, naming
// spec.requester when that is what changed. (The CRD says so too; this
// says why.)
func runSpecChanges(old, cur *v1alpha1.TaskRunSpec) field.ErrorList {
	var errs field.ErrorList
	if !equality.Semantic.DeepEqual(old.Requester, cur.Requester) {
		errs = append(errs, field.Forbidden(requesterPath, errRequesterChanged))
	}
	o, c := *old, *cur
	o.Requester, c.Requester = nil, nil
	oldSnap, curSnap := o.TaskSpec, c.TaskSpec
	o.TaskSpec, c.TaskSpec = nil, nil
	if !equality.Semantic.DeepEqual(o, c) || (oldSnap == nil) != (curSnap == nil) ||
		(oldSnap != nil && pluginSpecChanged(oldSnap, curSnap)) {
		errs = append(errs, field.Forbidden(specPath, errSpecChanged))
	}
	return errs
}

// sameConfig compares two configs as JSON values, so that a client that
// re-encodes them (other key order, spacing) changes nothing.
func sameConfig(a, b []byte) bool {
	av, aerr := schemas.DecodeJSON(a)
	bv, berr := schemas.DecodeJSON(b)
	if aerr != nil || berr != nil {
		return string(a) == string(b)
	}
	return reflect.DeepEqual(av, bv)
}

// finalizerRule refuses an update that takes away the taskgate finalizer
// unless the manager sends it.
func (v *Validator) finalizerRule(ctx context.Context, old, cur client.Object) field.ErrorList {
	if !controllerutil.ContainsFinalizer(old, v1alpha1.Finalizer) || controllerutil.ContainsFinalizer(cur, v1alpha1.Finalizer) {
		return nil
	}
	if req, _ := requestFrom(ctx); v.Manager != "" && req.UserInfo.Username == v.Manager {
		return nil
	}
	manager := v.Manager
	if manager != "" {
		manager = " (" + manager + ")"
	}
	return field.ErrorList{field.Forbidden(finalizersPath, fmt.Sprintf(errFinalizerRemoved, manager, v1alpha1.Finalizer))}
}
