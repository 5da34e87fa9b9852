package actas

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// Clients send requests as one identity: a requester, or the manager.
type Clients struct {
	// Client reads and writes typed objects (Pods, ClusterRoleBindings,
	// Synchronizations) straight to the API server, never from a cache.
	Client client.Client
	// Metadata lists and patches objects as PartialObjectMetadata, so a
	// transformation never holds whole objects.
	Metadata metadata.Interface
	// Dynamic reaches any resource as unstructured objects.
	Dynamic dynamic.Interface
	// Requester is whom the requests act as; nil for the manager itself.
	Requester *v1alpha1.Requester
}

// ErrNoRequester: a Task without spec.requester (created before taskgate
// recorded requesters, or while its webhook was not installed) cannot be
// acted for in ModeRequester.
var ErrNoRequester = errors.New("the Task has no spec.requester")

// Factory hands out Clients per identity, reusing them for a while: one
// requester's Tasks share one set, and all share the manager's connections
// (client-go keeps one transport per TLS configuration; impersonation only
// wraps it).
type Factory struct {
	mode   Mode
	config *rest.Config
	scheme *runtime.Scheme
	mapper meta.RESTMapper
	own    *Clients
	cache  *cache.LRUExpireCache
}

// clientsTTL and clientsCacheSize bound the remembered per-requester clients.
const (
	clientsTTL       = 10 * time.Minute
	clientsCacheSize = 256
)

// NewFactory returns a Factory for the manager's config. In ModeController
// every Task gets the manager's own Clients.
func NewFactory(mode Mode, cfg *rest.Config, scheme *runtime.Scheme, mapper meta.RESTMapper) (*Factory, error) {
	f := &Factory{mode: mode, config: cfg, scheme: scheme, mapper: mapper, cache: cache.NewLRUExpireCache(clientsCacheSize)}
	own, err := f.build(rest.CopyConfig(cfg), nil)
	if err != nil {
		return nil, err
	}
	f.own = own
	return f, nil
}

// Mode is the Factory's mode.
func (f *Factory) Mode() Mode { return f.mode }

// Own returns the manager's own Clients, for what carries no rights of the
// requester: the Task's ServiceAccount, status, Events, deleting its own
// children.
func (f *Factory) Own() *Clients { return f.own }

// For returns the Clients a Task's rights-bearing requests go through: the
// requester's in ModeRequester (ErrNoRequester without one), the manager's
// in ModeController.
func (f *Factory) For(r *v1alpha1.Requester) (*Clients, error) {
	if f.mode == ModeController {
		return f.own, nil
	}
	if r == nil || r.Username == "" {
		return nil, ErrNoRequester
	}
	imp := Impersonation(r)
	key, err := json.Marshal(imp)
	if err != nil {
		return nil, fmt.Errorf("impersonation key: %w", err)
	}
	sum := sha256.Sum256(key)
	if c, ok := f.cache.Get(sum); ok {
		return c.(*Clients), nil
	}
	cfg := rest.CopyConfig(f.config)
	cfg.Impersonate = imp
	c, err := f.build(cfg, r)
	if err != nil {
		return nil, err
	}
	f.cache.Add(sum, c, clientsTTL)
	return c, nil
}

func (f *Factory) build(cfg *rest.Config, r *v1alpha1.Requester) (*Clients, error) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("http client: %w", err)
	}
	c, err := client.New(cfg, client.Options{HTTPClient: httpClient, Scheme: f.scheme, Mapper: f.mapper})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	md, err := metadata.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("metadata client: %w", err)
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	return &Clients{Client: c, Metadata: md, Dynamic: dyn, Requester: r}, nil
}

// probeUser is the made-up user the start-up probe impersonates.
const probeUser = "taskgate:impersonation-probe"

// Probe checks at start-up that the manager can act as a requester: it asks
// the API server who it is (a SelfSubjectReview, which any user may create)
// while impersonating a made-up user through constrained impersonation. It
// returns nil when the answer names that user, or an error that says
// whether the API server lacks constrained impersonation (before 1.36, or
// the ConstrainedImpersonation feature gate off) or the manager lacks the
// RBAC for it.
func Probe(ctx context.Context, cfg *rest.Config) error {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: probeUser}
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		return fmt.Errorf("impersonation probe client: %w", err)
	}
	res, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metaCreate)
	switch {
	case err != nil && strings.Contains(err.Error(), "impersonate-on:"):
		return fmt.Errorf("the API server supports constrained impersonation, but this manager may not use it (grant it the chart's impersonate:user-info and impersonate-on rules): %w", err)
	case err != nil:
		return fmt.Errorf("the API server does not offer constrained impersonation to this manager "+
			"(Kubernetes before 1.36, or the ConstrainedImpersonation feature gate off); Tasks will fail with Forbidden: "+
			"upgrade the cluster, or run with --act-as=controller (weaker: see the README): %w", err)
	case res.Status.UserInfo.Username != probeUser:
		return fmt.Errorf("impersonation probe: the API server answered as %q, not %q", res.Status.UserInfo.Username, probeUser)
	}
	return nil
}

// Self returns the manager's own user, as the API server authenticates it:
// the webhook lets only this user change a Task's requester or strip its
// finalizer.
func Self(ctx context.Context, cfg *rest.Config) (authenticationv1.UserInfo, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return authenticationv1.UserInfo{}, fmt.Errorf("self subject review client: %w", err)
	}
	res, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metaCreate)
	if err != nil {
		return authenticationv1.UserInfo{}, fmt.Errorf("ask the API server who this manager is (SelfSubjectReview): %w", err)
	}
	return res.Status.UserInfo, nil
}

// metaCreate are the options of the probes' creates.
var metaCreate = metav1.CreateOptions{}
