package helm_test

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with its arguments, continuation
// lines joined.
type instruction struct {
	cmd  string // upper case
	args string
}

// stage is a FROM and what follows it.
type stage struct {
	from, name string
	body       []instruction
}

// parseDockerfile splits a Dockerfile into stages; enough of the syntax for
// the checks below (comments, continuations, FROM ... AS name).
func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []stage
	var line strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(text, "#") || (text == "" && line.Len() == 0) {
			continue
		}
		if cont, ok := strings.CutSuffix(text, `\`); ok {
			line.WriteString(cont + " ")
			continue
		}
		line.WriteString(text)
		cmd, args, _ := strings.Cut(strings.TrimSpace(line.String()), " ")
		line.Reset()
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			fields := slices.DeleteFunc(strings.Fields(in.args), func(s string) bool { return strings.HasPrefix(s, "--") })
			st := stage{from: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.name = fields[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s before the first FROM", in.cmd)
			}
			continue
		}
		stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}

func (s stage) last(cmd string) (string, bool) {
	for i := len(s.body) - 1; i >= 0; i-- {
		if s.body[i].cmd == cmd {
			return s.body[i].args, true
		}
	}
	return "", false
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, filepath.Join(repoRoot(), "Dockerfile"))
	if len(stages) != 2 {
		t.Fatalf("want a build stage and a final stage, got %d stages", len(stages))
	}
	build, final := stages[0], stages[1]
	if !strings.HasPrefix(build.from, "golang:1.26") || build.name == "" {
		t.Errorf("build stage FROM %s AS %q, want golang:1.26 with a name", build.from, build.name)
	}
	var buildCmd string
	for _, in := range build.body {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			buildCmd = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/taskgate"} {
		if !strings.Contains(buildCmd, want) {
			t.Errorf("go build %q lacks %s", buildCmd, want)
		}
	}
	if final.from != "gcr.io/distroless/static:nonroot" {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static:nonroot", final.from)
	}
	if user, _ := final.last("USER"); user != "65532:65532" {
		t.Errorf("final USER %q, want 65532:65532 (non-root)", user)
	}
	if copyArgs, _ := final.last("COPY"); !strings.Contains(copyArgs, "--from="+build.name) {
		t.Errorf("final stage COPY %q does not take the binary from the build stage", copyArgs)
	}
	for cmd, want := range map[string][]string{"ENTRYPOINT": {"/taskgate"}, "CMD": {"manager"}} {
		args, _ := final.last(cmd)
		var got []string
		if err := json.Unmarshal([]byte(args), &got); err != nil || !slices.Equal(got, want) {
			t.Errorf("%s %s, want exec form %q", cmd, args, want)
		}
	}
	checkCopiedPackages(t, build)
}

// checkCopiedPackages fails when cmd/taskgate needs a package of this module
// that the build stage does not COPY: the image build would break.
func checkCopiedPackages(t *testing.T, build stage) {
	t.Helper()
	var copied []string
	for _, in := range build.body {
		if in.cmd == "COPY" {
			fields := strings.Fields(in.args)
			copied = append(copied, fields[:len(fields)-1]...)
		}
	}
	out, err := goCmd("list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./cmd/taskgate")
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const module = "github.com/astronetes/taskgate/"
	for _, pkg := range strings.Fields(out) {
		rel, ok := strings.CutPrefix(pkg, module)
		if !ok {
			continue
		}
		if !slices.ContainsFunc(copied, func(src string) bool {
			return strings.HasPrefix(rel+"/", strings.TrimSuffix(src, "/")+"/")
		}) {
			t.Errorf("cmd/taskgate imports %s, which the Dockerfile does not COPY", rel)
		}
	}
}

// TestStaticBinary builds cmd/taskgate as the Dockerfile does and checks the
// ELF has no program interpreter: distroless/static has no libc.
func TestStaticBinary(t *testing.T) {
	bin := managerBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary has a %s program header: it is dynamically linked", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("binary needs shared libraries %v", libs)
	}
}

func goCmd(args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOFLAGS=-modcacherw")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
