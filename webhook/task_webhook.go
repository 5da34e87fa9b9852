package webhook

import (
	"context"
	"fmt"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/registry"
	"github.com/astronetes/taskgate/schemas"
)

var taskGroupKind = v1alpha1.GroupVersion.WithKind("Task").GroupKind()

// Defaulter is the mutating webhook's defaulting: it fills in a new Task's
// defaults. The mutating handlers also record spec.requester, from the
// request's userInfo, in the same patch (see recordRequester).
type Defaulter struct{ Admitter *Admitter }

// Validator is the validating webhook: it refuses a wrong Task with every
// bad field at once, and one that would lend the user rights they lack.
type Validator struct {
	Admitter *Admitter
	// Authz checks the requesting user's rights; nil skips the checks.
	Authz Authorizer
	// ActAs says whom the access checks ask about: in actas.ModeRequester
	// (also when empty) the requester as the controller will impersonate
	// them (actas.Effective: without system:masters), in
	// actas.ModeController the request's full userInfo.
	ActAs actas.Mode
	// Manager is the manager's own username, the only user who may remove
	// the v1alpha1.Finalizer; empty lets nobody remove it.
	Manager string
	// Preflight, when set, dry-runs a custom-image Task's children on the
	// API server as the requester once the Task passed every other check.
	Preflight *Preflight
}

// Default fills in a created Task's defaults; the mutating handler calls
// it. Only CREATE is defaulted: spec is immutable, so an UPDATE has nothing
// to fill.
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

// ValidateCreate checks a created Task: the Task's schema and
// plugin rules, the recorded requester, the requester's rights, and the
// preflight, each only once everything before it passed.
func (v *Validator) ValidateCreate(ctx context.Context, task *v1alpha1.Task) (admission.Warnings, error) {
	start := time.Now()
	errs, warnings, checks := v.Admitter.check(task, v.Authz != nil)
	req, hasReq := requestFrom(ctx)
	if hasReq {
		errs = mergeErrors(errs, checkRequester(task, req.UserInfo))
	}
	var err error
	if len(errs) == 0 && len(checks) > 0 {
		errs, err = v.checkAccess(ctx, task, req, checks)
	}
	if len(errs) == 0 && err == nil && hasReq && v.Preflight != nil && task.Spec.Plugin == v1alpha1.PluginCustomImage {
		var more []string
		errs, more = v.Preflight.CustomImage(ctx, task, actas.FromUserInfo(req.UserInfo))
		warnings = append(warnings, more...)
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

// ValidateUpdate checks an update: spec cannot change, and
// only the manager may remove the finalizer. An unchanged spec is not
// checked again, so metadata and finalizer updates go through even if the
// schemas changed since the Task was admitted.
func (v *Validator) ValidateUpdate(ctx context.Context, oldTask, task *v1alpha1.Task) (admission.Warnings, error) {
	start := time.Now()
	errs := specChanges(oldTask.Spec, task.Spec)
	if removesFinalizer(oldTask, task) {
		req, _ := requestFrom(ctx)
		if v.Manager == "" || req.UserInfo.Username != v.Manager {
			errs = append(errs, finalizerForbidden(v.Manager))
		}
	}
	observe("validate", task, admissionv1.Update, start, errs, nil)
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(taskGroupKind, task.Name, errs)
	}
	return nil, nil
}

// checkAccess asks the Authorizer about the identity the run acts as.
func (v *Validator) checkAccess(ctx context.Context, task *v1alpha1.Task, req admission.Request, checks []AccessCheck) (field.ErrorList, error) {
	if req.UserInfo.Username == "" {
		return nil, apierrors.NewBadRequest("no admission request in context, or no user in it")
	}
	user, hint := accessSubject(v.ActAs, req.UserInfo)
	errs, err := authorize(ctx, v.Authz, user, checks, hint)
	if err != nil {
		log.FromContext(ctx).Error(err, "authorization check failed", "task", task.Name)
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("taskgate could not check your permissions (retry): %v", err))
	}
	return errs, nil
}

