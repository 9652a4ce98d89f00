package control

import (
	"net/http"

	"github.com/fidolab/fidolab/authenticator/emulator"
)

// Entry is one key of a server holding several (fidolab serve --keys N).
type Entry struct {
	// Name is the key's path segment, usbN.
	Name string
	Key  *emulator.Key
	// Endpoint is where hosts reach the key, e.g. unix:/run/fidolab/usb1.sock.
	Endpoint string
}

// fleetEndpoints lists what FleetHandler answers, for GET /.
var fleetEndpoints = []string{"GET /state (every key)", "GET /usbN/state", "GET /usbN/knobs",
	"PUT /usbN/knobs", "PATCH /usbN/knobs", "GET /usbN/touch/{on,off}", "GET /usbN/power/{on,off}",
	"POST /usbN/user {policy}", "POST /usbN/user/touch", "POST /usbN/power/{on,off}",
	"POST /usbN/faults", "DELETE /usbN/faults"}

// FleetHandler serves the control API of several keys. Key usbN has the whole one-key API under
// /usbN/ (/usbN/state, /usbN/knobs, /usbN/touch/on, …; python-fido2's controller paths
// /usbN/touch/{on,off} and /usbN/power/{on,off} select the key by N), and GET /state lists
// every key with its endpoint. The same Host, cross-site, JSON and token checks apply as for
// Handler.
func FleetHandler(keys []Entry) http.Handler { return NewFleetHandler(keys, Options{}) }

// NewFleetHandler is FleetHandler with options: the token, the listener's address and limits
// apply to every key's path as they do to Serve's one key.
func NewFleetHandler(keys []Entry, o Options) http.Handler {
	byName := make(map[string]http.Handler, len(keys))
	for _, e := range keys {
		byName[e.Name] = http.StripPrefix("/"+e.Name, keyMux(&server{k: e.Key}, false))
	}
	f := &fleetServer{keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", f.root)
	mux.HandleFunc("GET /state", f.state)
	mux.HandleFunc("/{usb}/", func(w http.ResponseWriter, r *http.Request) {
		h, ok := byName[r.PathValue("usb")]
		if !ok {
			fail(w, http.StatusNotFound, "no key %q (this server has usb1…usb%d)", r.PathValue("usb"), len(keys))
			return
		}
		h.ServeHTTP(w, r)
	})
	return o.guard(mux)
}

type fleetServer struct{ keys []Entry }

// keyState is one key in GET /state: its name and endpoint, then its state as the one-key
// /state gives it.
type keyState struct {
	Key      string `json:"key"`
	Endpoint string `json:"endpoint,omitempty"`
	emulator.Status
	Error string `json:"error,omitempty"`
}

func (f *fleetServer) state(w http.ResponseWriter, _ *http.Request) {
	out := make([]keyState, len(f.keys))
	for i, e := range f.keys {
		st, err := e.Key.Status()
		out[i] = keyState{Key: e.Name, Endpoint: e.Endpoint, Status: st}
		if err != nil {
			out[i].Error = "reading state: " + err.Error()
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}

func (f *fleetServer) root(w http.ResponseWriter, _ *http.Request) {
	type brief struct {
		Key      string `json:"key"`
		Endpoint string `json:"endpoint,omitempty"`
		Persona  string `json:"persona"`
		Plugged  bool   `json:"plugged"`
	}
	keys := make([]brief, len(f.keys))
	for i, e := range f.keys {
		keys[i] = brief{Key: e.Name, Endpoint: e.Endpoint, Persona: e.Key.Persona.Name, Plugged: e.Key.Plugged()}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"service": "fidolab control API", "keys": keys, "endpoints": fleetEndpoints,
	})
}
