// Package control is the HTTP control API of a served key, on loopback only: its state and its
// knobs (emulator.Knobs: power, the simulated user, CTAPHID timing, faults), read and written as
// a whole at /knobs, with shorthand endpoints for the common ones. It also answers the endpoints
// python-fido2's device tests use for a key without a button: /usbN/touch/{on,off} and
// /usbN/power/{on,off}. It refuses requests whose Host is not this machine (DNS rebinding),
// cross-site requests from browsers (for every method), JSON bodies not declared as JSON and,
// when a token is configured, requests without it; Serve adds timeouts and a connection limit.
package control

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/authenticator/user"
)

// endpoints lists what the API answers, for GET /.
var endpoints = []string{"GET /state", "GET /knobs", "PUT /knobs (every knob)", "PATCH /knobs (some knobs)",
	"GET /usbN/touch/{on,off}", "GET /usbN/power/{on,off}", "POST /user {policy}", "POST /user/touch",
	"POST /power/{on,off}", "POST /faults", "DELETE /faults"}

// Handler serves the control API of one key with the default protections and no token: foreign
// Host headers and cross-site requests are refused, JSON bodies must say they are JSON. A server
// holding one key answers for any /usbN/. Serve adds the listener's own address, a token and
// connection limits.
func Handler(k *emulator.Key) http.Handler { return NewHandler(k, Options{}) }

// NewHandler is Handler with options.
func NewHandler(k *emulator.Key, o Options) http.Handler {
	return o.guard(keyMux(&server{k: k}, true))
}

// keyMux routes one key's API. With anyUSB, /usbN/touch and /usbN/power answer for any N (one
// key per server); without, the key's API is mounted under its own /usbN/ (FleetHandler) and
// answers /touch and /power itself.
func keyMux(s *server, anyUSB bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.root)
	mux.HandleFunc("GET /state", s.state)
	mux.HandleFunc("GET /knobs", s.knobs)
	mux.HandleFunc("PUT /knobs", s.putKnobs)
	mux.HandleFunc("PATCH /knobs", s.patchKnobs)
	if anyUSB {
		mux.HandleFunc("GET /{usb}/touch/{onoff}", s.usbTouch)
		mux.HandleFunc("GET /{usb}/power/{onoff}", s.usbPower)
	} else {
		mux.HandleFunc("GET /touch/{onoff}", s.touchSwitch)
		mux.HandleFunc("GET /power/{onoff}", s.power)
	}
	mux.HandleFunc("POST /user", s.setUser)
	mux.HandleFunc("POST /user/touch", s.touch)
	mux.HandleFunc("POST /power/{onoff}", s.power)
	mux.HandleFunc("POST /faults", s.setFaults)
	mux.HandleFunc("DELETE /faults", s.clearFaults)
	return mux
}

type server struct{ k *emulator.Key }

var usbPath = regexp.MustCompile(`^usb[0-9]+$`)

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, format string, a ...any) {
	writeJSON(w, code, map[string]string{"error": fmt.Sprintf(format, a...)})
}

func (s *server) root(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"service": "fidolab control API", "persona": s.k.Persona.Name, "plugged": s.k.Plugged(),
		"endpoints": endpoints,
	})
}

