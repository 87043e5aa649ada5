package dbsecret

import (
	"crypto/tls"
	"net"
	"testing"

	"github.com/rotary-secrets/rotary/internal/testpki"
)

// TestTLSWithCABundle proves the settings from ConfigFromEnv trust the CA
// bundle, check the host name, and without the bundle trust nothing extra.
func TestTLSWithCABundle(t *testing.T) {
	ca, err := testpki.NewCA("dbsecret test CA")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Issue("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	files, err := testpki.WriteFiles(t.TempDir(), ca, srv)
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
	withBundle, err := ConfigFromEnv(func(k string) string {
		if k == EnvCABundle {
			return files.CA
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		host string
		ok   bool
	}{
		{"bundle and right host", withBundle, "127.0.0.1", true},
		{"bundle and wrong host name", withBundle, "localhost", false},
		{"no bundle", DefaultConfig(), "127.0.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc, err := tt.cfg.TLS(&Secret{Engine: "postgres", Host: tt.host})
			if err != nil {
				t.Fatal(err)
			}
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			err = tls.Client(raw, tc).Handshake()
			if (err == nil) != tt.ok {
				t.Fatalf("handshake error = %v, want success %v", err, tt.ok)
			}
		})
	}
}
