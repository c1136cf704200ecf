package jobs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTransitionsAreTheLifeCycle enumerates every (from, to) pair of
// statuses and checks that exactly the life cycle's pairs are allowed:
// nothing leaves a final status, nothing enters running but a claim, and
// every status is reachable.
func TestTransitionsAreTheLifeCycle(t *testing.T) {
	t.Parallel()
	want := map[[2]Status]bool{
		{"", StatusQueued}:                           true,
		{StatusQueued, StatusRunning}:                true,
		{StatusQueued, StatusCancelled}:              true,
		{StatusRunning, StatusQueued}:                true,
		{StatusRunning, StatusSucceeded}:             true,
		{StatusRunning, StatusSucceededWithWarnings}: true,
		{StatusRunning, StatusFailed}:                true,
		{StatusRunning, StatusCancelled}:             true,
	}
	from := append([]Status{""}, Statuses...)
	for _, f := range from {
		for _, to := range Statuses {
			require.Equal(t, want[[2]Status{f, to}], allowed(f, to), "%q → %q", f, to)
			if f.Final() {
				require.False(t, allowed(f, to), "a final status (%s) is never left", f)
			}
		}
	}
	for _, st := range Statuses {
		reached := false
		for _, tr := range transitions {
			reached = reached || tr.to == st
		}
		require.True(t, reached, "%s is reachable", st)
	}
}

// TestOnlyLifecycleWritesStatus reads the package's source: a run's
// status is written (a Run literal's Status, a "status" key of an update
// map, upd["status"] = …, an SQL UPDATE … SET status) only in
// lifecycle.go.
func TestOnlyLifecycleWritesStatus(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	setStatus := regexp.MustCompile(`(?is)\bupdate\s+` + "`?" + `runs` + "`?" + `\b.*\bset\b.*\bstatus\s*=`)
	hits := map[string][]string{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err, name)
		add := func(n ast.Node, what string) {
			hits[name] = append(hits[name], fset.Position(n.Pos()).String()+": "+what)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.CompositeLit:
				if id, ok := x.Type.(*ast.Ident); ok && id.Name == "Run" {
					for _, e := range x.Elts {
						if kv, ok := e.(*ast.KeyValueExpr); ok {
							if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Status" {
								add(x, "Run{Status: …}")
							}
						}
					}
				}
				if _, ok := x.Type.(*ast.MapType); ok {
					for _, e := range x.Elts {
						if kv, ok := e.(*ast.KeyValueExpr); ok && isStringLit(kv.Key, "status") {
							add(kv, `map{"status": …}`)
						}
					}
				}
			case *ast.AssignStmt:
				for _, l := range x.Lhs {
					if ix, ok := l.(*ast.IndexExpr); ok && isStringLit(ix.Index, "status") {
						add(x, `upd["status"] = …`)
					}
					if sel, ok := l.(*ast.SelectorExpr); ok && sel.Sel.Name == "Status" {
						if id, ok := sel.X.(*ast.Ident); ok && (id.Name == "r" || id.Name == "run") {
							add(x, "r.Status = …")
						}
					}
				}
			case *ast.BasicLit:
				if x.Kind == token.STRING {
					if v, err := strconv.Unquote(x.Value); err == nil && setStatus.MatchString(v) {
						add(x, "UPDATE runs SET status")
					}
				}
			}
			return true
		})
	}
	for name, hs := range hits {
		if name == "lifecycle.go" {
			continue
		}
		t.Errorf("%s writes a run's status outside lifecycle.go:\n  %s", name, strings.Join(hs, "\n  "))
	}
	// No other package writes a run's status in SQL of its own.
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
			filepath.Dir(path) == filepath.Join("..", "jobs") {
			return err
		}
		f, perr := parser.ParseFile(fset, path, nil, 0)
		if perr != nil {
			return perr
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if x, ok := n.(*ast.BasicLit); ok && x.Kind == token.STRING {
				if v, err := strconv.Unquote(x.Value); err == nil && setStatus.MatchString(v) {
					t.Errorf("%s: writes a run's status outside jobs/lifecycle.go", fset.Position(x.Pos()))
				}
			}
			return true
		})
		return nil
	})
	require.NoError(t, err)
	// The detector is not blind: it sees lifecycle.go's own writes.
	require.GreaterOrEqual(t, len(hits["lifecycle.go"]), 4, "the detector finds the writes in lifecycle.go: %v", hits["lifecycle.go"])
}

func isStringLit(e ast.Expr, s string) bool {
	b, ok := e.(*ast.BasicLit)
	if !ok || b.Kind != token.STRING {
		return false
	}
	v, err := strconv.Unquote(b.Value)
	return err == nil && v == s
}
