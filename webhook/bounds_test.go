package webhook

import (
	"strings"
	"testing"
)

// depthByStateMachine is the byte-at-a-time scanner checkBounds had, kept
// as the reference for the faster one.
func depthByStateMachine(raw []byte, maxDepth int) bool {
	depth, inString, escaped := 0, false, false
	for _, c := range raw {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			if depth > maxDepth {
				return false
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return true
}

var boundsCases = []string{
	`{"a":[[[1]]]}`,
	`{"a":"[[[[[[["}`,
	`{"a":"\"[[[[[["}`,
	`{"a":"\\"}[[[[[`,
	`"\`,
	`\"[[[[[`,
	`]]]]][[[[[[`,
	strings.Repeat("[", 5) + `"` + strings.Repeat("[", 5),
}

func TestCheckBoundsDepth(t *testing.T) {
	a := &Admitter{MaxConfigDepth: 4}
	for _, raw := range boundsCases {
		if got, want := a.checkBounds([]byte(raw)) == nil, depthByStateMachine([]byte(raw), 4); got != want {
			t.Errorf("checkBounds(%s) passes = %v, want %v", raw, got, want)
		}
	}
}

func FuzzCheckBounds(f *testing.F) {
	for _, raw := range boundsCases {
		f.Add([]byte(raw))
	}
	a := &Admitter{MaxConfigDepth: 4}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if got, want := a.checkBounds(raw) == nil, depthByStateMachine(raw, 4); got != want {
			t.Fatalf("checkBounds(%q) passes = %v, want %v", raw, got, want)
		}
	})
}
