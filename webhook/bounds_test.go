package webhook

import (
	"strings"
	"testing"
)

// TestCheckBoundsDepth holds the depth scan to JSON's grammar: brackets in
// strings (escaped quotes included) do not nest.
func TestCheckBoundsDepth(t *testing.T) {
	tests := []struct {
		raw  string
		pass bool
	}{
		{raw: `{"a":[[[1]]]}`, pass: true},
		{raw: `{"a":[[[[1]]]]}`, pass: false},
		{raw: `{"a":"[[[[[[["}`, pass: true},
		{raw: `{"a":"\"[[[[[["}`, pass: true},
		{raw: `{"a":"\\"}[[[[[`, pass: false},
		{raw: `"\`, pass: true},
		{raw: `\"[[[[[`, pass: true},
		{raw: `]]]]][[[[[[`, pass: true},
		{raw: strings.Repeat("[", 5) + `"` + strings.Repeat("[", 5), pass: false},
		{raw: strings.Repeat("[", 4) + `"` + strings.Repeat("[", 5), pass: true},
	}
	a := &Admitter{MaxConfigDepth: 4}
	for _, tt := range tests {
		if got := a.checkBounds([]byte(tt.raw)) == nil; got != tt.pass {
			t.Errorf("checkBounds(%s) passes = %v, want %v", tt.raw, got, tt.pass)
		}
	}
}
