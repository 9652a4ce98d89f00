package runner

import "github.com/fidolab/fidolab/scenarios/catalog"

// Select returns the cases Run would run with opts (its Filter and Keys) and the scenarios it
// would leave out, without running anything: fidolab run refuses an empty selection before any
// key is touched.
func Select(cat *catalog.Catalog, opts Options) (cases []catalog.Case, leftOut []string, err error) {
	f, err := catalog.ParseFilter(opts.Filter)
	if err != nil {
		return nil, nil, err
	}
	cases = cat.Select(f)
	if opts.Keys != nil && opts.Keys.Override() != "" {
		_, inproc := opts.Keys.(*inprocFactory)
		cases, leftOut = keyAgnostic(cases, !inproc)
	}
	return cases, leftOut, nil
}
