// Package control is the HTTP control API of a served key, on loopback only: its state, the
// simulated user's policy, power (unplug/replug) and faults. It also answers the endpoints
// python-fido2's device tests use for a key without a button: /usbN/touch/{on,off} and
// /usbN/power/{on,off}.
package control

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"time"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
)

// Handler serves the control API of one key. A server holding one key answers for any /usbN/.
func Handler(k *emulator.Key) http.Handler {
	s := &server{k: k}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.root)
	mux.HandleFunc("GET /state", s.state)
	mux.HandleFunc("GET /{usb}/touch/{onoff}", s.usbTouch)
	mux.HandleFunc("GET /{usb}/power/{onoff}", s.usbPower)
	mux.HandleFunc("POST /user", s.setUser)
	mux.HandleFunc("POST /user/touch", s.touch)
	mux.HandleFunc("POST /power/{onoff}", s.power)
	mux.HandleFunc("POST /faults", s.setFaults)
	mux.HandleFunc("DELETE /faults", s.clearFaults)
	return mux
}

// Listen checks that addr is a loopback address and listens on it: the control API can take over
// the simulated user, so it never listens where another machine could reach it.
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("control address %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("control address %q: only loopback addresses (127.0.0.1, ::1, localhost) are allowed", addr)
	}
	return net.Listen("tcp", addr)
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
		"endpoints": []string{"GET /state", "GET /usbN/touch/{on,off}", "GET /usbN/power/{on,off}",
			"POST /user {policy}", "POST /user/touch", "POST /power/{on,off}", "POST /faults", "DELETE /faults"},
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
	on, ok := onOff(w, r)
	if !ok {
		return
	}
	s.k.User.Hold(on)
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
	if err := s.k.SetPlugged(on); err != nil {
		fail(w, http.StatusInternalServerError, "power %v: %v", on, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"plugged": on})
}

// userRequest sets the simulated user: {"policy": "no"} in the CLI's --user syntax.
type userRequest struct {
	Policy string `json:"policy"`
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
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
}

func (s *server) setFaults(w http.ResponseWriter, r *http.Request) {
	var req faultRequest
	if !readJSON(w, r, &req) {
		return
	}
	var sts []ctap.Status
	for _, name := range req.FailNext {
		st, err := ctap.ParseStatus(name)
		if err != nil {
			fail(w, http.StatusBadRequest, "%v", err)
			return
		}
		sts = append(sts, st)
	}
	if req.DelayMs != nil && (*req.DelayMs < 0 || *req.DelayMs > 600_000) {
		fail(w, http.StatusBadRequest, "delayMs %d outside 0..600000", *req.DelayMs)
		return
	}
	if req.Silent != nil && *req.Silent < 0 {
		fail(w, http.StatusBadRequest, "silent must not be negative")
		return
	}
	s.k.Faults.FailNext(sts...)
	if req.DelayMs != nil {
		s.k.Faults.SetDelay(time.Duration(*req.DelayMs) * time.Millisecond)
	}
	if req.Silent != nil {
		s.k.Faults.Silence(*req.Silent)
	}
	writeJSON(w, http.StatusOK, s.k.Faults.State())
}

func (s *server) clearFaults(w http.ResponseWriter, _ *http.Request) {
	s.k.Faults.Clear()
	writeJSON(w, http.StatusOK, s.k.Faults.State())
}
