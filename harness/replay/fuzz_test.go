package replay

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/ctaphid"
)

// FuzzReadPlan feeds any bytes to the plan reader and everything that reads a recorded exchange:
// the step names, request shapes, preconditions, the profile of the recorded key, the request
// re-derivation and the comparison of an answer with itself. None may panic.
func FuzzReadPlan(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("..", "trace", "testdata", "session.trace.jsonl"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"format":"fidolab-trace","version":1,"created":"2026-01-01T00:00:00Z","tool":"fidolab run","secrets":false}` + "\n" +
		`{"type":"mark","t":"2026-01-01T00:00:00Z","case":"a@11-24H2","text":"key replugged"}` + "\n" +
		`{"type":"end","t":"2026-01-01T00:00:00Z","records":1}` + "\n"))
	noKA := func(context.Context, int) (cose.Key, error) { return cose.Key{}, errors.New("none") }
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ReadPlan(bytes.NewReader(data))
		if err != nil {
			return
		}
		_ = p.Profile("fuzz")
		for _, g := range p.Groups {
			_ = g.Preconditions()
			s := newSession()
			s.pin, s.setPINTo, s.wrongOK, s.pinWrites = "1234", "1234", true, true
			for _, st := range g.Steps {
				_ = st.Label()
				if st.HID == ctaphid.CmdCBOR && len(st.Request) > 0 || st.HID == ctaphid.CmdMsg && len(st.Request) > 0 {
					_ = shape(st.HID, st.Request)
				}
				pr, err := s.prepare(context.Background(), st, noKA)
				if err != nil || pr.skip != "" || st.Response == nil {
					continue
				}
				got, _ := st.Response.Payload()
				switch st.HID {
				case ctaphid.CmdCBOR:
					_ = s.compareCBOR(st, pr, got)
				case ctaphid.CmdMsg:
					s.compareU2F(st, pr.req, got, &outcome{})
				}
			}
		}
	})
}

// FuzzAsKey feeds any request a host might send to a key answering as a recorded one: the layer in
// front of the emulated key reads the request's shape, and must answer (recorded or emulated)
// without a panic.
func FuzzAsKey(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("..", "trace", "testdata", "session.trace.jsonl"))
	if err != nil {
		f.Fatal(err)
	}
	p, err := ReadPlan(bytes.NewReader(seed))
	if err != nil {
		f.Fatal(err)
	}
	ak, err := NewAsKey(p, AsKeyOptions{})
	if err != nil {
		f.Fatal(err)
	}
	h := ak.Intercept(nil)(echoHandler{})
	f.Add(byte(ctaphid.CmdCBOR), []byte{0x04})
	f.Add(byte(ctaphid.CmdCBOR), []byte{0x06, 0xa2, 0x01, 0x02, 0x02, 0x09})
	f.Add(byte(ctaphid.CmdMsg), []byte{0x00, 0x02, 0x03, 0x00, 0x00, 0x00, 0x41})
	f.Fuzz(func(t *testing.T, kind byte, req []byte) {
		if kind%2 == 0 {
			_ = h.HandleCBOR(context.Background(), req, func(byte) {})
		} else {
			_ = h.HandleMSG(context.Background(), req)
		}
	})
}

// echoHandler stands for the emulated key behind the layer.
type echoHandler struct{}

func (echoHandler) HandleCBOR(context.Context, []byte, func(byte)) []byte { return []byte{0} }
func (echoHandler) HandleMSG(context.Context, []byte) []byte              { return []byte{0x90, 0x00} }
func (echoHandler) Wink()                                                 {}
