package ferrytest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildTimeout bounds `go build` (a cold cache on a slow machine), so a
// broken toolchain cannot hang a test run.
const buildTimeout = 5 * time.Minute

// commandPackage is the import path of the ferry command.
const commandPackage = "github.com/ferry-io/ferry/cmd/ferry"

// Binary builds the ferry command once and hands out its path. Declare one
// per test binary (a package-level variable of the test package) and call
// Remove from TestMain after the tests ran. The zero value is ready to use;
// it is safe for concurrent use.
type Binary struct {
	// Race builds with the race detector (go build -race), so that the
	// nodes themselves report data races (into their logs, and they exit
	// with status 66). Default false. Set it before the first Path.
	Race bool

	once sync.Once
	dir  string
	path string
	err  error
}

// Path returns the path of the built ferry binary, building it on the
// first call. A failed build fails tb (and every later caller) with the
// compiler's output.
func (b *Binary) Path(tb testing.TB) string {
	tb.Helper()
	b.once.Do(b.build)
	if b.err != nil {
		tb.Fatalf("ferrytest: %v", b.err)
	}
	return b.path
}

// Remove deletes the built binary. Later calls to Path fail.
func (b *Binary) Remove() {
	b.once.Do(func() { b.err = errors.New("binary removed before it was built") })
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
	b.err = errors.New("binary removed")
}

func (b *Binary) build() {
	goCmd, err := goTool()
	if err != nil {
		b.err = err
		return
	}
	root, err := ModuleRoot()
	if err != nil {
		b.err = err
		return
	}
	b.dir, err = os.MkdirTemp("", "ferrytest-bin-")
	if err != nil {
		b.err = err
		return
	}
	out := filepath.Join(b.dir, "ferry")
	args := []string{"build", "-o", out}
	if b.Race {
		args = append(args, "-race")
	}
	args = append(args, commandPackage)
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, msg)
		return
	}
	b.path = out
}

// goTool finds the go command: PATH first, then $GOROOT/bin, then the
// usual install directory.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	root := os.Getenv("GOROOT")
	if root == "" {
		root = "/usr/local/go"
	}
	p := filepath.Join(root, "bin", "go")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("the go command is neither in PATH nor at %s", p)
	}
	return p, nil
}

// ModuleRoot returns the directory of the go.mod that encloses the working
// directory (a test runs in its package's directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
