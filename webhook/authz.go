package webhook

import (
	"context"
	"fmt"
	"sync"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Authorizer answers whether a user may do something.
type Authorizer interface {
	Allowed(ctx context.Context, user authenticationv1.UserInfo, attrs authorizationv1.ResourceAttributes) (allowed bool, reason string, err error)
}

// SARAuthorizer asks the API server with a SubjectAccessReview, so the
// answer is the cluster's own authorization (RBAC, webhooks, ...).
type SARAuthorizer struct{ Client client.Client }

// Allowed implements Authorizer.
func (s SARAuthorizer) Allowed(ctx context.Context, user authenticationv1.UserInfo, attrs authorizationv1.ResourceAttributes) (bool, string, error) {
	extra := make(map[string]authorizationv1.ExtraValue, len(user.Extra))
	for k, v := range user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		ResourceAttributes: &attrs,
		User:               user.Username,
		Groups:             user.Groups,
		UID:                user.UID,
		Extra:              extra,
	}}
	if err := s.Client.Create(ctx, sar); err != nil {
		return false, "", fmt.Errorf("subjectaccessreview %s %s: %w", attrs.Verb, attrs.Resource, err)
	}
	return sar.Status.Allowed && !sar.Status.Denied, sar.Status.Reason, nil
}

// maxParallelChecks bounds the SubjectAccessReviews one admission sends at once.
const maxParallelChecks = 8

// MaxAccessChecks bounds the SubjectAccessReviews one admission review may
// cost, so that a single Task cannot make the webhook hammer the API
// server. A transformation needing more is refused with a field error that
// says how to split it (see plugin_transformation.go); the other plugins
// need at most three.
const MaxAccessChecks = 64

// authorize runs the checks for user, in parallel, and returns a Forbidden
// field error for each one the user fails, in the order of checks; hint is
// appended to each refusal (actas.MastersHint). More than MaxAccessChecks
// checks is a bug of the caller, refused before any is sent.
func authorize(ctx context.Context, authz Authorizer, user authenticationv1.UserInfo, checks []AccessCheck, hint string) (field.ErrorList, error) {
	if len(checks) > MaxAccessChecks {
		return nil, fmt.Errorf("%d access checks, more than %d per review", len(checks), MaxAccessChecks)
	}
	denied := make([]*field.Error, len(checks))
	errs := make([]error, len(checks))
	sem := make(chan struct{}, maxParallelChecks)
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ok, _, err := authz.Allowed(ctx, user, c.Attributes)
			switch {
			case err != nil:
				errs[i] = err
			case !ok:
				denied[i] = field.Forbidden(c.Field, fmt.Sprintf("user %q may not %s: %s%s",
					user.Username, describeAttrs(c.Attributes), c.Why, hint))
			}
		}()
	}
	wg.Wait()
	var out field.ErrorList
	for i := range checks {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if denied[i] != nil {
			out = append(out, denied[i])
		}
	}
	return out, nil
}

func describeAttrs(a authorizationv1.ResourceAttributes) string {
	s := a.Verb + " " + a.Resource
	if a.Group != "" {
		s += "." + a.Group
	}
	if a.Name != "" {
		s += " " + a.Name
	}
	if a.Namespace != "" {
		s += " in namespace " + a.Namespace
	} else if a.Name == "" {
		s += " cluster-wide"
	}
	return s
}
