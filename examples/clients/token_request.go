// A legacy Go client's token request: crypto/tls with a client certificate, plus client_id.
//   go run token_request.go   (from the repository root or from this folder; or set PKI)
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

func main() {
	pki := os.Getenv("PKI")
	if pki == "" {
		// The repository root's dev PKI, from the root or from examples/clients.
		pki = "dev-pki"
		if _, err := os.Stat(pki); err != nil {
			pki = "../../dev-pki"
		}
	}
	cert, err := tls.LoadX509KeyPair(pki+"/client.pem", pki+"/client-key.pem")
	check(err)
	caPEM, err := os.ReadFile(pki + "/ca.pem")
	check(err)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		check(fmt.Errorf("no CA certificate in %s/ca.pem", pki))
	}
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			RootCAs:      roots,
			MinVersion:   tls.VersionTLS12,
		}},
	}
	// The same form x/oauth2/clientcredentials posts, without a secret: the certificate authenticates.
	form := url.Values{
		"grant_type": {"client_credentials"},
		"client_id":  {envOr("CLIENT_ID", "11111111-2222-3333-4444-555555555555")},
		"scope":      {envOr("SCOPE", "api://demo/.default")},
	}
	resp, err := client.Post(envOr("GATEWAY_URL", "https://localhost:8443")+"/token",
		"application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	check(err)
	defer resp.Body.Close()
	var body map[string]any
	check(json.NewDecoder(resp.Body).Decode(&body))
	if resp.StatusCode != http.StatusOK {
		check(fmt.Errorf("%d %v: %v", resp.StatusCode, body["error"], body["error_description"]))
	}
	fmt.Printf("got a %v token, expires in %v s\n", body["token_type"], body["expires_in"])
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
