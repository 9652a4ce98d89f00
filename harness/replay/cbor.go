package replay

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fxamacker/cbor/v2"
)

// Recorded requests come from any host, not only a canonical one: they are read leniently (a
// duplicate key, an indefinite length or a tag is kept, not refused) within firm size limits.
var lenient, _ = cbor.DecOptions{
	MaxNestedLevels:  16,
	MaxArrayElements: 4096,
	MaxMapPairs:      4096,
	DupMapKey:        cbor.DupMapKeyQuiet,
	IndefLength:      cbor.IndefLengthAllowed,
	TagsMd:           cbor.TagsAllowed,
	DefaultMapType:   reflect.TypeOf(map[any]any(nil)),
}.DecMode()

// decodeMap decodes a CBOR map with integer or text keys.
func decodeMap(b []byte) (map[any]any, error) {
	if len(b) == 0 {
		return nil, errors.New("no CBOR")
	}
	var v any
	if err := lenient.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	m, ok := v.(map[any]any)
	if !ok {
		return nil, fmt.Errorf("CBOR %T, not a map", v)
	}
	return m, nil
}

// decodeAny decodes any CBOR item.
func decodeAny(b []byte) (any, error) {
	var v any
	err := lenient.Unmarshal(b, &v)
	return v, err
}

// encode writes v in CTAP2 canonical CBOR.
func encode(v any) ([]byte, error) { return ctap.Marshal(v) }

// get looks a map member up by an integer or text key, whatever integer type the decoder chose.
func get(m map[any]any, key any) (any, bool) {
	if m == nil {
		return nil, false
	}
	switch k := key.(type) {
	case int:
		for _, c := range []any{uint64(k), int64(k)} {
			if v, ok := m[c]; ok {
				return v, true
			}
		}
		return nil, false
	}
	v, ok := m[key]
	return v, ok
}

// set replaces a member, keeping the key type the decoder used (or uint64 for a new one).
func set(m map[any]any, key any, v any) {
	if k, ok := key.(int); ok {
		for _, c := range []any{uint64(k), int64(k)} {
			if _, ok := m[c]; ok {
				m[c] = v
				return
			}
		}
		if k >= 0 {
			m[uint64(k)] = v
		} else {
			m[int64(k)] = v
		}
		return
	}
	m[key] = v
}

func getMap(m map[any]any, key any) map[any]any {
	v, _ := get(m, key)
	mm, _ := v.(map[any]any)
	return mm
}

func getBytes(m map[any]any, key any) []byte {
	v, _ := get(m, key)
	b, _ := v.([]byte)
	return b
}

func getString(m map[any]any, key any) string {
	v, _ := get(m, key)
	s, _ := v.(string)
	return s
}

func getUint(m map[any]any, key any) (uint64, bool) {
	v, _ := get(m, key)
	return asUint(v)
}

func asUint(v any) (uint64, bool) {
	switch n := v.(type) {
	case uint64:
		return n, true
	case int64:
		return uint64(n), n >= 0
	}
	return 0, false
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case uint64:
		if n > 1<<62 {
			return 0, false
		}
		return int64(n), true
	case int64:
		return n, true
	}
	return 0, false
}

// keyName renders a map key for a path: 1, -2, "rk".
func keyName(k any) string {
	switch v := k.(type) {
	case string:
		return v
	case uint64, int64:
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("%v", k)
}

// sortedKeys returns a map's keys in a stable order: integers by value, then text.
func sortedKeys(m map[any]any) []any {
	keys := make([]any, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, aok := asInt(keys[i])
		b, bok := asInt(keys[j])
		switch {
		case aok && bok:
			return a < b
		case aok != bok:
			return aok
		}
		return keyName(keys[i]) < keyName(keys[j])
	})
	return keys
}

// show renders a value briefly for a difference line.
func show(v any) string {
	switch x := v.(type) {
	case nil:
		return "(absent)"
	case []byte:
		if len(x) > 24 {
			return fmt.Sprintf("h'%x…' (%d bytes)", x[:12], len(x))
		}
		return fmt.Sprintf("h'%x'", x)
	case string:
		return fmt.Sprintf("%q", x)
	case map[any]any:
		var parts []string
		for _, k := range sortedKeys(x) {
			parts = append(parts, keyName(k)+": "+show(x[k]))
		}
		s := "{" + strings.Join(parts, ", ") + "}"
		if len(s) > 160 {
			s = s[:157] + "…}"
		}
		return s
	case []any:
		var parts []string
		for _, e := range x {
			parts = append(parts, show(e))
		}
		s := "[" + strings.Join(parts, ", ") + "]"
		if len(s) > 160 {
			s = s[:157] + "…]"
		}
		return s
	}
	return fmt.Sprint(v)
}

// equal compares decoded CBOR values.
func equal(a, b any) bool {
	switch x := a.(type) {
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case map[any]any:
		y, ok := b.(map[any]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := get(y, normKey(k))
			if !ok || !equal(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	if ai, ok := asInt(a); ok {
		bi, ok := asInt(b)
		return ok && ai == bi
	}
	return a == b
}

// normKey turns an integer key into an int for get.
func normKey(k any) any {
	if i, ok := asInt(k); ok {
		return int(i)
	}
	return k
}
