package store

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSettingsCacheFollowsWrites checks that the cached Settings never outlives a write: every
// way the record can change (PutSettings, Reset) is seen by the next read, callers cannot alter
// the cache through the returned slice, and a closed store still answers ErrClosed.
func TestSettingsCacheFollowsWrites(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t)
		want := Settings{AlwaysUV: true, MinPINLength: 6, MinPINLengthRPIDs: []string{"a.example"}}
		for i := range 3 {
			got, err := s.Settings()
			require.NoError(t, err)
			if i == 0 {
				require.Equal(t, Settings{}, got)
				require.NoError(t, s.PutSettings(want))
				continue
			}
			require.Equal(t, want, got, "read %d after PutSettings", i)
			got.MinPINLengthRPIDs[0] = "mutated.example"
		}
		want.AlwaysUV = false
		require.NoError(t, s.PutSettings(want))
		got, err := s.Settings()
		require.NoError(t, err)
		require.Equal(t, want, got)

		require.NoError(t, s.Reset())
		got, err = s.Settings()
		require.NoError(t, err)
		require.Equal(t, Settings{}, got, "reset clears the settings")

		require.NoError(t, s.Close())
		_, err = s.Settings()
		require.ErrorIs(t, err, ErrClosed)
	})
}

// TestSettingsCacheConcurrent races readers against a writer that alternates alwaysUv; once
// the writer is done, every reader must see its last value.
func TestSettingsCacheConcurrent(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := s.Settings(); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		for i := range 50 {
			require.NoError(t, s.PutSettings(Settings{AlwaysUV: i%2 == 0, MinPINLength: 4 + i%3}))
		}
		close(stop)
		wg.Wait()
		got, err := s.Settings()
		require.NoError(t, err)
		require.Equal(t, Settings{AlwaysUV: false, MinPINLength: 4 + 49%3}, got)
	})
}

// TestSettingsCacheHitAllocatesNothing: every getAssertion reads the settings (alwaysUv), so
// a cache hit must cost no allocation (it cost two while Settings' results were captured by
// the closure of its miss path).
func TestSettingsCacheHitAllocatesNothing(t *testing.T) {
	for _, impl := range implementations { // not forEach: AllocsPerRun refuses parallel tests
		s := impl.open(t)
		require.NoError(t, s.PutSettings(Settings{AlwaysUV: true, MinPINLength: 6}))
		_, err := s.Settings() // fills the cache
		require.NoError(t, err)
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := s.Settings(); err != nil {
				t.Fatal(err)
			}
		})
		require.Zero(t, allocs, impl.name)
	}
}
