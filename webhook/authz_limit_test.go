package webhook

import (
	"context"
	"errors"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
)

type countingAuthorizer struct{ calls int }

func (c *countingAuthorizer) Allowed(context.Context, authenticationv1.UserInfo, authorizationv1.ResourceAttributes) (bool, string, error) {
	c.calls++
	return true, "", nil
}

// One user's flood is cut at their burst, and sends nothing past it;
// another user's reviews go through untouched.
func TestLimitedAuthorizer(t *testing.T) {
	inner := &countingAuthorizer{}
	l := NewLimitedAuthorizer(inner, 0.001, 10) // no refill within the test
	mallory, alice := authenticationv1.UserInfo{Username: "mallory"}, authenticationv1.UserInfo{Username: "alice"}
	attrs := authorizationv1.ResourceAttributes{Verb: "patch", Resource: "configmaps", Namespace: "random-1"}
	var refused int
	for range 50 {
		if _, _, err := l.Allowed(t.Context(), mallory, attrs); errors.Is(err, errTooManyReviews) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if refused != 40 || inner.calls != 10 {
		t.Fatalf("mallory: %d refused, %d sent; want 40 refused and only her burst of 10 sent", refused, inner.calls)
	}
	for range 10 {
		if ok, _, err := l.Allowed(t.Context(), alice, attrs); err != nil || !ok {
			t.Fatalf("alice refused (%v, %v) because of mallory's flood", ok, err)
		}
	}
}
