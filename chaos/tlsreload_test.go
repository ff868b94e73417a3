package chaos_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
	"github.com/ferry-io/ferry/internal/testutil/proc"
)

// writeCert writes a self-signed certificate for 127.0.0.1 named name to
// certFile and keyFile and returns its DER bytes.
func writeCert(t *testing.T, certFile, keyFile, name string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return der
}

// TestTLSReloadOnSIGHUP: `ferry serve` with tls.cert_file reloads the
// certificate and key on SIGHUP, and a SIGHUP with a broken file keeps the
// current certificate and the process (docs/security.md section 8).
func TestTLSReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeCert(t, certFile, keyFile, "first")
	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := proc.Start(proc.Config{
		Path: ferryBin.Path(t),
		Args: []string{"serve"},
		Dir:  dir,
		Env: append(os.Environ(), "FERRY_ADDR="+addr, "FERRY_TLS_CERT_FILE="+certFile, "FERRY_TLS_KEY_FILE="+keyFile,
			"FERRY_TOKEN_HMAC_SECRET="+ferrytest.DefaultSecret, "FERRY_API_KEY="+ferrytest.DefaultAPIKey),
		LogFile: filepath.Join(dir, "ferry.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	served := func() ([]byte, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Raw, nil
	}
	if err := p.WaitReady(func() error { _, err := served(); return err }, 20*time.Second); err != nil {
		t.Fatalf("ferry serve with TLS: %v", err)
	}
	serving := func(want []byte) bool {
		got, err := served()
		return err == nil && bytes.Equal(got, want)
	}
	if !serving(first) {
		t.Fatal("not serving the configured certificate")
	}

	second := writeCert(t, certFile, keyFile, "second")
	if serving(second) {
		t.Fatal("the new certificate was served before SIGHUP")
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the certificate reloaded after SIGHUP", func() bool { return serving(second) })

	// A broken file: the reload fails, the current certificate stays.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The failed reload is logged; give the signal time to be handled,
	// then the old certificate must still be served.
	waitUntil(t, "the failed reload logged", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "ferry.log"))
		return bytes.Contains(b, []byte(`"msg":"reload TLS certificate"`))
	})
	if !p.Running() || !serving(second) {
		t.Fatal("after a SIGHUP with a broken certificate file the node stopped serving the previous one")
	}
}
