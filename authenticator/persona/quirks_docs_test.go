package persona

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDocsListEveryQuirk: docs/personas.md's quirk table has a row for every quirk a persona file
// may set.
func TestDocsListEveryQuirk(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "personas.md"))
	require.NoError(t, err)
	q := reflect.TypeFor[Quirks]()
	for i := range q.NumField() {
		tag, _, _ := strings.Cut(q.Field(i).Tag.Get("yaml"), ",")
		require.Contains(t, string(b), "| `"+tag+"` |", "docs/personas.md lacks a row for quirk %s", tag)
	}
}
