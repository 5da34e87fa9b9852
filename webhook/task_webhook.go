package webhook

import (
	"context"
	"fmt"
	"reflect"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/schemas"
)

var taskGroupKind = v1alpha1.GroupVersion.WithKind("Task").GroupKind()

// Defaulter is the mutating webhook: it fills in a new Task's defaults.
type Defaulter struct{ Admitter *Admitter }

// Validator is the validating webhook: it refuses a wrong Task with every
// bad field at once, and one that would lend the user rights they lack.
type Validator struct {
	Admitter *Admitter
	// Authz checks the requesting user's rights; nil skips the checks.
	Authz Authorizer
}

var (
	_ admission.Defaulter[*v1alpha1.Task] = &Defaulter{}
	_ admission.Validator[*v1alpha1.Task] = &Validator{}
)

// Default implements admission.Defaulter. Only CREATE is defaulted: spec is
// immutable, so an UPDATE has nothing to fill.
func (d *Defaulter) Default(ctx context.Context, task *v1alpha1.Task) error {
	start := time.Now()
	op := operation(ctx)
	if op != "" && op != admissionv1.Create {
		return nil
	}
	errs := d.Admitter.Default(task)
	observe("mutate", task, op, start, errs, nil)
	if len(errs) > 0 {
		return apierrors.NewInvalid(taskGroupKind, task.Name, errs)
	}
	return nil
}

// ValidateCreate implements admission.Validator.
func (v *Validator) ValidateCreate(ctx context.Context, task *v1alpha1.Task) (admission.Warnings, error) {
	start := time.Now()
	errs, warnings, checks := v.Admitter.check(task, v.Authz != nil)
	var err error
	if len(errs) == 0 && len(checks) > 0 {
		errs, err = v.checkAccess(ctx, task, checks)
	}
	observe("validate", task, admissionv1.Create, start, errs, err)
	if err != nil {
		return warnings, err
	}
	if len(errs) > 0 {
		return warnings, apierrors.NewInvalid(taskGroupKind, task.Name, errs)
	}
	return warnings, nil
}

// ValidateUpdate implements admission.Validator: spec cannot change, and an
// unchanged spec is not checked again, so metadata and finalizer updates go
// through even if the schemas changed since the Task was admitted.
func (v *Validator) ValidateUpdate(ctx context.Context, oldTask, task *v1alpha1.Task) (admission.Warnings, error) {
	start := time.Now()
	var errs field.ErrorList
	if !sameSpec(oldTask.Spec, task.Spec) {
		errs = field.ErrorList{field.Forbidden(specPath, "spec is immutable: a Task runs once; create a new Task (metadata.generateName works) to run again")}
	}
	observe("validate", task, admissionv1.Update, start, errs, nil)
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(taskGroupKind, task.Name, errs)
	}
	return nil, nil
}

// ValidateDelete implements admission.Validator; deletes are always allowed.
func (v *Validator) ValidateDelete(context.Context, *v1alpha1.Task) (admission.Warnings, error) {
	return nil, nil
}

func (v *Validator) checkAccess(ctx context.Context, task *v1alpha1.Task, checks []AccessCheck) (field.ErrorList, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, apierrors.NewBadRequest("no admission request in context: " + err.Error())
	}
	errs, err := authorize(ctx, v.Authz, req.UserInfo, checks)
	if err != nil {
		log.FromContext(ctx).Error(err, "authorization check failed", "task", task.Name)
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("taskgate could not check your permissions (retry): %v", err))
	}
	return errs, nil
}

func sameSpec(a, b v1alpha1.TaskSpec) bool {
	if a.Plugin != b.Plugin {
		return false
	}
	av, aerr := schemas.DecodeJSON(a.Config.Raw)
	bv, berr := schemas.DecodeJSON(b.Config.Raw)
	if aerr != nil || berr != nil {
		return string(a.Config.Raw) == string(b.Config.Raw)
	}
	return reflect.DeepEqual(av, bv)
}

func operation(ctx context.Context) admissionv1.Operation {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return ""
	}
	return req.Operation
}

