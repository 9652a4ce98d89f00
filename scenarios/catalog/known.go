package catalog

import (
	"fmt"

	"github.com/fidolab/fidolab/scenarios/fieldmatch"
)

// KnownFailures are the catalog's field-report scenarios that carry trace signatures, ready for
// fieldmatch.Match, and each one's report by scenario ID. A signature that does not parse is an
// error: the loader refuses such a file, so only a catalog built by hand can hold one.
func (c *Catalog) KnownFailures() ([]fieldmatch.Known, map[string]*Report, error) {
	var known []fieldmatch.Known
	reports := map[string]*Report{}
	for _, s := range c.Scenarios {
		if s.Report == nil || len(s.Report.Match) == 0 {
			continue
		}
		k := fieldmatch.Known{ID: s.ID, Title: s.Title, Source: s.Report.Source}
		for _, m := range s.Report.Match {
			sig, err := fieldmatch.Parse(m)
			if err != nil {
				return nil, nil, fmt.Errorf("catalog: %s: report signature %q: %w", s.ID, m, err)
			}
			k.Signatures = append(k.Signatures, sig)
		}
		known = append(known, k)
		reports[s.ID] = s.Report
	}
	return known, reports, nil
}
