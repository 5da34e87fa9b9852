#!/usr/bin/env bash
# mutation-check.sh: apply deliberate breakages to taskgate one at a time and
# check that the tests meant to catch each one fail. A maintainer's tool,
# not part of `make test` (run it with `make mutation`).
#
# Each mutation replaces one exact piece of text in one file of a clean copy
# of the committed tree (git archive HEAD; the working tree is never
# touched), runs the test packages that should catch it, and counts it
# caught when they fail. A mutation whose text is no longer in the file is
# reported "stale" (update the list after refactoring), never "survived".
#
# Usage: hack/mutation-check.sh [NAME...]   (default: every mutation)
# Env:   KUBEBUILDER_ASSETS (the Makefile exports it), MUTATION_KEEP=1 keeps
#        the copy and the test logs, MUTATION_TIMEOUT per go test (15m),
#        MUTATION_DRY=1 only checks that each breakage still applies.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/taskgate-mutation-XXXXXX")
tree="$work/tree"
logs="$work/logs"
mkdir -p "$tree" "$logs"
cleanup() {
	if [[ -n "${MUTATION_KEEP:-}" ]]; then
		echo "kept $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
git -C "$root" archive HEAD | tar -x -C "$tree"
export KUBEBUILDER_ASSETS="${KUBEBUILDER_ASSETS:-$HOME/.cache/taskgate/envtest-v1.37.2}"
export GOFLAGS="${GOFLAGS:--modcacherw}" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
timeout="${MUTATION_TIMEOUT:-15m}"

names=() files=() olds=() news=() tests=()
# mutation NAME FILE OLD NEW TESTS: TESTS is a ;-separated list of
# "package [-run regexp]" go test invocations.
mutation() { names+=("$1"); files+=("$2"); olds+=("$3"); news+=("$4"); tests+=("$5"); }

mutation "access checks" webhook/authz.go \
	'			case !ok:' \
	'			case false && !ok:' \
	"./webhook/; ./test/admission/ -run ^(TestNamespaceEditorCannotEscalate|TestCustomImageAccess)$"
mutation "namespace rule" webhook/plugin_customimage.go \
	'if c.Namespace != "" && task.Namespace != "" && c.Namespace != task.Namespace {' \
	'if false {' \
	"./webhook/; ./test/admission/ -run ^TestInvalidCasesRefused$"
mutation "suggestions" schemas/suggest.go \
	'if near, ok := Nearest(name, sorted); ok {' \
	'if near, ok := Nearest(name, sorted); ok && false {' \
	"./schemas/; ./webhook/"
mutation "immutability" webhook/requester.go \
	'if old.Plugin != cur.Plugin || !sameConfig(old.Config.Raw, cur.Config.Raw) {' \
	'if false {' \
	"./test/admission/ -run ^TestSpecImmutable$"
mutation "bounds" webhook/admitter.go \
	'			if depth > maxDepth {' \
	'			if false {' \
	"./webhook/; ./test/admission/ -run ^TestInvalidCasesRefused$"
mutation "duplicate children" controller/run_customimage.go \
	$'\terr = clients.Client.Create(ctx, pod)\n\tif apierrors.IsAlreadyExists(err) {\n' \
	$'\terr = clients.Client.Create(ctx, pod)\n\tif apierrors.IsAlreadyExists(err) {\n\t\tpod.Name, pod.ResourceVersion = pod.Name+"-2", ""\n\t\treturn pod, clients.Client.Create(ctx, pod)\n\t}\n\tif apierrors.IsAlreadyExists(err) {\n' \
	"./controller/ -run ^TestEnsureStale"
mutation "binding removal" controller/run_customimage.go \
	$'func (c *customImageRunner) cleanup(ctx context.Context, run *v1alpha1.TaskRun) error {\n' \
	$'func (c *customImageRunner) cleanup(ctx context.Context, run *v1alpha1.TaskRun) error {\n\tif true {\n\t\treturn nil\n\t}\n' \
	"./test/controller/ -run ^(TestClusterRoleBinding|TestClusterRoleBindingAsRequester|TestStrippedFinalizerAndSweeper|TestRunsHaveTheirOwnBinding)$"
mutation "at-most-once claim" controller/run_transformation.go \
	$'\tif err := cp.save(ctx); err != nil {\n\t\treturn 0, fmt.Errorf("claim the run before patching: %w", err)\n\t}\n' \
	'' \
	"./controller/ -run ^TestTransformationClaimBeforePatch$; ./test/drills/ -run ^TestKillDuringPatch$"
mutation "timeout" controller/run_customimage_timeout.go \
	$'\tif left > 0 {\n\t\treturn left, nil\n\t}\n' \
	$'\tif true {\n\t\treturn left, nil\n\t}\n' \
	"./controller/; ./test/controller/ -run ^TestCustomImageTimeout$"
mutation "adoption by label" controller/task_controller.go \
	'		if metav1.IsControlledBy(&list.Items[i], task) {' \
	'		if true {' \
	"./test/controller/ -run ^TestTaskNeverAdoptsOnNameOrLabel$"
mutation "history order" controller/task_controller.go \
	$'\t\tcase at.Before(bt):\n\t\t\treturn 1\n' \
	$'\t\tcase at.Before(bt):\n\t\t\treturn -1\n' \
	"./test/controller/ -run ^TestTaskRunHistory$"
mutation "concurrency forbid" controller/taskrun_controller.go \
	'	if task.Spec.ConcurrencyPolicy != v1alpha1.ConcurrencyForbid {' \
	'	if true {' \
	"./test/controller/ -run ^TestConcurrencyPolicyInTheController$"
mutation "legacy binding UID" controller/task_controller.go \
	'crb.Labels[v1alpha1.TaskUIDLabel] == string(task.UID) && ' \
	'' \
	"./test/controller/ -run ^TestLegacyTaskReleased$"
mutation "strict schema" schemas/validate.go \
	'if sc == nil || sc.Properties[name] != nil {' \
	'if true {' \
	"./schemas/; ./webhook/"
mutation "chart hardening" charts/taskgate/values.yaml \
	'readOnlyRootFilesystem: true' \
	'readOnlyRootFilesystem: false' \
	"./test/helm/ -run ^TestTemplate"
mutation "malformed-review status" webhook/http.go \
	'writeReview(w, http.StatusBadRequest, failed(http.StatusBadRequest, "not an AdmissionReview: "+err.Error()))' \
	'writeReview(w, http.StatusOK, failed(http.StatusInternalServerError, "not an AdmissionReview: "+err.Error()))' \
	"./webhook/; ./test/admission/ -run ^TestMalformedReviewOverTLS$"

# cell escapes a table cell's pipes.
cell() { printf '%s' "${1//|/\\|}"; }

want=("$@")
selected() {
	[[ ${#want[@]} -eq 0 ]] && return 0
	local w
	for w in "${want[@]}"; do [[ "$w" == "$1" ]] && return 0; done
	return 1
}

printf '| Breakage | Tests run | Result | Took |\n|---|---|---|---|\n'
caught=0 survived=0 stale=0
for i in "${!names[@]}"; do
	name=${names[$i]} file=${files[$i]}
	selected "$name" || continue
	# A clean copy of the file, then the breakage.
	git -C "$root" show "HEAD:$file" >"$tree/$file"
	if ! OLD=${olds[$i]} NEW=${news[$i]} perl -0pi -e '$n += s/\Q$ENV{OLD}\E/$ENV{NEW}/g; END { $? = ($n == 1 ? 0 : 3) }' "$tree/$file"; then
		printf '| %s | - | stale: the text to break is not in %s once | - |\n' "$name" "$file"
		stale=$((stale + 1))
		git -C "$root" show "HEAD:$file" >"$tree/$file"
		continue
	fi
	if [[ -n "${MUTATION_DRY:-}" ]]; then
		printf '| %s | %s | applies (dry run) | - |\n' "$name" "$(cell "${tests[$i]}")"
		git -C "$root" show "HEAD:$file" >"$tree/$file"
		continue
	fi
	log="$logs/${name// /-}.log"
	start=$(date +%s)
	if ! (cd "$tree" && go build ./...) >"$log" 2>&1; then
		# A breakage the compiler refuses proves nothing about the tests.
		printf '| %s | - | stale: does not build (see %s) | - |\n' "$name" "$log"
		stale=$((stale + 1))
		git -C "$root" show "HEAD:$file" >"$tree/$file"
		continue
	fi
	failed=""
	IFS=';' read -ra runs <<<"${tests[$i]}"
	for run in "${runs[@]}"; do
		read -ra args <<<"$run"
		if ! (cd "$tree" && go test -count=1 -p 1 -timeout "$timeout" "${args[@]}") >>"$log" 2>&1; then
			failed="$run"
			break # caught: the remaining packages need not run
		fi
	done
	took=$(($(date +%s) - start))s
	if [[ -n "$failed" ]]; then
		# Name the failing tests, so a failure for another reason shows.
		by=$(grep -oE -- '--- FAIL: [^ ]+' "$log" | awk '{print $3}' | grep -v / | sort -u | head -3 | paste -sd, - || true)
		printf '| %s | %s | caught by %s | %s |\n' "$name" "$(cell "${tests[$i]}")" "${by:-$(cell "${failed# }") (no test failed: build or start-up?)}" "$took"
		caught=$((caught + 1))
	else
		printf '| %s | %s | **survived** | %s |\n' "$name" "$(cell "${tests[$i]}")" "$took"
		survived=$((survived + 1))
	fi
	git -C "$root" show "HEAD:$file" >"$tree/$file"
done
printf '\n%d caught, %d survived, %d stale (commit %s)\n' "$caught" "$survived" "$stale" "$(git -C "$root" rev-parse --short HEAD)"
[[ -n "${MUTATION_DRY:-}" || ($survived -eq 0 && $stale -eq 0) ]]
