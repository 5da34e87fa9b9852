package webhook

import (
	"context"
	"fmt"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/astronetes/taskgate/actas"
	"github.com/astronetes/taskgate/api/v1alpha1"
	"github.com/astronetes/taskgate/registry"
	"github.com/astronetes/taskgate/schemas"
)

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
	// AccessReviewsPerSecond bounds the SubjectAccessReviews each user's
	// creates may cost (LimitedAuthorizer): zero means
	// DefaultAccessReviewsPerSecond, negative no bound. A create past it is
	// refused 429 with Retry-After.
	AccessReviewsPerSecond float32
	// ActAs says whom the controller acts as; admission's access checks ask
	// about that identity (actas.Effective of the requester by default).
	ActAs actas.Mode
	// Preflight, when set, dry-runs a custom-image run's Pod and binding on
	// the API server as the requester at TaskRun admission.
	Preflight bool
	// PreflightCacheTTL, when positive, remembers a requester's clean
	// preflight passes for that long (see Preflight.CacheTTL); zero dry-runs
	// every run.
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

// SetupWithManager registers the webhooks on the manager's webhook server:
// the mutating and validating pair and the single-call webhook (paths in
// http.go), each serving Tasks and TaskRuns. Which of them the API server
// calls is up to the webhook configurations. It asks the API server
// who the manager is (actas.Self), the one user that may remove the
// finalizer.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	v, err := NewValidatorForManager(mgr, opts)
	if err != nil {
		return err
	}
	srv := mgr.GetWebhookServer()
	mutate, validate, admit := NewHandlers(v)
	srv.Register(MutatePath, mutate)
	srv.Register(ValidatePath, validate)
	srv.Register(AdmitPath, admit)
	return nil
}

// NewValidatorForManager builds the Validator SetupWithManager serves:
// discovery for scopes, SubjectAccessReviews through the manager's client,
// the manager's uncached reader for the Tasks TaskRuns name, the manager's
// own username, and with opts.Preflight the clients that act as requesters.
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
	v := &Validator{Admitter: a, Authz: NewAuthorizer(mgr.GetClient(), opts), ActAs: mode, Manager: self.Username, Reader: mgr.GetAPIReader()}
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
	switch qps := opts.AccessReviewsPerSecond; {
	case qps == 0:
		authz = NewLimitedAuthorizer(authz, DefaultAccessReviewsPerSecond, DefaultAccessReviewBurst)
	case qps > 0:
		authz = NewLimitedAuthorizer(authz, qps, max(DefaultAccessReviewBurst, int(qps)))
	}
	if opts.AccessReviewCacheTTL > 0 {
		cached := NewCachedAuthorizer(authz, opts.AccessReviewCacheTTL, DefaultAccessReviewCacheSize)
		if opts.AccessReviewDenialCacheTTL != 0 {
			cached.WithDenialTTL(min(opts.AccessReviewDenialCacheTTL, opts.AccessReviewCacheTTL))
		}
		authz = cached
	}
	return authz
}

// Handlers returns the HTTP handlers of the Task mutating and validating
// webhooks for a Validator with only an Admitter and an Authorizer.
func Handlers(a *Admitter, authz Authorizer) (mutate, validate *ReviewHandler) {
	mutate, validate, _ = NewHandlers(&Validator{Admitter: a, Authz: authz})
	return mutate, validate
}

// SingleCallHandler returns the HTTP handler of the Task single-call
// webhook for a Validator with only an Admitter and an Authorizer.
func SingleCallHandler(a *Admitter, authz Authorizer) *ReviewHandler {
	_, _, admit := NewHandlers(&Validator{Admitter: a, Authz: authz})
	return admit
}

// NewHandlers returns the HTTP handlers of the three webhooks around one
// Validator: the mutating and validating pair, and the single-call
// webhook, a mutating webhook that defaults and then validates in the same
// call. Each serves both kinds, by the resource of the review (taskruns,
// else tasks). The single call is as strict as the pair only while no later
// mutating webhook changes the object; its configuration says
// reinvocationPolicy: IfNeeded.
func NewHandlers(v *Validator) (mutate, validate, single *ReviewHandler) {
	tm, tv, ts := taskHandlers(v)
	rm, rv, rs := runHandlers(v)
	return NewReviewHandler(&admission.Webhook{Handler: byResource{task: tm, run: rm}}),
		NewReviewHandler(&admission.Webhook{Handler: byResource{task: tv, run: rv}}),
		NewReviewHandler(&admission.Webhook{Handler: byResource{task: ts, run: rs}})
}

// byResource gives a review to the handler of its kind.
type byResource struct{ task, run admission.Handler }

func (b byResource) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Resource.Resource == "taskruns" {
		return b.run.Handle(ctx, req)
	}
	return b.task.Handle(ctx, req)
}

// requestFrom is the admission request in ctx, if any.
func requestFrom(ctx context.Context) (admission.Request, bool) {
	req, err := admission.RequestFromContext(ctx)
	return req, err == nil
}

func operation(ctx context.Context) admissionv1.Operation {
	req, _ := requestFrom(ctx)
	return req.Operation
}

// observe counts one admission decision by webhook, kind, plugin,
// operation and verdict, and times it.
func observe(webhook, kind string, plugin v1alpha1.Plugin, op admissionv1.Operation, start time.Time, errs field.ErrorList, err error) {
	verdict := "allowed"
	switch {
	case err != nil:
		verdict = "error"
	case len(errs) > 0:
		verdict = "denied"
	}
	admissionRequests.WithLabelValues(webhook, kind, registry.Label(plugin), string(op), verdict).Inc()
	admissionDuration.WithLabelValues(webhook).Observe(time.Since(start).Seconds())
}