func (s *server) state(w http.ResponseWriter, _ *http.Request) {
	st, err := s.k.Status()
	if err != nil {
		fail(w, http.StatusInternalServerError, "reading state: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func onOff(w http.ResponseWriter, r *http.Request) (bool, bool) {
	switch r.PathValue("onoff") {
	case "on":
		return true, true
	case "off":
		return false, true
	}
	fail(w, http.StatusNotFound, "want on or off")
	return false, false
}

func (s *server) usbTouch(w http.ResponseWriter, r *http.Request) {
	if !usbPath.MatchString(r.PathValue("usb")) {
		fail(w, http.StatusNotFound, "no such path")
		return
	}
	s.touchSwitch(w, r)
}

// touchSwitch puts a finger on the key (on) or lifts it (off), in manual mode.
func (s *server) touchSwitch(w http.ResponseWriter, r *http.Request) {
	on, ok := onOff(w, r)
	if !ok {
		return
	}
	if _, err := s.k.UpdateKnobs(func(n *emulator.Knobs) error {
		n.User, n.FingerHeld = "manual", on
		return nil
	}); err != nil {
		fail(w, http.StatusInternalServerError, "touch %v: %v", on, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"touch": on})
}

func (s *server) usbPower(w http.ResponseWriter, r *http.Request) {
	if !usbPath.MatchString(r.PathValue("usb")) {
		fail(w, http.StatusNotFound, "no such path")
		return
	}
	s.power(w, r)
}

func (s *server) power(w http.ResponseWriter, r *http.Request) {
	on, ok := onOff(w, r)
	if !ok {
		return
	}
	if _, err := s.k.UpdateKnobs(func(n *emulator.Knobs) error {
		n.Plugged = on
		return nil
	}); err != nil {
		fail(w, http.StatusInternalServerError, "power %v: %v", on, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"plugged": on})
}

// userRequest sets the simulated user: {"policy": "no"} in the CLI's --user syntax.
type userRequest struct {
	Policy string `json:"policy"`
}

// needJSON answers 415 unless the body is declared application/json.
func needJSON(w http.ResponseWriter, r *http.Request) bool {
	if !isJSON(r) {
		fail(w, http.StatusUnsupportedMediaType, "body must be Content-Type: application/json, not %q", r.Header.Get("Content-Type"))
		return false
	}
	return true
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if !needJSON(w, r) {
		return false
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(w, http.StatusBadRequest, "body: %v", err)
		return false
	}
	return true
}

func (s *server) setUser(w http.ResponseWriter, r *http.Request) {
	var req userRequest
	if !readJSON(w, r, &req) {
		return
	}
	p, err := user.ParsePolicy(req.Policy)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	if _, manual := p.(*user.Switch); manual { // wait for touches through this API
		s.k.User.Hold(false)
	} else {
		s.k.User.Set(p)
	}
	writeJSON(w, http.StatusOK, map[string]string{"user": s.k.User.String()})
}

func (s *server) touch(w http.ResponseWriter, _ *http.Request) {
	s.k.User.Touch()
	writeJSON(w, http.StatusOK, map[string]bool{"touched": true})
}

// faultRequest adds faults: failNext lists statuses by name (CTAP2_ERR_PIN_INVALID) or number.
type faultRequest struct {
	FailNext []string `json:"failNext"`
	DelayMs  *int     `json:"delayMs"`
	Silent   *int     `json:"silent"`
	// BadSignatureWithHMACSecret turns the hmac-secret signature fault on or off.
	BadSignatureWithHMACSecret *bool `json:"badSignatureWithHmacSecret"`
}

// setFaults appends failNext to the statuses still queued, and sets the processing delay and
// the silent count when given.
func (s *server) setFaults(w http.ResponseWriter, r *http.Request) {
	var req faultRequest
	if !readJSON(w, r, &req) {
		return
	}
	_, err := s.k.UpdateKnobs(func(n *emulator.Knobs) error {
		n.FailNext = append(n.FailNext, req.FailNext...)
		if req.DelayMs != nil {
			n.ProcessingDelayMs = *req.DelayMs
		}
		if req.Silent != nil {
			n.Silent = *req.Silent
		}
		if req.BadSignatureWithHMACSecret != nil {
			n.BadSignatureWithHMACSecret = *req.BadSignatureWithHMACSecret
		}
		return nil
	})
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, s.k.FaultState())
}

func (s *server) clearFaults(w http.ResponseWriter, _ *http.Request) {
	s.k.ResetFaults()
	writeJSON(w, http.StatusOK, s.k.FaultState())
}

func (s *server) knobs(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.k.Knobs())
}

// knobNames are the JSON names of every knob: PUT /knobs must give them all.
var knobNames = func() []string {
	var names []string
	t := reflect.TypeFor[emulator.Knobs]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
	}
	return names
}()

// putKnobs sets every knob; a missing one is an error rather than a zero (which would, say,
// unplug the key).
func (s *server) putKnobs(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		fail(w, http.StatusBadRequest, "body: %v", err)
		return
	}
	var missing []string
	for _, name := range knobNames {
		if _, ok := fields[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		fail(w, http.StatusBadRequest, "PUT /knobs sets every knob; missing %s (PATCH sets some)", strings.Join(missing, ", "))
		return
	}
	s.applyKnobs(w, func(n *emulator.Knobs) error {
		*n = emulator.Knobs{}
		return strictJSON(body, n)
	})
}

// patchKnobs sets the knobs the body names and leaves the others.
func (s *server) patchKnobs(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	// Decoded onto the current knobs inside the update, so that only the named ones change.
	s.applyKnobs(w, func(n *emulator.Knobs) error { return strictJSON(body, n) })
}

func (s *server) applyKnobs(w http.ResponseWriter, change func(*emulator.Knobs) error) {
	n, err := s.k.UpdateKnobs(change)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

// maxBody bounds a request body.
const maxBody = 64 << 10

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if !needJSON(w, r) {
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(b) > maxBody {
		fail(w, http.StatusBadRequest, "body: unreadable or over %d bytes", maxBody)
		return nil, false
	}
	return b, true
}

// strictJSON decodes one JSON value, refusing unknown fields and trailing data.
func strictJSON(body []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("body: data after the JSON object")
	}
	return nil
}
