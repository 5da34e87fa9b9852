package v1alpha1

import "testing"

func TestGroupVersionResourceString(t *testing.T) {
	tests := []struct {
		name string
		r    GroupVersionResource
		want string
	}{
		{name: "named group", r: GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, want: "apps/v1/deployments"},
		{name: "core group", r: GroupVersionResource{Version: "v1", Resource: "configmaps"}, want: "v1/configmaps"},
		{name: "scope is not part of the name", r: GroupVersionResource{Group: "example.com", Version: "v9", Resource: "widgets", Scope: ScopeCluster}, want: "example.com/v9/widgets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}
