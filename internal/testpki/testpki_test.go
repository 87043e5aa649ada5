package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
)

// TestHandshake proves a client trusting only the CA accepts the server
// certificate for its names and refuses it for any other name.
func TestHandshake(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Issue("127.0.0.1", "db.test")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := srv.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	tests := []struct {
		name, serverName string
		roots            *x509.CertPool
		ok               bool
	}{
		{"ip SAN", "127.0.0.1", pool, true},
		{"dns SAN", "db.test", pool, true},
		{"wrong host name", "other.test", pool, false},
		{"untrusted CA", "db.test", x509.NewCertPool(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			c := tls.Client(raw, &tls.Config{RootCAs: tt.roots, ServerName: tt.serverName})
			err = c.Handshake()
			if (err == nil) != tt.ok {
				t.Fatalf("Handshake() error = %v, want success %v", err, tt.ok)
			}
		})
	}
}

func TestWriteFiles(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Issue("localhost")
	if err != nil {
		t.Fatal(err)
	}
	f, err := WriteFiles(t.TempDir(), ca, srv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(f.Cert, f.Key); err != nil {
		t.Fatalf("written key pair does not load: %v", err)
	}
}