func observe(webhook string, task *v1alpha1.Task, op admissionv1.Operation, start time.Time, errs field.ErrorList, err error) {
	verdict := "allowed"
	switch {
	case err != nil:
		verdict = "error"
	case len(errs) > 0:
		verdict = "denied"
	}
	plugin := string(task.Spec.Plugin)
	if _, known := plugins[task.Spec.Plugin]; !known {
		plugin = "unknown" // bounded label values, whatever users send
	}
	admissionRequests.WithLabelValues(webhook, plugin, string(op), verdict).Inc()
	admissionDuration.WithLabelValues(webhook).Observe(time.Since(start).Seconds())
}

// Options configure the admission webhooks.
type Options struct {
	// AllowedClusterRoles, when set, is the only ClusterRoles Tasks may bind.
	AllowedClusterRoles []string
	// SyncSchemaDir adds or overrides synchronization-plugin schemas.
	SyncSchemaDir string
	// AccessReviewCacheTTL, when positive, is how long an allowed
	// SubjectAccessReview answer is reused for the same user and question
	// (see CachedAuthorizer); zero asks the API server every time.
	AccessReviewCacheTTL time.Duration
	// ActAs says whom the controller acts as; admission's access checks ask
	// about that identity (actas.Effective of the requester by default).
	ActAs actas.Mode
	// Preflight, when set, dry-runs a custom-image Task's Pod and binding on
	// the API server as the requester at admission.
	Preflight bool
}

// NewAdmitterFromOptions loads the schemas and builds the Admitter the
// webhooks share.
func NewAdmitterFromOptions(opts Options) (*Admitter, error) {
	set, err := schemas.Load(opts.SyncSchemaDir)
	if err != nil {
		return nil, fmt.Errorf("load schemas: %w", err)
	}
	a := NewAdmitter(set)
	a.AllowedClusterRoles = opts.AllowedClusterRoles
	return a, nil
}

// SetupWithManager registers the Task webhooks on the manager's webhook
// server: the mutating and validating pair, and the single-call webhook.
// Which of them the API server calls is up to the webhook configurations.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	a, err := NewAdmitterFromOptions(opts)
	if err != nil {
		return err
	}
	a.Scopes = MapperScopes{Mapper: mgr.GetRESTMapper()}
	authz := NewAuthorizer(mgr.GetClient(), opts)
	mutate, validate := Handlers(mgr.GetScheme(), a, authz)
	srv := mgr.GetWebhookServer()
	srv.Register(MutatePath, mutate)
	srv.Register(ValidatePath, validate)
	srv.Register(AdmitPath, SingleCallHandler(a, authz))
	return nil
}

// NewAuthorizer is the SubjectAccessReview authorizer the webhooks use,
// behind a cache of allowed answers when opts.AccessReviewCacheTTL is set.
func NewAuthorizer(c client.Client, opts Options) Authorizer {
	var authz Authorizer = SARAuthorizer{Client: c}
	if opts.AccessReviewCacheTTL > 0 {
		authz = NewCachedAuthorizer(authz, opts.AccessReviewCacheTTL, DefaultAccessReviewCacheSize)
	}
	return authz
}

// Handlers returns the HTTP handlers of the mutating and validating webhooks.
// The scheme is not needed to decode Tasks; it is kept so callers wire the
// handlers the way controller-runtime's builder would.
func Handlers(_ *runtime.Scheme, a *Admitter, authz Authorizer) (mutate, validate *ReviewHandler) {
	mutate = NewReviewHandler(&admission.Webhook{Handler: defaultingHandler{defaulter: &Defaulter{Admitter: a}}})
	validate = NewReviewHandler(&admission.Webhook{Handler: validatingHandler{validator: &Validator{Admitter: a, Authz: authz}}})
	return mutate, validate
}

// SingleCallHandler returns the HTTP handler of the single-call webhook: a
// mutating webhook that defaults and then validates in the same call. It is
// as strict as the pair only while no later mutating webhook changes Tasks;
// its configuration should say reinvocationPolicy: IfNeeded.
func SingleCallHandler(a *Admitter, authz Authorizer) *ReviewHandler {
	return NewReviewHandler(&admission.Webhook{Handler: singleCallHandler{
		defaulter: &Defaulter{Admitter: a},
		validator: &Validator{Admitter: a, Authz: authz},
	}})
}
