package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"

	"github.com/astronetes/taskgate/webhook"
)

func TestManagerFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(*managerFlags) bool
	}{
		{name: "both halves off", args: []string{"--enable-webhooks=false", "--enable-controller=false"}, wantErr: "nothing to run"},
		{name: "allow-list and leader election", args: []string{"--allowed-cluster-roles", "view, edit", "--leader-elect"},
			check: func(f *managerFlags) bool { return f.leaderElect && f.allowedClusterRoles == "view, edit" }},
		{name: "access review cache on by default",
			check: func(f *managerFlags) bool { return f.accessReviewCacheTTL == webhook.DefaultAccessReviewCacheTTL }},
		{name: "access review cache ttl", args: []string{"--access-review-cache-ttl=1m30s"},
			check: func(f *managerFlags) bool { return f.accessReviewCacheTTL == 90*time.Second }},
		{name: "access review cache off", args: []string{"--access-review-cache-ttl=0"},
			check: func(f *managerFlags) bool { return f.accessReviewCacheTTL == 0 }},
		{name: "negative ttl", args: []string{"--access-review-cache-ttl=-1s"}, wantErr: "positive duration"},
		{name: "finished tasks kept by default", check: func(f *managerFlags) bool { return f.finishedTaskTTL == 0 }},
		{name: "finished task ttl", args: []string{"--finished-task-ttl=24h"},
			check: func(f *managerFlags) bool { return f.finishedTaskTTL == 24*time.Hour }},
		{name: "negative finished task ttl", args: []string{"--finished-task-ttl=-1m"}, wantErr: "--finished-task-ttl=-1m0s: want 0"},
		{name: "finished task ttl not a duration", args: []string{"--finished-task-ttl=1d"}, wantErr: "invalid value"},
		{name: "single-call: no validating configuration to rotate", args: []string{"--cert-rotation", "--validating-webhook-configuration="},
			check: func(f *managerFlags) bool {
				w := rotatedWebhooks(f)
				return len(w) == 1 && w[0].Name == "taskgate-mutating" && w[0].Type == rotator.Mutating
			}},
		{name: "rotation into nothing", args: []string{"--cert-rotation", "--validating-webhook-configuration=", "--mutating-webhook-configuration="},
			wantErr: "inject the CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			f, err := parseManagerFlags(tt.args, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.check(f) {
				t.Errorf("flags %+v, err %v", f, err)
			}
		})
	}
	if _, err := newLogger("xml", "info"); err == nil {
		t.Error("bad log format accepted")
	}
}

// `taskgate version` prints the version taskgate_build_info carries.
func TestVersionCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"version"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if got, want := stdout.String(), "taskgate "+buildVersion()+"\n"; got != want || buildVersion() == "" {
		t.Errorf("version printed %q, want %q", got, want)
	}
}
