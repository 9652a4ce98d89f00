// Package hiddesc parses HID report descriptors (HID 1.11 §6.2.2) far enough to tell a FIDO
// authenticator (usage page 0xF1D0, usage 0x01) from any other HID device and to learn the sizes of
// its input and output reports. The host-side transports that reach real keys (hidraw, usb) use it
// to refuse a keyboard or a mouse before writing a single byte to it.
package hiddesc

import (
	"errors"
	"fmt"
	"slices"
)

// Usage page and usage of a FIDO authenticator (CTAP 2.1 §11.2.8.1).
const (
	UsagePageFIDO = 0xF1D0
	UsageCTAPHID  = 0x01
)

// Limits on a descriptor: larger ones are refused rather than parsed at length. The kernel caps a
// report descriptor at 4096 bytes (HID_MAX_DESCRIPTOR_SIZE).
const (
	MaxSize          = 4096
	maxDepth         = 32 // nested collections
	maxPushDepth     = 16 // Push without Pop
	maxReportBits    = 1 << 20
	maxCollectionsTL = 256 // top-level collections
)

// Kind is the main item a report field comes from.
type Kind uint8

// Report kinds.
const (
	Input Kind = iota
	Output
	Feature
)

func (k Kind) String() string {
	switch k {
	case Input:
		return "input"
	case Output:
		return "output"
	case Feature:
		return "feature"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ReportKey names one report: its kind and report ID (0 when the descriptor uses no IDs).
type ReportKey struct {
	Kind Kind
	ID   uint8
}

// Collection is one top-level collection and the reports declared inside it.
type Collection struct {
	UsagePage uint16
	Usage     uint16
	// Type is the collection type (1 = application).
	Type uint8
	// Bits is the size of each report in bits, by kind and report ID.
	Bits map[ReportKey]int
}

// IsFIDO reports whether the collection is a CTAPHID application collection.
func (c *Collection) IsFIDO() bool {
	return c.UsagePage == UsagePageFIDO && c.Usage == UsageCTAPHID && c.Type == collectionApplication
}

// ReportSize returns the size in bytes of the report of kind k with report ID id (rounded up), 0 if
// the collection declares none.
func (c *Collection) ReportSize(k Kind, id uint8) int {
	return (c.Bits[ReportKey{k, id}] + 7) / 8
}

// Descriptor is a parsed report descriptor.
type Descriptor struct {
	// Collections are the top-level collections in descriptor order.
	Collections []Collection
	// ReportIDs is true when the descriptor assigns report IDs: every report on the wire then
	// starts with its ID byte.
	ReportIDs bool
}

// FIDO returns the first CTAPHID application collection, or nil.
func (d *Descriptor) FIDO() *Collection {
	for i := range d.Collections {
		if d.Collections[i].IsFIDO() {
			return &d.Collections[i]
		}
	}
	return nil
}

// FIDOReport describes the CTAPHID reports of a FIDO collection.
type FIDOReport struct {
	ID         uint8 // report ID, 0 when the descriptor uses none
	InputSize  int   // bytes of an input report (64 on every key seen)
	OutputSize int   // bytes of an output report
}

// ErrNotFIDO is returned by FIDOReports for a descriptor without a CTAPHID collection.
var ErrNotFIDO = errors.New("hiddesc: not a FIDO device (no usage page 0xF1D0 usage 0x01 application collection)")

// FIDOReports returns the report layout of the descriptor's FIDO collection: the one report ID that
// has both an input and an output report (CTAPHID needs both).
func (d *Descriptor) FIDOReports() (FIDOReport, error) {
	c := d.FIDO()
	if c == nil {
		return FIDOReport{}, ErrNotFIDO
	}
	var ids []uint8
	for k := range c.Bits {
		if k.Kind == Input && c.Bits[ReportKey{Output, k.ID}] > 0 && c.Bits[k] > 0 {
			ids = append(ids, k.ID)
		}
	}
	if len(ids) == 0 {
		return FIDOReport{}, errors.New("hiddesc: FIDO collection declares no input and output report of the same ID")
	}
	slices.Sort(ids)
	id := ids[0]
	return FIDOReport{ID: id, InputSize: c.ReportSize(Input, id), OutputSize: c.ReportSize(Output, id)}, nil
}

// Item types and tags (HID 1.11 §6.2.2.4–6.2.2.8).
const (
	typeMain   = 0
	typeGlobal = 1
	typeLocal  = 2

	tagInput         = 0x8
	tagOutput        = 0x9
	tagFeature       = 0xB
	tagCollection    = 0xA
	tagEndCollection = 0xC

	tagUsagePage   = 0x0
	tagReportSize  = 0x7
	tagReportID    = 0x8
	tagReportCount = 0x9
	tagPush        = 0xA
	tagPop         = 0xB

	tagUsage    = 0x0
	tagUsageMin = 0x1

	longItemPrefix = 0xFE

	collectionApplication = 0x01
)

// usage is a local Usage (or Usage Minimum) item.
type usage struct {
	page, id uint32
	extended bool // a 4-byte item: page in the high 16 bits
}

// globals is the global item state, saved by Push and restored by Pop.
type globals struct {
	usagePage   uint32
	reportSize  uint32
	reportCount uint32
	reportID    uint8
}

// SyntaxError says where and why a descriptor is malformed.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("hiddesc: report descriptor byte %d: %s", e.Offset, e.Msg)
}

// Parse parses a report descriptor. A malformed one (truncated item, unbalanced collections,
// Pop without Push, absurd sizes) is a *SyntaxError; reserved items are skipped as the kernel does.
func Parse(b []byte) (*Descriptor, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("hiddesc: report descriptor of %d bytes exceeds %d", len(b), MaxSize)
	}
	d := &Descriptor{}
	var (
		g      globals
		stack  []globals
		usages []usage // local usages since the last main item
		depth  int
		top    *Collection // current top-level collection, nil outside one
	)
	for off := 0; off < len(b); {
		prefix := b[off]
		if prefix == longItemPrefix {
			if off+3 > len(b) {
				return nil, &SyntaxError{off, "truncated long item"}
			}
			n := int(b[off+1])
			if off+3+n > len(b) {
				return nil, &SyntaxError{off, "truncated long item data"}
			}
			off += 3 + n // long items carry vendor data only; none is defined
			continue
		}
		size := int(prefix & 0x03)
		if size == 3 {
			size = 4
		}
		if off+1+size > len(b) {
			return nil, &SyntaxError{off, fmt.Sprintf("item 0x%02x needs %d data bytes, %d left", prefix, size, len(b)-off-1)}
		}
		var data uint32
		for i := size - 1; i >= 0; i-- {
			data = data<<8 | uint32(b[off+1+i])
		}
		typ, tag := (prefix>>2)&0x03, prefix>>4
		at := off
		off += 1 + size

		switch typ {
		case typeMain:
			switch tag {
			case tagCollection:
				if depth >= maxDepth {
					return nil, &SyntaxError{at, fmt.Sprintf("collections nested deeper than %d", maxDepth)}
				}
				if depth == 0 {
					if len(d.Collections) >= maxCollectionsTL {
						return nil, &SyntaxError{at, fmt.Sprintf("more than %d top-level collections", maxCollectionsTL)}
					}
					// A short usage takes the usage page in effect at the main item (as Linux does
					// since 5.3); an extended (4-byte) usage carries its own.
					page, id := g.usagePage, uint32(0)
					if len(usages) > 0 {
						id = usages[0].id
						if usages[0].extended {
							page = usages[0].page
						}
					}
					d.Collections = append(d.Collections, Collection{UsagePage: uint16(page), Usage: uint16(id),
						Type: uint8(data), Bits: map[ReportKey]int{}})
					top = &d.Collections[len(d.Collections)-1]
				}
				depth++
			case tagEndCollection:
				if depth == 0 {
					return nil, &SyntaxError{at, "End Collection without Collection"}
				}
				depth--
				if depth == 0 {
					top = nil
				}
			case tagInput, tagOutput, tagFeature:
				bits := uint64(g.reportSize) * uint64(g.reportCount)
				if top == nil {
					return nil, &SyntaxError{at, "report field outside any collection"}
				}
				k := ReportKey{Input, g.reportID}
				switch tag {
				case tagOutput:
					k.Kind = Output
				case tagFeature:
					k.Kind = Feature
				}
				total := uint64(top.Bits[k]) + bits
				if total > maxReportBits {
					return nil, &SyntaxError{at, fmt.Sprintf("%s report %d larger than %d bits", k.Kind, k.ID, maxReportBits)}
				}
				top.Bits[k] = int(total)
			}
			usages = usages[:0] // local items end with every main item
		case typeGlobal:
			switch tag {
			case tagUsagePage:
				g.usagePage = data
			case tagReportSize:
				g.reportSize = data
			case tagReportCount:
				g.reportCount = data
			case tagReportID:
				if data == 0 || data > 0xFF {
					return nil, &SyntaxError{at, fmt.Sprintf("report ID %d out of 1..255", data)}
				}
				g.reportID = uint8(data)
				d.ReportIDs = true
			case tagPush:
				if len(stack) >= maxPushDepth {
					return nil, &SyntaxError{at, fmt.Sprintf("more than %d nested Push items", maxPushDepth)}
				}
				stack = append(stack, g)
			case tagPop:
				if len(stack) == 0 {
					return nil, &SyntaxError{at, "Pop without Push"}
				}
				g, stack = stack[len(stack)-1], stack[:len(stack)-1]
			}
		case typeLocal:
			switch tag {
			case tagUsage, tagUsageMin:
				if len(usages) < 64 {
					usages = append(usages, usage{page: data >> 16, id: data & 0xFFFF, extended: size == 4})
				}
			}
		}
	}
	if depth != 0 {
		return nil, &SyntaxError{len(b), fmt.Sprintf("%d collection(s) not closed", depth)}
	}
	return d, nil
}
