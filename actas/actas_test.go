package actas

import (
	"reflect"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/client-go/rest"

	"github.com/astronetes/taskgate/api/v1alpha1"
)

func TestImpersonationAndEffective(t *testing.T) {
	extra := map[string][]string{"authentication.kubernetes.io/credential-id": {"X509SHA256=ab"}}
	tests := []struct {
		name      string
		requester v1alpha1.Requester
		wantImp   rest.ImpersonationConfig
		wantUser  authenticationv1.UserInfo
		masters   bool
	}{
		{
			name:      "user with uid, groups and extra",
			requester: v1alpha1.Requester{Username: "alice", UID: "u-1", Groups: []string{"dev", "system:authenticated"}, Extra: extra},
			wantImp:   rest.ImpersonationConfig{UserName: "alice", UID: "u-1", Groups: []string{"dev", "system:authenticated"}, Extra: extra},
			wantUser: authenticationv1.UserInfo{Username: "alice", UID: "u-1", Groups: []string{"dev", "system:authenticated"},
				Extra: map[string]authenticationv1.ExtraValue{"authentication.kubernetes.io/credential-id": {"X509SHA256=ab"}}},
		},
		{
			name:      "system:masters is dropped",
			requester: v1alpha1.Requester{Username: "root", Groups: []string{"system:masters", "kubeadm:cluster-admins"}},
			wantImp:   rest.ImpersonationConfig{UserName: "root", Groups: []string{"kubeadm:cluster-admins"}},
			wantUser:  authenticationv1.UserInfo{Username: "root", Groups: []string{"kubeadm:cluster-admins", "system:authenticated"}},
			masters:   true,
		},
		{
			name: "service account by name alone",
			requester: v1alpha1.Requester{Username: "system:serviceaccount:ci:deployer", UID: "sa-uid",
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"}, Extra: extra},
			wantImp: rest.ImpersonationConfig{UserName: "system:serviceaccount:ci:deployer"},
			wantUser: authenticationv1.UserInfo{Username: "system:serviceaccount:ci:deployer",
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Impersonation(&tt.requester); !reflect.DeepEqual(got, tt.wantImp) {
				t.Errorf("Impersonation = %+v, want %+v", got, tt.wantImp)
			}
			if got := Effective(&tt.requester); !reflect.DeepEqual(got, tt.wantUser) {
				t.Errorf("Effective = %+v, want %+v", got, tt.wantUser)
			}
			if got := HasMasters(&tt.requester); got != tt.masters {
				t.Errorf("HasMasters = %v, want %v", got, tt.masters)
			}
			if hint := MastersHint(&tt.requester); (hint != "") != tt.masters {
				t.Errorf("MastersHint = %q, want a hint: %v", hint, tt.masters)
			}
		})
	}
}

func TestFromUserInfoCopies(t *testing.T) {
	u := authenticationv1.UserInfo{Username: "alice", Groups: []string{"dev"}, Extra: map[string]authenticationv1.ExtraValue{"k": {"v"}}}
	r := FromUserInfo(u)
	u.Groups[0], u.Extra["k"][0] = "changed", "changed"
	if r.Groups[0] != "dev" || r.Extra["k"][0] != "v" {
		t.Fatalf("FromUserInfo shares memory with its input: %+v", r)
	}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"requester", "controller"} {
		if m, err := ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	if _, err := ParseMode("root"); err == nil {
		t.Error("ParseMode(root) succeeded")
	}
}

// The requester's clients are cached and reused, keyed by the whole
// identity: a later run by the same user with fewer groups, another uid or
// other extra never acts with the old ones (issue 20: keyed by username
// alone, a group taken away would still be acted with).
func TestForKeysOnWholeIdentity(t *testing.T) {
	f, err := NewFactory(ModeRequester, &rest.Config{Host: "https://127.0.0.1:1"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := v1alpha1.Requester{Username: "alice", UID: "u-1", Groups: []string{"dev", "system:authenticated"},
		Extra: map[string][]string{"scopes": {"a"}}}
	variants := map[string]v1alpha1.Requester{
		"fewer groups": {Username: "alice", UID: "u-1", Groups: []string{"system:authenticated"}, Extra: base.Extra},
		"another uid":  {Username: "alice", UID: "u-2", Groups: base.Groups, Extra: base.Extra},
		"other extra":  {Username: "alice", UID: "u-1", Groups: base.Groups, Extra: map[string][]string{"scopes": {"b"}}},
		"no extra":     {Username: "alice", UID: "u-1", Groups: base.Groups},
	}
	first, err := f.For(&base)
	if err != nil {
		t.Fatal(err)
	}
	same := base
	if again, err := f.For(&same); err != nil || again != first {
		t.Fatalf("For(same identity) = %p, %v; want the cached clients %p", again, err, first)
	}
	for name, r := range variants {
		c, err := f.For(&r)
		if err != nil {
			t.Fatal(err)
		}
		if c == first {
			t.Errorf("%s: For returned the clients of %+v for %+v", name, base, r)
		}
		if !reflect.DeepEqual(c.Requester, &r) {
			t.Errorf("%s: clients act as %+v, want %+v", name, c.Requester, r)
		}
	}
}
