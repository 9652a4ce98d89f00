package control

import (
	"crypto/sha256"
	"crypto/subtle"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Options say who may use the API beyond the default (any local non-browser client).
type Options struct {
	// Token, when set, must come on every request as "Authorization: Bearer TOKEN"; anything else
	// is 401. Compared in constant time.
	Token []byte
	// Addr is the address the API listens on. For a TCP listener a request's Host must then be
	// that loopback address and port, or localhost with that port; without Addr (and on a unix
	// socket) any loopback Host is accepted.
	Addr net.Addr
	// Limits bound connections and their timing (Serve); zero fields take DefaultLimits.
	Limits Limits
}

// guard refuses, in this order, what must not reach the API:
//
//   - a Host that is not this machine (DNS rebinding: a page's own host name made to resolve to
//     127.0.0.1) or not the port the API listens on: 403;
//   - a request a browser made for another site or origin (Sec-Fetch-Site other than same-origin
//     or none, or an Origin that is not the Host): 403, for every method — GET /usbN/power/off
//     changes state as much as a POST does, so the safe-method exemption of
//     http.CrossOriginProtection does not apply here;
//   - without the token, when one is configured: 401.
//
// python-fido2's controller, curl and the scenario runner send no Sec-Fetch-Site and no Origin,
// so the GET /usbN/... paths keep working for them.
func (o Options) guard(next http.Handler) http.Handler {
	var want [32]byte
	if o.Token != nil {
		want = sha256.Sum256(o.Token)
	}
	port := ""
	if a, ok := o.Addr.(*net.TCPAddr); ok {
		port = strconv.Itoa(a.Port)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r.Host, port) {
			fail(w, http.StatusForbidden, "Host %q is not this API's loopback address and port", r.Host)
			return
		}
		if why := crossSite(r); why != "" {
			fail(w, http.StatusForbidden, "cross-site request refused: %s", why)
			return
		}
		if o.Token != nil {
			got, ok := bearer(r)
			// Hashing first makes the comparison constant-time whatever the lengths.
			gh := sha256.Sum256(got)
			if !ok || subtle.ConstantTimeCompare(gh[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="fidolab control API"`)
				fail(w, http.StatusUnauthorized, "this control API needs its token: Authorization: Bearer …")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// hostAllowed reports whether a Host header names this machine, and the API's port when port is
// known: localhost or a loopback IP literal.
func hostAllowed(hostport, port string) bool {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		host, p = hostport, ""
	}
	if port != "" && p != port {
		return false
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// crossSite says why r came from a browser on behalf of another site or origin, or "" when it
// did not: the Fetch metadata a browser sends, else its Origin compared with the Host.
func crossSite(r *http.Request) string {
	switch s := r.Header.Get("Sec-Fetch-Site"); s {
	case "same-origin", "none":
		return ""
	case "":
	default:
		return "Sec-Fetch-Site: " + s
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return "" // not a browser, or a browser's own navigation
	}
	u, err := url.Parse(origin)
	if err != nil || origin == "null" || !strings.EqualFold(u.Host, r.Host) {
		return "Origin " + origin + " is not " + r.Host
	}
	return ""
}

// bearer extracts the token of "Authorization: Bearer TOKEN".
func bearer(r *http.Request) ([]byte, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, false
	}
	tok = strings.TrimSpace(tok)
	return []byte(tok), tok != ""
}

// isJSON reports whether a request says its body is JSON: a cross-origin text/plain POST (which
// a browser sends without asking) is not.
func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}
