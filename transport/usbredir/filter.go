package usbredir

import (
	"fmt"
	"strconv"
	"strings"
)

// FilterRule is one rule of a usbredir device filter: -1 in a field matches anything.
type FilterRule struct {
	Class, VendorID, ProductID, BCDDevice int
	Allow                                 bool
}

// Filter is the rule list a usb-guest may send in filter_filter: rules are tried in order, the
// first match decides, and a device no rule matches is refused.
type Filter []FilterRule

// ParseFilter reads a filter string: rules separated by '|', each
// "<class>,<vendor>,<product>,<version>,<allow>" with C-style integers (decimal, 0x hex, 0 octal)
// and -1 for any. Empty rules between separators are skipped.
func ParseFilter(s string) (Filter, error) {
	var f Filter
	for _, rule := range strings.Split(s, "|") {
		if rule == "" {
			continue
		}
		tok := strings.Split(rule, ",")
		if len(tok) != 5 {
			return nil, fmt.Errorf("usbredir filter rule %q: want 5 comma-separated fields", rule)
		}
		var v [5]int
		for i, t := range tok {
			n, err := strconv.ParseInt(t, 0, 32)
			if err != nil {
				return nil, fmt.Errorf("usbredir filter rule %q: field %d: %w", rule, i+1, err)
			}
			v[i] = int(n)
		}
		r := FilterRule{Class: v[0], VendorID: v[1], ProductID: v[2], BCDDevice: v[3], Allow: v[4] != 0}
		if r.Class < -1 || r.Class > 0xff || r.VendorID < -1 || r.VendorID > 0xffff ||
			r.ProductID < -1 || r.ProductID > 0xffff || r.BCDDevice < -1 || r.BCDDevice > 0xffff {
			return nil, fmt.Errorf("usbredir filter rule %q: value out of range", rule)
		}
		f = append(f, r)
	}
	return f, nil
}

func (f Filter) check1(class byte, vid, pid, bcd uint16) bool {
	for _, r := range f {
		if (r.Class == -1 || r.Class == int(class)) && (r.VendorID == -1 || r.VendorID == int(vid)) &&
			(r.ProductID == -1 || r.ProductID == int(pid)) && (r.BCDDevice == -1 || r.BCDDevice == int(bcd)) {
			return r.Allow
		}
	}
	return false
}

// Allows reports whether the filter lets the device through, as usbredir's filter check decides:
// the device class unless it is 0x00 or 0xEF (then the interfaces say), then every interface
// class; with several interfaces, non-boot HID interfaces are skipped unless all of them are.
func (f Filter) Allows(d DeviceConnect, ifs InterfaceInfo) bool {
	if d.Class != 0x00 && d.Class != 0xef && !f.check1(d.Class, d.VendorID, d.ProductID, d.BCDDevice) {
		return false
	}
	n := min(int(ifs.Count), 32)
	check := func(skipNonBootHID bool) (skipped int, ok bool) {
		for i := range n {
			if skipNonBootHID && n > 1 && ifs.Class[i] == 0x03 && ifs.SubClass[i] == 0 && ifs.Protocol[i] == 0 {
				skipped++
				continue
			}
			if !f.check1(ifs.Class[i], d.VendorID, d.ProductID, d.BCDDevice) {
				return skipped, false
			}
		}
		return skipped, true
	}
	skipped, ok := check(true)
	if !ok {
		return false
	}
	if n > 0 && skipped == n {
		_, ok = check(false)
	}
	return ok
}
