//go:build race

package mutation

// raceEnabled: under the race detector (CI's second pass over the suite) TestCatalogStrength runs
// every rule and a sample of the defects (raceSample): the race detector looks for unsynchronised
// memory access in the code the sample exercises — parallel runs, probes, baselines, timeouts,
// faults — while the full measurement, and the docs table it produces, is the first pass's.
const raceEnabled = true
