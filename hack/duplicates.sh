#!/usr/bin/env bash
# Repeated code in the tree, counted as `duplicates` means to count it.
#
# `duplicates` (the tool library's) passes over import lines, but in Go it
# recognises only the one-line form (`import "fmt"`): the lines of a
# parenthesised `import ( ... )` block count as code, so two files that import
# the same six packages are listed as a pair. This script runs it twice on
# the files git tracks: once on the tree as it is, and once on a copy whose
# import blocks are written one `import` line each (the same program; gofmt
# accepts both), so what is left is the code that repeats.
#
#   hack/duplicates.sh [duplicates flags, e.g. --most 40]
set -euo pipefail
root=$(git rev-parse --show-toplevel)
copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT

git -C "$root" ls-files -z | (cd "$root" && tar --null -T - -cf -) | tar -xf - -C "$copy"
find "$copy" -name '*.go' -print0 | while IFS= read -r -d '' f; do
	awk '
		/^import \($/ { block = 1; next }
		block && /^\)$/ { block = 0; next }
		block && /^[ \t]*$/ { print ""; next }
		block { sub(/^[ \t]+/, ""); print "import " $0; next }
		{ print }
	' "$f" >"$f.tmp"
	mv "$f.tmp" "$f"
done

echo "# the tree as it is"
duplicates --repo "$root" --seconds 120 "$@"
echo
echo "# import blocks passed over, as duplicates does for one-line imports"
duplicates --repo "$copy" --seconds 120 "$@"
