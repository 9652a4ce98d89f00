package probe

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/stretchr/testify/require"
)

// TestReportFormats: the JSON report reads back as it was written, the HTML page escapes what a
// key says of itself, and the text names every check.
func TestReportFormats(t *testing.T) {
	t.Parallel()
	p, err := persona.Builtin("ctap20")
	require.NoError(t, err)
	r, _, err := Probe(context.Background(), emulated(t, p), Options{Spec: "persona:ctap20"})
	require.NoError(t, err)
	r.Catalog = &CatalogResult{Key: "persona:ctap20", Total: 1, KeyIncompatible: 1,
		Cases: []CatalogCase{{ID: "manage-change-pin", Version: "11-24H2", Verdict: "key-incompatible", Cause: "key lacks FIDO_2_1"}}}
	r.Key.Description = `<script>alert("key")</script>`

	var js bytes.Buffer
	require.NoError(t, WriteJSON(&js, r))
	back, err := ReadJSON(&js)
	require.NoError(t, err)
	require.Equal(t, r.Checks, back.Checks)
	require.Equal(t, r.Catalog, back.Catalog)

	var h bytes.Buffer
	require.NoError(t, WriteHTML(&h, r))
	require.NotContains(t, h.String(), `<script>alert`)
	require.Contains(t, h.String(), `&lt;script&gt;`)
	require.Equal(t, len(r.Checks), strings.Count(h.String(), `<tr id="`))
	require.Contains(t, h.String(), "key lacks FIDO_2_1")

	var txt bytes.Buffer
	require.NoError(t, WriteText(&txt, r, TextOptions{ASCII: true}))
	for _, c := range r.Checks {
		require.Contains(t, txt.String(), c.Title)
	}
	require.Contains(t, txt.String(), "not destructive")
	require.Contains(t, txt.String(), "key-incompatible ×1: key lacks FIDO_2_1\n      manage-change-pin@11-24H2")

	for _, bad := range []string{`{"schemaVersion":2}`, `{"schemaVersion":1,"checks":[{"status":"great"}]}`, `{"schemaVersion":1,"x":1}`, `[`} {
		_, err := ReadJSON(strings.NewReader(bad))
		require.Error(t, err, bad)
	}
}

// FuzzReadJSON: any bytes are read as a report or refused, never a panic; what is read renders.
func FuzzReadJSON(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":1,"tool":"fidolab probe","key":{"spec":"x"},"checks":[{"id":"a","title":"A","need":"n","status":"pass"}]}`))
	f.Add([]byte(`{"schemaVersion":1,"catalog":{"cases":[{"id":"a","verdict":"fail"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ReadJSON(bytes.NewReader(data))
		if err != nil {
			return
		}
		var b bytes.Buffer
		require.NoError(t, WriteText(&b, r, TextOptions{}))
		require.NoError(t, WriteHTML(&b, r))
		require.NoError(t, WriteJSON(&b, r))
	})
}
