package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ferry-io/ferry/cmd/ferry/internal/config"
	"github.com/ferry-io/ferry/server"
)

// docPath is docs/configuration.md, from this package's directory.
var docPath = filepath.Join("..", "..", "..", "..", "docs", "configuration.md")

// docRows returns the rows of the Markdown tables in the document whose
// first cell is code (`heartbeat.interval`), keyed by that cell without
// backticks; the cells are kept as written.
func docRows(tb testing.TB, doc string) map[string][]string {
	tb.Helper()
	rows := map[string][]string{}
	for _, line := range strings.Split(doc, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if !strings.HasPrefix(cells[0], "`") {
			continue // not a setting's row (a header, or the table of value types)
		}
		key := strings.Trim(cells[0], "`")
		if _, dup := rows[key]; dup {
			tb.Errorf("%s: %s is documented twice", docPath, key)
		}
		rows[key] = cells
	}
	return rows
}

func readDoc(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(docPath)
	if err != nil {
		tb.Fatalf("read %s: %v", docPath, err)
	}
	return string(b)
}

// TestEverySettingIsDocumented fails when a setting of server.Config is
// missing from docs/configuration.md, or documented with the wrong
// variable or default, or when the document lists a setting that no
// longer exists.
func TestEverySettingIsDocumented(t *testing.T) {
	rows := docRows(t, readDoc(t))
	known := map[string]bool{}
	for _, f := range config.Fields() {
		known[f.Path] = true
		row, ok := rows[f.Path]
		if !ok {
			t.Errorf("%s: setting %s (%s) is not documented", docPath, f.Path, f.Env)
			continue
		}
		if len(row) < 4 {
			t.Errorf("%s: row of %s has %d cells, want yaml path, env var, default, meaning", docPath, f.Path, len(row))
			continue
		}
		if got := strings.Trim(row[1], "`"); got != f.Env {
			t.Errorf("%s: %s is documented with variable %q, want %q", docPath, f.Path, got, f.Env)
		}
		if f.Default != "" && !strings.Contains(row[2], "`"+f.Default+"`") {
			t.Errorf("%s: %s is documented with default %q, want `%s`", docPath, f.Path, row[2], f.Default)
		}
		if strings.TrimSpace(row[3]) == "" {
			t.Errorf("%s: %s has no meaning", docPath, f.Path)
		}
	}

	// Namespace rules are documented as namespaces.NAME.<key>.
	const nsPrefix = "namespaces.NAME."
	for _, key := range yamlKeys(reflect.TypeFor[server.Namespace]()) {
		known[nsPrefix+key] = true
		if _, ok := rows[nsPrefix+key]; !ok {
			t.Errorf("%s: namespace rule %s%s is not documented", docPath, nsPrefix, key)
		}
	}

	// And nothing is documented that does not exist.
	for key, row := range rows {
		isSetting := len(row) > 1 && strings.HasPrefix(strings.Trim(row[1], "`"), "FERRY_")
		if (isSetting || strings.HasPrefix(key, nsPrefix)) && !known[key] {
			t.Errorf("%s: documents %s, which is not a setting", docPath, key)
		}
	}
}

// TestDocExampleLoads checks that the example file in the document loads
// and validates (with the secret it says comes from the environment).
func TestDocExampleLoads(t *testing.T) {
	doc := readDoc(t)
	_, rest, ok := strings.Cut(doc, "## Example")
	if !ok {
		t.Fatalf("%s: no \"## Example\" section", docPath)
	}
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	if !ok {
		t.Fatalf("%s: no yaml block in the example section", docPath)
	}
	example, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("%s: unterminated yaml block", docPath)
	}
	path := writeConfig(t, example)
	env := []string{"FERRY_TOKEN_HMAC_SECRET=from-the-environment-0123456789abcdef"}
	if err := config.Check(path, env); err != nil {
		t.Fatalf("the documented example does not pass Check: %v", err)
	}
	cfg := mustLoad(t, path, env)
	support, ok := cfg.Namespaces["support"]
	if !ok || support.HistorySize == 0 || support.Priority != "critical" || !support.Presence {
		t.Errorf("example namespace support = %+v (present %v), want chat's rules merged in with priority critical", support, ok)
	}
}

// yamlKeys lists the yaml keys of a struct type's fields.
func yamlKeys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" {
			name = strings.ToLower(t.Field(i).Name)
		}
		if name != "-" && t.Field(i).IsExported() {
			out = append(out, name)
		}
	}
	return out
}
