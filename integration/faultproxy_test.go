package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// The fault matrix's proxies (faults_test.go): one between the functions
// and the local Secrets Manager, one per case between a function and its
// database server.

// dbMode is what a dbProxy does with connections.
type dbMode int

const (
	dbPass   dbMode = iota // forward to the server
	dbRefuse               // reset at once: the server is unreachable
	dbStall                // accept and never answer: a step waiting on it times out
)

// dbProxy is a TCP proxy on 127.0.0.1 to one database server. TLS with
// verification works through it: the functions check the server's
// certificate for the name in the secret, not for the proxy.
type dbProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  dbMode
	conns map[net.Conn]struct{} // every open client connection
	hits  int                   // connections refused or stalled
}

// startDBProxy listens on a free loopback port and forwards to target
// until the test ends.
func startDBProxy(t *testing.T, target string) *dbProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("database proxy: %v", err)
	}
	p := &dbProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Port is the port secrets name to reach the server through the proxy.
func (p *dbProxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// set changes what the proxy does with new connections. Leaving dbPass
// cuts the connections open now (the server went away); leaving dbStall
// closes the stalled ones.
func (p *dbProxy) set(mode dbMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if mode != p.mode {
		for c := range p.conns {
			c.Close()
		}
	}
	p.mode = mode
}

// faults returns how many connections were refused or stalled.
func (p *dbProxy) faults() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits
}

func (p *dbProxy) close() {
	p.ln.Close()
	p.set(dbRefuse)
}

func (p *dbProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		if mode != dbPass {
			p.hits++
		}
		if mode == dbRefuse {
			p.mu.Unlock()
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // a reset, not an orderly close
			}
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		if mode == dbPass {
			go p.forward(c)
		}
		// dbStall: the connection waits until set closes it.
	}
}

func (p *dbProxy) forward(c net.Conn) {
	defer p.drop(c)
	up, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); _ = up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); _ = c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
}

func (p *dbProxy) drop(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// smFaultKind is how the Secrets Manager proxy answers a faulted call.
type smFaultKind int

const (
	smInternalError smFaultKind = iota + 1 // HTTP 500 InternalServiceError
	smThrottling                           // HTTP 400 ThrottlingException
	smStall                                // no answer until the fault is lifted
)

// smFault is the fault a call meets: nil for none. After says the call is
// forwarded first, so that it takes effect before the error is answered.
// Lifted is closed when a stalled call may give up.
type smFault struct {
	Kind   smFaultKind
	After  bool
	Lifted <-chan struct{}
}

// smProxy stands between the functions and the local Secrets Manager: it
// reads each call's operation (X-Amz-Target) and SecretId and asks fault
// what to do with it.
type smProxy struct {
	srv    *http.Server
	URL    string
	client *http.Client
	fault  func(op, secretID string) *smFault

	mu       sync.Mutex
	upstream string
}

// startSMProxy listens on a free loopback port; setUpstream must be called
// before the first call arrives.
func startSMProxy(fault func(op, secretID string) *smFault) (*smProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &smProxy{URL: "http://" + ln.Addr().String(), fault: fault,
		client: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 32}}}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }() // ErrServerClosed once closed
	return p, nil
}

func (p *smProxy) setUpstream(u string) {
	p.mu.Lock()
	p.upstream = u
	p.mu.Unlock()
}

func (p *smProxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		return p.srv.Close()
	}
	return nil
}

func (p *smProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "secretsmanager.")
	var in struct{ SecretId string }
	_ = json.Unmarshal(body, &in)
	f := p.fault(op, in.SecretId)
	if f == nil {
		p.forward(w, r, body)
		return
	}
	switch {
	case f.Kind == smStall:
		select {
		case <-f.Lifted:
		case <-r.Context().Done():
		}
		// Never forwarded: a call that arrived while the fault held must
		// not take effect after it was lifted.
		panic(http.ErrAbortHandler)
	case f.After:
		rec := &discardWriter{header: http.Header{}}
		p.forward(rec, r, body)
	}
	if f.Kind == smThrottling {
		smError(w, http.StatusBadRequest, "ThrottlingException", "Rate exceeded (injected by the fault matrix)")
		return
	}
	smError(w, http.StatusInternalServerError, "InternalServiceError", "An error occurred on the server side (injected by the fault matrix).")
}

func smError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.WriteHeader(status)
	out, _ := json.Marshal(map[string]string{"__type": typ, "message": msg})
	_, _ = w.Write(out) // the client hung up: nothing to tell it
}

// forward sends the call to the local Secrets Manager and copies its answer.
func (p *smProxy) forward(w http.ResponseWriter, r *http.Request, body []byte) {
	p.mu.Lock()
	upstream := p.upstream
	p.mu.Unlock()
	req, err := http.NewRequestWithContext(r.Context(), r.Method, upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for k, vs := range r.Header {
		if k == "Content-Length" {
			continue
		}
		req.Header[k] = vs
	}
	resp, err := p.client.Do(req)
	if err != nil {
		if errors.Is(r.Context().Err(), context.Canceled) {
			panic(http.ErrAbortHandler)
		}
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body) // the client hung up: nothing to tell it
}

// discardWriter swallows the answer of a call that was forwarded only for
// its effect.
type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
