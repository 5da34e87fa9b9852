package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestResolveNode(t *testing.T) {
	// An assets directory without kubelet: no machine can run a real node
	// from it, root or not.
	noNode := t.TempDir()
	for _, tc := range []struct {
		name, flag string
		nodes      bool
		want       string
		wantErr    string
		wantSaid   string
	}{
		{name: "kwok is kwok", flag: nodeKwok, nodes: true, want: nodeKwok},
		{name: "no nodes at all", flag: nodeReal, nodes: false, want: nodeKwok},
		{name: "auto falls back, saying why", flag: nodeAuto, nodes: true, want: nodeKwok, wantSaid: "kwok simulates one"},
		{name: "real fails instead", flag: nodeReal, nodes: true, wantErr: "--node=real: this machine cannot run a real node"},
		{name: "unknown", flag: "docker", nodes: true, wantErr: `--node="docker"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			got, err := resolveNode(options{node: tc.flag, nodes: tc.nodes, assetsDir: noNode, stateDir: t.TempDir()}, &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
			if !strings.Contains(out.String(), tc.wantSaid) {
				t.Errorf("said %q, want %q", out.String(), tc.wantSaid)
			}
		})
	}
}
