// Package actas decides whom a Task acts as, and builds the clients that act
// so. By default (ModeRequester) that is the user who created the Task, as
// recorded in spec.requester at admission, impersonated through Kubernetes'
// constrained impersonation (KEP-5284, beta and on by default since 1.36):
// the API server then authorizes and admits every such request as the
// requester's own, with its RBAC escalation checks, PodSecurity, quotas and
// other webhooks. ModeController keeps the manager's own identity, for
// clusters without constrained impersonation; only admission's checks guard
// it then.
package actas

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/client-go/rest"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

// Mode says whom a Task's child writes are sent as.
type Mode string

const (
	// ModeRequester impersonates the Task's requester (the default).
	ModeRequester Mode = "requester"
	// ModeController uses the manager's own identity (clusters before 1.36).
	ModeController Mode = "controller"
)

// ParseMode reads the --act-as flag.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeRequester, ModeController:
		return m, nil
	}
	return "", fmt.Errorf("--act-as=%q: want %q or %q", s, ModeRequester, ModeController)
}

// MastersGroup is the group that bypasses authorization. Constrained
// impersonation refuses to impersonate it ("impersonating the
// system:masters group is not allowed"), so taskgate acts as a requester in
// it without it: such a requester gets only the rights their other groups
// grant. Bind administrators to cluster-admin through an ordinary group
// (kubeadm's kubeadm:cluster-admins) for their Tasks to run.
const MastersGroup = "system:masters"

// authenticatedGroup is added by the API server to every impersonated user.
const authenticatedGroup = "system:authenticated"

// FromUserInfo is the Requester recorded for the userInfo of a create request.
func FromUserInfo(u authenticationv1.UserInfo) *v1alpha1.Requester {
	r := &v1alpha1.Requester{Username: u.Username, UID: u.UID, Groups: slices.Clone(u.Groups)}
	if len(u.Extra) > 0 {
		r.Extra = make(map[string][]string, len(u.Extra))
		for k, v := range u.Extra {
			r.Extra[k] = slices.Clone([]string(v))
		}
	}
	return r
}

// IsServiceAccount reports whether the requester is a ServiceAccount (a
// GitOps controller, a CI job): constrained impersonation takes those by
// username alone, in its serviceaccount mode.
func IsServiceAccount(r *v1alpha1.Requester) bool {
	_, _, err := serviceaccount.SplitUsername(r.Username)
	return err == nil
}

// HasMasters reports whether the requester is in system:masters, which
// taskgate cannot act as (see MastersGroup).
func HasMasters(r *v1alpha1.Requester) bool {
	return slices.Contains(r.Groups, MastersGroup)
}

// Impersonation is what the controller sends to act as r: a ServiceAccount
// by its username alone (the API server fills in its groups; constrained
// impersonation refuses any other field for one), anyone else with uid,
// groups and extra, except system:masters.
func Impersonation(r *v1alpha1.Requester) rest.ImpersonationConfig {
	if IsServiceAccount(r) {
		return rest.ImpersonationConfig{UserName: r.Username}
	}
	return rest.ImpersonationConfig{
		UserName: r.Username,
		UID:      r.UID,
		Groups:   slices.DeleteFunc(slices.Clone(r.Groups), func(g string) bool { return g == MastersGroup }),
		Extra:    maps.Clone(r.Extra),
	}
}

// Effective is the user the API server sees in a request sent with
// Impersonation(r): what admission's SubjectAccessReviews must ask about so
// that they answer as the run will be answered.
func Effective(r *v1alpha1.Requester) authenticationv1.UserInfo {
	if ns, _, err := serviceaccount.SplitUsername(r.Username); err == nil {
		return authenticationv1.UserInfo{Username: r.Username, Groups: append(serviceaccount.MakeGroupNames(ns), authenticatedGroup)}
	}
	imp := Impersonation(r)
	u := authenticationv1.UserInfo{Username: imp.UserName, UID: imp.UID, Groups: imp.Groups}
	if !slices.Contains(u.Groups, authenticatedGroup) && !slices.Contains(u.Groups, "system:unauthenticated") {
		u.Groups = append(u.Groups, authenticatedGroup)
	}
	if len(imp.Extra) > 0 {
		u.Extra = make(map[string]authenticationv1.ExtraValue, len(imp.Extra))
		for k, v := range imp.Extra {
			u.Extra[k] = v
		}
	}
	return u
}

// MastersHint is appended to a refusal of a request sent as a requester in
// system:masters, which would have been allowed had taskgate kept the group.
func MastersHint(r *v1alpha1.Requester) string {
	if r == nil || !HasMasters(r) {
		return ""
	}
	return fmt.Sprintf(" (%s is in %s, which Kubernetes does not let taskgate impersonate, so the Task acts without it; "+
		"grant the rights through an ordinary group, e.g. bind cluster-admin to kubeadm:cluster-admins)", r.Username, MastersGroup)
}

// Describe names the requester in messages: "alice" or "alice (groups dev, ops)".
func Describe(r *v1alpha1.Requester) string {
	if r == nil {
		return "<nobody>"
	}
	if len(r.Groups) == 0 {
		return r.Username
	}
	return fmt.Sprintf("%s (groups %s)", r.Username, strings.Join(r.Groups, ", "))
}
