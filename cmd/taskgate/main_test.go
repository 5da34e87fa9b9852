package main

import (
	"bytes"
	"io"
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

// The test-only --test-cert-rotation: parsed strictly, applied to the
// rotator, refused without --cert-rotation, and absent from the usage text.
func TestTestCertRotationFlag(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "all keys", args: []string{"--cert-rotation", "--test-cert-rotation=ca=1h40s,server=1h8s,lookahead=1h,check=1s,dns=localhost"}},
		{name: "unknown key", args: []string{"--cert-rotation", "--test-cert-rotation=cs=1h"}, wantErr: `unknown key "cs"`},
		{name: "not a duration", args: []string{"--cert-rotation", "--test-cert-rotation=ca=soon"}, wantErr: `ca="soon": want a positive duration`},
		{name: "no value", args: []string{"--cert-rotation", "--test-cert-rotation=ca"}, wantErr: `"ca": want key=value`},
		{name: "without rotation", args: []string{"--test-cert-rotation=ca=1h"}, wantErr: "needs --cert-rotation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseManagerFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseManagerFlags(%v) error = %v, want one containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.testRotation == nil {
				t.Fatalf("parseManagerFlags(%v): --%s not kept", tt.args, testCertRotationFlag)
			}
			cr := &rotator.CertRotator{ExtraDNSNames: []string{"svc.cluster.local"}}
			f.testRotation.apply(cr)
			if cr.CaCertDuration != time.Hour+40*time.Second || cr.ServerCertDuration != time.Hour+8*time.Second ||
				cr.LookaheadInterval != time.Hour || cr.RotationCheckFrequency != time.Second {
				t.Errorf("timings ca %v server %v lookahead %v check %v, want 1h0m40s 1h0m8s 1h0m0s 1s",
					cr.CaCertDuration, cr.ServerCertDuration, cr.LookaheadInterval, cr.RotationCheckFrequency)
			}
			if got := strings.Join(cr.ExtraDNSNames, ","); got != "svc.cluster.local,localhost" {
				t.Errorf("extra DNS names %q, want svc.cluster.local,localhost", got)
			}
		})
	}
	var usage strings.Builder
	if _, err := parseManagerFlags([]string{"-h"}, &usage); err == nil || strings.Contains(usage.String(), testCertRotationFlag) ||
		!strings.Contains(usage.String(), "-cert-rotation") {
		t.Errorf("usage text (error %v) should list --cert-rotation and not --%s:\n%s", err, testCertRotationFlag, usage.String())
	}
}

// TestHelpListsEveryCommand: `taskgate help` names each command the
// dispatcher knows, and each one it names is known.
func TestHelpListsEveryCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"help"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, name := range []string{"manager", "run", "validate", "schemas", "selftest", "version"} {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(stdout.String(), "\n  taskgate "+name+" ") && !strings.Contains(stdout.String(), "\n  taskgate "+name+"\n") {
				t.Errorf("help does not list %q:\n%s", name, stdout.String())
			}
			var errOut bytes.Buffer
			run([]string{name, "-h"}, nil, io.Discard, &errOut)
			if strings.Contains(errOut.String(), "unknown command") {
				t.Errorf("help lists %q, which is not a command", name)
			}
		})
	}
}
