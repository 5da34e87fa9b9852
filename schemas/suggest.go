package schemas

import (
	"sort"
	"strconv"
	"strings"
)

// Nearest returns the candidate closest to name by edit distance (a swap of
// two neighbouring letters counts as one edit), if it is close enough to be
// what the user meant: at most a third of the name's length, and at least 2
// edits are always allowed.
func Nearest(name string, candidates []string) (string, bool) {
	best, bestDist := "", -1
	for _, c := range candidates {
		d := distance(strings.ToLower(name), strings.ToLower(c))
		if bestDist < 0 || d < bestDist || (d == bestDist && c < best) {
			best, bestDist = c, d
		}
	}
	limit := max(2, len(name)/3)
	if bestDist < 0 || bestDist > limit || bestDist == len(name) {
		return "", false
	}
	return best, true
}

// distance is the optimal string alignment distance between a and b.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// Hint says which names are valid and, when one is close, which was meant:
// `did you mean "image"? valid names: "args", "command", "image"`.
func Hint(name string, valid []string) string {
	sorted := append([]string(nil), valid...)
	sort.Strings(sorted)
	quoted := make([]string, len(sorted))
	for i, v := range sorted {
		quoted[i] = strconv.Quote(v)
	}
	list := "valid names: " + strings.Join(quoted, ", ")
	if near, ok := Nearest(name, sorted); ok {
		return "did you mean " + strconv.Quote(near) + "? " + list
	}
	return list
}
