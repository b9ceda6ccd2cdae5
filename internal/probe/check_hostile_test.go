package probe

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
)

// rawServer answers every connection with the bytes of answer, whatever was asked.
func rawServer(t *testing.T, answer string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = bufio.NewReader(c).ReadString('\n')
				_, _ = c.Write([]byte(answer))
			}()
		}
	}()
	return "http://" + l.Addr().String()
}

// A server's words never reach a message through a transport error: a malformed status
// line, a TLS certificate's names.
func TestCheckTransportErrorsDoNotEchoTheServer(t *testing.T) {
	const planted = "PLANTEDsecretFromTheServer"
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(tlsSrv.Close)
	tests := []struct {
		name, baseURL, want string
	}{
		{"malformed status line", rawServer(t, "HTTP/1.1 2"+planted+" OK\r\n\r\n"), "not valid HTTP"},
		{"not HTTP at all", rawServer(t, planted+"\r\n\r\n"), "not valid HTTP"},
		{"closed before answering", rawServer(t, ""), "closed before an answer"},
		{"untrusted certificate", tlsSrv.URL, "TLS certificate is not trusted"},
		{"TLS to a plain HTTP server", strings.Replace(rawServer(t, "HTTP/1.1 200 OK\r\n\r\n"+planted), "http://", "https://", 1), "does not speak TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := Check(context.Background(), NewHTTPClient(), Target{API: jetonv1alpha1.APIEntreprise, BaseURL: tt.baseURL, Token: "tok", Timeout: 5 * time.Second}, time.Now)
			if out.Reason != jetonv1alpha1.ReasonUnreachable {
				t.Fatalf("reason = %q (%q), want Unreachable", out.Reason, out.Message)
			}
			if strings.Contains(out.Message, planted) || strings.Contains(out.Message, "example.com") {
				t.Errorf("message repeats what the server sent: %q", out.Message)
			}
			if !strings.Contains(out.Message, tt.want) {
				t.Errorf("message %q, want it to say %q", out.Message, tt.want)
			}
		})
	}
}

// The executor asks the host policy before each request: a refused job sends nothing.
func TestExecutorRefusesHostsItIsNotAllowed(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1) }))
	t.Cleanup(srv.Close)
	e, done := startExecutor(t, ExecutorOptions{Allow: func(jetonv1alpha1.API, string) error {
		return errors.New("host not allowed")
	}})
	e.Submit(Job{Key: keyA, Fingerprint: "fp", Target: Target{API: jetonv1alpha1.APIEntreprise, BaseURL: srv.URL, Token: "tok", Timeout: time.Second}})
	waitKey(t, done, keyA)
	f, ok := e.Result(keyA)
	if !ok || f.Reason != jetonv1alpha1.ReasonAPIHostNotAllowed {
		t.Fatalf("result = %+v, want APIHostNotAllowed", f)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d request(s) reached the refused host", n)
	}
}
