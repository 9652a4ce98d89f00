package persona

import (
	"fmt"
	"reflect"
	"strings"
)

// numbers is every number a persona may hold, by YAML path, with the values it may take. It is
// the one range table: the file check (schema.go) reports a number outside its range at its line,
// and Validate checks the same table for personas made in Go. A new numeric field of Persona gets
// its entry here; TestEveryNumberHasARange fails until it has one.
var numbers = map[string]span{
	"maxMsgSize":                  {min: 1024, max: 7609, ctap2: true, why: "CTAPHID carries at most 7609 bytes; CTAP asks for at least 1024"},
	"maxCredentialCountInList":    {min: 1, max: 64, ctap2: true},
	"maxCredentialIdLength":       {min: 64, max: 1023, ctap2: true, why: "WebAuthn caps credential IDs at 1023 bytes"},
	"residentCapacity":            {min: 0, max: 1 << 20},
	"maxCredBlobLength":           {min: 0, max: 7609, why: "a credBlob travels in one request"},
	"maxSerializedLargeBlobArray": {min: 0, max: 1 << 20},
	"maxRPIDsForSetMinPINLength":  {min: 0, max: 64},
	"minPinLength":                {min: 4, max: 63, ctap2: true, why: "CTAP: 4 to 63 code points"},
	"firmwareVersion":             {min: 0, max: 1<<32 - 1},
	"maxFingerprints":             {min: 0, max: 100},
	"enrollSamples":               {min: 0, max: 64},
	"hid.vendorId":                {min: 0, max: 0xffff},
	"hid.productId":               {min: 0, max: 0xffff},
	"hid.deviceMajor":             {min: 0, max: 0xff},
	"hid.deviceMinor":             {min: 0, max: 0xff},
	"hid.deviceBuild":             {min: 0, max: 0xff},
	"quirks.resetWindowSeconds":   {min: 0, max: 3600, why: "0 is the spec's 10 s"},
	"quirks.processingDelayMs":    {min: 0, max: 600_000, why: "at most 10 minutes"},
	// Lists whose values Validate checks against the values it knows (a range would say less).
	"pinUvAuthProtocols": {listed: true},
	"algorithms":         {listed: true},
}

// span is the values one number may take.
type span struct {
	min, max int64
	// ctap2: Validate checks it only on a CTAP2 persona (a U2F-only persona leaves it 0). A file
	// that writes the number gets it checked regardless.
	ctap2 bool
	// listed: each value is checked by Validate against a list of known values; the table only
	// records that the number is looked after.
	listed bool
	why    string // shown with the range
}

// check returns what is wrong with v, or "".
func (s span) check(v int64) string {
	if s.listed || (v >= s.min && v <= s.max) {
		return ""
	}
	msg := fmt.Sprintf("%d is outside %d..%d", v, s.min, s.max)
	if s.why != "" {
		msg += " (" + s.why + ")"
	}
	return msg
}

// numberProblems checks p's numbers against the table.
func (p *Persona) numberProblems() []Problem {
	var out []Problem
	root := reflect.ValueOf(p).Elem()
	for _, path := range sortedKeys(numbers) {
		s := numbers[path]
		if s.ctap2 && !p.CTAP2 {
			continue
		}
		v, ok := fieldByPath(root, path)
		if !ok {
			out = append(out, Problem{Field: path, Msg: "no such field (the range table is out of date)"})
			continue
		}
		if v.Kind() == reflect.Slice {
			for i := range v.Len() {
				if msg := s.check(intOf(v.Index(i))); msg != "" {
					out = append(out, Problem{Field: fmt.Sprintf("%s[%d]", path, i), Msg: msg})
				}
			}
			continue
		}
		if msg := s.check(intOf(v)); msg != "" {
			out = append(out, Problem{Field: path, Msg: msg})
		}
	}
	return out
}

func intOf(v reflect.Value) int64 {
	if v.CanInt() {
		return v.Int()
	}
	return int64(v.Uint())
}

// fieldByPath finds the field at a YAML path ("quirks.processingDelayMs") in a Persona value.
func fieldByPath(v reflect.Value, path string) (reflect.Value, bool) {
	for name := range strings.SplitSeq(path, ".") {
		f, ok := yamlFields(v.Type())[name]
		if !ok {
			return reflect.Value{}, false
		}
		v = v.Field(f.Index)
	}
	return v, true
}
