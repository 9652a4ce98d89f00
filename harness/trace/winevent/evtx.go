package winevent

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/Velocidex/ordereddict"
	"www.velocidex.com/golang/evtx"
)

// EVTX files are read with Velocidex's parser (www.velocidex.com/golang/evtx, the one
// Velociraptor uses; pinned in go.mod): it expands BinXML templates into ordered dictionaries,
// which are rendered here into the same Event as an XML export gives.

// evtxMagic starts every EVTX file.
var evtxMagic = []byte("ElfFile\x00")

// IsEVTX reports whether data starts like an EVTX file.
func IsEVTX(head []byte) bool { return bytes.HasPrefix(head, evtxMagic) }

// ParseEVTX reads the events of an EVTX file. A file the parser cannot read is an error; a
// chunk that fails is reported with the events read before it.
func ParseEVTX(r io.ReadSeeker) (events []Event, err error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("evtx: %w", err)
	}
	return parseEVTX(data)
}

func parseEVTX(data []byte) (events []Event, err error) {
	defer func() {
		// The parser reads untrusted bytes; it is bounds-checked, but a failure there must be an
		// error for this file, never a crash of fidolab.
		if p := recover(); p != nil {
			err = fmt.Errorf("evtx: the parser failed on this file: %v", p)
		}
	}()
	chunks, err := evtx.GetChunks(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("evtx: %w", err)
	}
	var damaged []string
	for i, c := range chunks {
		if err := checkChunk(data, c.Offset); err != nil {
			damaged = append(damaged, fmt.Sprintf("chunk %d: %v", i, err))
			continue
		}
		recs, err := c.Parse(0)
		for _, rec := range recs {
			ev, ok := fromEVTX(rec)
			if ok {
				events = append(events, ev)
			}
			if len(events) > MaxEvents {
				return events, fmt.Errorf("evtx: more than %d events", MaxEvents)
			}
		}
		if err != nil {
			return events, fmt.Errorf("evtx: chunk %d: %w", i, err)
		}
	}
	if len(damaged) > 0 {
		return events, fmt.Errorf("evtx: damaged chunks skipped: %s", strings.Join(damaged, "; "))
	}
	return events, nil
}

// EVTX chunk layout (the parts checked before the parser sees a chunk).
const (
	chunkSize       = 64 << 10
	chunkHeaderSize = 512
	recordHeader    = 24
)

// checkChunk walks a chunk's record headers before the parser does: the record numbers in the
// chunk header must fit the chunk, and every record must have its magic and a size that moves
// forward inside the chunk. A damaged chunk (a record of size zero makes the parser read the same
// record ten thousand times) is skipped and reported instead.
func checkChunk(data []byte, off int64) error {
	if off < 0 || off+chunkSize > int64(len(data)) {
		return errors.New("truncated")
	}
	c := data[off : off+chunkSize]
	first, last := binary.LittleEndian.Uint64(c[8:]), binary.LittleEndian.Uint64(c[16:])
	if last < first || last-first >= chunkSize/recordHeader {
		return fmt.Errorf("record numbers %d..%d do not fit a chunk", first, last)
	}
	p := chunkHeaderSize
	for n := first; n <= last; n++ {
		if p+recordHeader > chunkSize {
			return fmt.Errorf("record %d starts past the chunk", n)
		}
		if string(c[p:p+4]) != "**\x00\x00" {
			return fmt.Errorf("record %d at offset %d has no record magic", n, p)
		}
		size := int(binary.LittleEndian.Uint32(c[p+4:]))
		if size < recordHeader || size > chunkSize-p {
			return fmt.Errorf("record %d has size %d", n, size)
		}
		p += size
	}
	return nil
}

func fromEVTX(rec *evtx.EventRecord) (Event, bool) {
	root, ok := get(rec.Event, "Event")
	if !ok {
		return Event{}, false
	}
	sys, _ := get(root, "System")
	ev := Event{RecordID: rec.Header.RecordID}
	idv, ok := get(sys, "EventID", "Value")
	if !ok {
		idv, ok = get(sys, "EventID")
	}
	if !ok {
		return Event{}, false
	}
	id, ok := toInt(idv)
	if !ok {
		return Event{}, false
	}
	ev.ID = int(id)
	if v, ok := get(sys, "Provider", "Name"); ok {
		ev.Provider = fmt.Sprint(v)
	}
	if v, ok := get(sys, "Channel"); ok {
		ev.Channel = fmt.Sprint(v)
	}
	if v, ok := get(sys, "Computer"); ok {
		ev.Computer = fmt.Sprint(v)
	}
	if v, ok := get(sys, "TimeCreated", "SystemTime"); ok {
		if f, ok := v.(float64); ok && !math.IsNaN(f) && !math.IsInf(f, 0) && math.Abs(f) < 1e12 {
			sec, frac := math.Modf(f)
			ev.Time = time.Unix(int64(sec), int64(frac*1e9)).UTC()
		}
	}
	if v, ok := get(sys, "Execution", "ProcessID"); ok {
		n, _ := toInt(v)
		ev.PID = int(n)
	}
	if v, ok := get(sys, "Execution", "ThreadID"); ok {
		n, _ := toInt(v)
		ev.TID = int(n)
	}
	if v, ok := get(sys, "Level"); ok {
		n, _ := toInt(v)
		ev.Level = int(n)
	}
	if data, ok := get(root, "EventData"); ok {
		if d, ok := data.(*ordereddict.Dict); ok {
			for _, k := range d.Keys() {
				v, _ := d.Get(k)
				ev.Fields = append(ev.Fields, Field{Name: k, Value: render(v)})
			}
		}
	}
	if data, ok := get(root, "UserData"); ok {
		ev.Fields = append(ev.Fields, Field{Name: "UserData", Value: render(data)})
	}
	return ev, true
}

// get walks nested dictionaries.
func get(v any, path ...string) (any, bool) {
	for _, k := range path {
		d, ok := v.(*ordereddict.Dict)
		if !ok {
			return nil, false
		}
		if v, ok = d.Get(k); !ok {
			return nil, false
		}
	}
	return v, true
}

func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		return int64(n), n <= math.MaxInt64
	case float64:
		return int64(n), n == math.Trunc(n) && math.Abs(n) < 1<<53
	case string:
		i, err := strconv.ParseInt(n, 0, 64)
		return i, err == nil
	}
	return 0, false
}

var guidRE = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)

// render writes a value as the XML rendering would.
func render(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case []byte:
		return strings.ToUpper(hex.EncodeToString(x))
	case string:
		if guidRE.MatchString(x) {
			return "{" + strings.ToLower(x) + "}"
		}
		return x
	case bool:
		return strconv.FormatBool(x)
	case *ordereddict.Dict:
		var parts []string
		for _, k := range x.Keys() {
			val, _ := x.Get(k)
			parts = append(parts, k+"="+render(val))
		}
		return strings.Join(parts, "; ")
	}
	return fmt.Sprint(v)
}

// ErrUnknownFormat is an events file that is neither EVTX nor XML.
var ErrUnknownFormat = errors.New("not an EVTX file or an XML export of events")
