package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
)

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
			tr, err := parseTestRotation(f.testCertRotation)
			if err != nil {
				t.Fatal(err)
			}
			cr := &rotator.CertRotator{ExtraDNSNames: []string{"svc.cluster.local"}}
			tr.apply(cr)
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
