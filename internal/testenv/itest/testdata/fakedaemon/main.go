// Command fakedaemon is a stand-in daemon for the itest harness's own tests:
// it serves /readyz on --listen, exits with --exit-code at once when that is
// non-zero, and exits 0 on SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve /readyz on")
	exitCode := flag.Int("exit-code", 0, "exit at once with this status when non-zero")
	flag.Parse()
	fmt.Println("fakedaemon starting, FAKEDAEMON_GREETING =", os.Getenv("FAKEDAEMON_GREETING"))
	if *exitCode != 0 {
		fmt.Fprintln(os.Stderr, "fakedaemon: exiting as asked")
		os.Exit(*exitCode)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: *listen, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})}
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "fakedaemon:", err)
		os.Exit(1)
	}
	fmt.Println("fakedaemon stopped")
}