// requestFrom is the admission request in ctx, if any.
func requestFrom(ctx context.Context) (admission.Request, bool) {
	req, err := admission.RequestFromContext(ctx)
	return req, err == nil
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
	admissionRequests.WithLabelValues(webhook, registry.Label(task.Spec.Plugin), string(op), verdict).Inc()
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
	// AccessReviewDenialCacheTTL is how long a denial is reused while the
	// cache is on: zero means DefaultAccessReviewDenialCacheTTL (at most
	// AccessReviewCacheTTL), negative remembers no denial.
	AccessReviewDenialCacheTTL time.Duration
	// ActAs says whom the controller acts as; admission's access checks ask
	// about that identity (actas.Effective of the requester by default).
	ActAs actas.Mode
	// Preflight, when set, dry-runs a custom-image Task's Pod and binding on
	// the API server as the requester at admission.
	Preflight bool
	// PreflightCacheTTL, when positive, remembers a requester's clean
	// preflight passes for that long (see Preflight.CacheTTL); zero dry-runs
	// every Task.
	PreflightCacheTTL time.Duration
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

// setupTimeout bounds the API requests SetupWithManager makes.
const setupTimeout = 30 * time.Second

// SetupWithManager registers the Task webhooks on the manager's webhook
// server: the mutating and validating pair, and the single-call webhook.
// Which of them the API server calls is up to the webhook configurations.
// It asks the API server who the manager is (actas.Self), the one user
// that may remove a Task's finalizer.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	v, err := NewValidatorForManager(mgr, opts)
	if err != nil {
		return err
	}
	mutate, validate, admit := NewHandlers(v)
	srv := mgr.GetWebhookServer()
	srv.Register(MutatePath, mutate)
	srv.Register(ValidatePath, validate)
	srv.Register(AdmitPath, admit)
	return nil
}

// NewValidatorForManager builds the Validator SetupWithManager serves:
// discovery for scopes, SubjectAccessReviews through the manager's client,
// the manager's own username, and with opts.Preflight the clients that act
// as requesters.
func NewValidatorForManager(mgr ctrl.Manager, opts Options) (*Validator, error) {
	mode := opts.ActAs
	if mode == "" {
		mode = actas.ModeRequester
	}
	if _, err := actas.ParseMode(string(mode)); err != nil {
		return nil, err
	}
	a, err := NewAdmitterFromOptions(opts)
	if err != nil {
		return nil, err
	}
	a.Scopes = MapperScopes{Mapper: mgr.GetRESTMapper()}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	self, err := actas.Self(ctx, mgr.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("learn the manager's own user, the only one that may remove the %s finalizer: %w", v1alpha1.Finalizer, err)
	}
	v := &Validator{Admitter: a, Authz: NewAuthorizer(mgr.GetClient(), opts), ActAs: mode, Manager: self.Username}
	if opts.Preflight {
		f, err := actas.NewFactory(mode, mgr.GetConfig(), mgr.GetScheme(), mgr.GetRESTMapper())
		if err != nil {
			return nil, fmt.Errorf("preflight clients: %w", err)
		}
		v.Preflight = &Preflight{Clients: f.For, CacheTTL: opts.PreflightCacheTTL}
	}
	return v, nil
}

// NewAuthorizer is the SubjectAccessReview authorizer the webhooks use,
// behind a cache of answers when opts.AccessReviewCacheTTL is set.
func NewAuthorizer(c client.Client, opts Options) Authorizer {
	var authz Authorizer = SARAuthorizer{Client: c}
	if opts.AccessReviewCacheTTL > 0 {
		cached := NewCachedAuthorizer(authz, opts.AccessReviewCacheTTL, DefaultAccessReviewCacheSize)
		if opts.AccessReviewDenialCacheTTL != 0 {
			cached.WithDenialTTL(min(opts.AccessReviewDenialCacheTTL, opts.AccessReviewCacheTTL))
		}
		authz = cached
	}
	return authz
}

// Handlers returns the HTTP handlers of the mutating and validating webhooks
// for a Validator with only an Admitter and an Authorizer (no preflight, no
// manager identity: nobody may remove the finalizer).
func Handlers(a *Admitter, authz Authorizer) (mutate, validate *ReviewHandler) {
	mutate, validate, _ = NewHandlers(&Validator{Admitter: a, Authz: authz})
	return mutate, validate
}

// SingleCallHandler returns the HTTP handler of the single-call webhook for
// a Validator with only an Admitter and an Authorizer (see Handlers).
func SingleCallHandler(a *Admitter, authz Authorizer) *ReviewHandler {
	_, _, admit := NewHandlers(&Validator{Admitter: a, Authz: authz})
	return admit
}

// NewHandlers returns the HTTP handlers of the three webhooks around one
// Validator: the mutating and validating pair, and the single-call webhook,
// a mutating webhook that defaults and then validates in the same call. The
// single call is as strict as the pair only while no later mutating webhook
// changes Tasks; its configuration should say reinvocationPolicy: IfNeeded.
func NewHandlers(v *Validator) (mutate, validate, single *ReviewHandler) {
	d := &Defaulter{Admitter: v.Admitter}
	mutate = NewReviewHandler(&admission.Webhook{Handler: defaultingHandler(d)})
	validate = NewReviewHandler(&admission.Webhook{Handler: validatingHandler(v)})
	single = NewReviewHandler(&admission.Webhook{Handler: singleCallHandler(d, v)})
	return mutate, validate, single
}
