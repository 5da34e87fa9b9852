package webhook

import (
	"fmt"
	"reflect"

	"gomodules.xyz/jsonpatch/v2"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/schemas"
)

// Who a Task acts as: spec.requester is recorded from the create request's
// userInfo, and neither it nor the finalizer that guarantees the Task's
// cleanup can be taken away afterwards.

var (
	requesterPath  = specPath.Child("requester")
	finalizersPath = field.NewPath("metadata", "finalizers")
)

// Texts of the requester and finalizer answers, as constants so tests and
// docs quote them exactly.
const (
	warnRequesterReplaced = "spec.requester is recorded by taskgate as the user who creates the Task (%s); the value supplied was replaced"
	errRequesterMismatch  = "must be the user who creates the Task (%s), as taskgate's mutating webhook records it: " +
		"another mutating webhook changed it, or taskgate's did not run"
	errRequesterChanged = "spec.requester records who created the Task, whose rights the Task acts with; it cannot change"
	errSpecChanged      = "spec is immutable: a Task runs once; create a new Task (metadata.generateName works) to run again"
	errFinalizerRemoved = "only taskgate's manager%s may remove the %s finalizer: it removes what the Task created " +
		"(its ClusterRoleBinding) first, so that nothing outlives the Task; delete the Task and the finalizer goes once cleanup is done"
)

// recordRequester sets task.Spec.Requester to the user creating it. It
// returns the patch operation that records it (nil when the Task already
// says so, as on a reinvocation) and a warning when a different requester
// was supplied.
func recordRequester(task *v1alpha1.Task, user authenticationv1.UserInfo) (*jsonpatch.JsonPatchOperation, []string) {
	r := actas.FromUserInfo(user)
	supplied := task.Spec.Requester
	if supplied != nil && equality.Semantic.DeepEqual(supplied, r) {
		return nil, nil
	}
	task.Spec.Requester = r
	op := &jsonpatch.JsonPatchOperation{Operation: "add", Path: "/spec/requester", Value: r}
	if supplied == nil {
		return op, nil
	}
	return op, []string{fmt.Sprintf(warnRequesterReplaced, actas.Describe(r))}
}

// checkRequester refuses a new Task whose spec.requester is not the user
// creating it. In the webhook pair the validating webhook runs after every
// mutating one, so this catches a later webhook that rewrote the requester.
func checkRequester(task *v1alpha1.Task, user authenticationv1.UserInfo) field.ErrorList {
	want := actas.FromUserInfo(user)
	if task.Spec.Requester != nil && equality.Semantic.DeepEqual(task.Spec.Requester, want) {
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

// specChanges refuses any change of spec, naming spec.requester when that
// is what changed.
func specChanges(old, cur v1alpha1.TaskSpec) field.ErrorList {
	var errs field.ErrorList
	if !equality.Semantic.DeepEqual(old.Requester, cur.Requester) {
		errs = append(errs, field.Forbidden(requesterPath, errRequesterChanged))
	}
	if old.Plugin != cur.Plugin || !sameConfig(old.Config.Raw, cur.Config.Raw) {
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

// removesFinalizer reports whether an update takes away the taskgate finalizer.
func removesFinalizer(old, cur *v1alpha1.Task) bool {
	return controllerutil.ContainsFinalizer(old, v1alpha1.Finalizer) && !controllerutil.ContainsFinalizer(cur, v1alpha1.Finalizer)
}

func finalizerForbidden(manager string) *field.Error {
	if manager != "" {
		manager = " (" + manager + ")"
	}
	return field.Forbidden(finalizersPath, fmt.Sprintf(errFinalizerRemoved, manager, v1alpha1.Finalizer))
}
