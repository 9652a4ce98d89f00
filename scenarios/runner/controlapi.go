package runner

import (
	"context"
	"net"
	"net/http"
	"strings"

	"github.com/fidolab/fidolab/authenticator/control"
)

// newControlPower reaches a served key's control API at addr (HOST:PORT, or unix:PATH for
// fidolab serve --control unix:PATH) with the bearer token in tokenFile when one is given
// (fidolab serve --control-token). A token file that cannot be read is an error before any case.
func newControlPower(addr, tokenFile string) (*controlPower, error) {
	p := &controlPower{addr: addr, http: http.DefaultClient}
	if tokenFile != "" {
		tok, err := control.ReadTokenFile(tokenFile)
		if err != nil {
			return nil, err
		}
		p.token = string(tok)
	}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		p.addr = "localhost" // the Host the API accepts on its unix socket
		p.http = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
	}
	return p, nil
}
