package trace

import (
	"math/rand/v2"
	"testing"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/stretchr/testify/require"
)

// TestReportSpansMatchFraming checks the payload→report mapping against ctaphid's own framing:
// a payload whose secret bytes are 0xFF and others 0x00, fragmented by ctaphid, has 0xFF exactly
// where reportSpans says.
func TestReportSpansMatchFraming(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		n := 1 + rng.IntN(ctaphid.MaxMessageSize)
		var spans []Span
		for range rng.IntN(4) {
			a := rng.IntN(n)
			spans = append(spans, Span{a, a + 1 + rng.IntN(min(n-a, 200))})
		}
		spans = mergeSpans(spans, n)
		payload := make([]byte, n)
		for _, s := range spans {
			for i := s.Start; i < s.End; i++ {
				payload[i] = 0xff
			}
		}
		reports, err := ctaphid.Fragment(0, 0, payload)
		require.NoError(t, err)
		per := reportSpans(spans, len(reports))
		for k, r := range reports {
			hdr := ctaphid.ReportSize - ctaphid.ContPayloadSize
			if k == 0 {
				hdr = ctaphid.ReportSize - ctaphid.InitPayloadSize
			}
			b := &Bytes{B: r[:], Redacted: per[k]}
			for i := hdr; i < ctaphid.ReportSize; i++ {
				require.Equal(t, r[i] == 0xff, b.IsRedacted(i), "payload %d bytes, spans %v, report %d byte %d", n, spans, k, i)
			}
		}
	}
}
