package proc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// FindBinary returns the executable a test should run: the value of the
// environment variable env when it is set (env may be ""), else name found
// in PATH, else name in one of dirs. It returns an error saying how to
// install it when there is none.
func FindBinary(name, env string, dirs ...string) (string, error) {
	if env != "" {
		if p := os.Getenv(env); p != "" {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range dirs {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p, nil
		}
	}
	where := "PATH"
	if len(dirs) > 0 {
		where += " or " + strings.Join(dirs, ", ")
	}
	hint := "install the Debian package " + name
	if env != "" {
		hint += ", or set " + env
	}
	return "", fmt.Errorf("%s not found in %s (%s)", name, where, hint)
}

// RequireBinary is FindBinary for tests: when there is no binary it skips
// tb, or fails it when the environment variable CI is set, so that a CI
// image without the program cannot pass silently.
func RequireBinary(tb testing.TB, name, env string, dirs ...string) string {
	tb.Helper()
	p, err := FindBinary(name, env, dirs...)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		tb.Fatal(err.Error() + "; CI is set, so this is a failure")
	} else {
		tb.Skip(err.Error() + "; skipping")
	}
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
