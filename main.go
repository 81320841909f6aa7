// Command fastgate is an edge API gateway: path-prefix routing to weighted
// upstream instances over pooled fasthttp connections, with retries,
// Prometheus metrics and an access log. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof" // served only on -pprof, never on the request path
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fastgate/fastgate/auth"
	"github.com/fastgate/fastgate/config"
	"github.com/fastgate/fastgate/proxy"
	"github.com/fastgate/fastgate/stub"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// accessFlushTimeout bounds the access log's last flush at exit.
const accessFlushTimeout = 2 * time.Second

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "token" {
		return runToken(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("fastgate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "./config.toml", "config file")
	check := fs.Bool("check", false, "validate the config and exit: 0 when valid, else 1 with every problem listed")
	demo := fs.Bool("demo", false, "also start a stub upstream for every instance in the config")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060); off by default")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", *path, err)
		return 1
	}
	if *check {
		// Key material is read when the gateway starts; -check reads it too
		// (all but a jwks_url fetch), so that it passes no config the
		// gateway would refuse.
		if err := auth.CheckKeys(cfg.Auth.JWT); err != nil {
			fmt.Fprintf(stderr, "%s: auth.jwt: %v\n", *path, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok (%d services, %d routes)\n", *path, len(cfg.Services), len(cfg.Routes))
		return 0
	}
	// From here on SIGINT and SIGTERM mean a graceful shutdown, even one
	// that arrives while the gateway is still starting.
	sigs, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-sigs.Done()
		stop() // the next signal has its default action: it ends the process at once
	}()
	log := newLogger(cfg, stderr)
	// go-redis logs every failed dial; the rate limiter already logs store
	// state changes once each, so its lines go to debug.
	redis.SetLogger(redisLogger{log})
	access := proxy.NewAsyncWriter(stdout, 0, 0)
	defer func() {
		// Bounded: a stdout reader that stopped reading must not keep the
		// process from exiting after its drain.
		if err := access.CloseTimeout(accessFlushTimeout); err != nil {
			log.Warn().Err(err).Msg("access log: last lines not written")
		}
	}()
	metrics.ExposeMetadata(true)

	if *demo {
		stubs, err := startStubs(cfg)
		if err != nil {
			log.Error().Err(err).Msg("demo upstreams")
			return 1
		}
		defer closeAll(stubs)
		log.Info().Int("upstreams", len(stubs)).Msg("demo upstreams started")
	}
	if *pprofAddr != "" {
		go func() { log.Err(http.ListenAndServe(*pprofAddr, nil)).Msg("pprof") }()
	}
	return serve(cfg, log, access, sigs, stop)
}

// serve runs the gateway until a signal (sigs done), then drains it; stop
// gives signals their default action back, so that a second one ends the
// process at once.
func serve(cfg *config.Config, log zerolog.Logger, access *proxy.AsyncWriter, sigs context.Context, stop func()) int {
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		log.Error().Err(err).Msg("listen")
		return 1
	}
	g, err := proxy.New(cfg, proxy.Options{Log: log, Access: access})
	if err != nil {
		ln.Close()
		log.Error().Err(err).Msg("gateway")
		return 1
	}
	g.Metrics().NewGauge("fastgate_access_log_dropped_lines", func() float64 { return float64(access.Dropped()) })
	served := make(chan error, 1)
	go func() { served <- g.Serve(ln) }()
	log.Info().Str("listen", ln.Addr().String()).Int("services", len(cfg.Services)).Int("routes", len(cfg.Routes)).Msg("fastgate serving")

	code := 0
	select {
	case err := <-served:
		// Accepting failed for good: drain what is in flight all the same.
		log.Error().Err(err).Msg("serve")
		code = 1
		served <- err
	case <-sigs.Done():
		stop()
	}
	log.Info().Dur("timeout", cfg.Server.ShutdownTimeout.Duration).Msg("shutting down: draining in-flight requests (a second signal stops at once)")
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout.Duration)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("shutdown: in-flight requests cut off at shutdown_timeout")
	}
	<-served
	if n := access.Dropped(); n > 0 {
		log.Warn().Int64("access_log_dropped", n).Msg("stopped; access-log lines were dropped because stdout could not keep up")
	} else {
		log.Info().Msg("stopped")
	}
	return code
}

// runToken is `fastgate token -sub ID [-ttl 1h] [-config PATH]`: it mints
// a JWT for the demo with the config's [auth.jwt] signing_key_file (or its
// HS* secret) and prints it.
func runToken(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fastgate token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "./config.toml", "config file with an [auth.jwt] table")
	sub := fs.String("sub", "", "subject (the user id the upstream gets as X-User-ID)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *sub == "" {
		fmt.Fprintln(stderr, "fastgate token: -sub is required")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", *path, err)
		return 1
	}
	if cfg.Auth.JWT == nil {
		fmt.Fprintf(stderr, "%s: no [auth.jwt] table\n", *path)
		return 1
	}
	tok, err := auth.Mint(cfg.Auth.JWT, *sub, *ttl, time.Now())
	if err != nil {
		fmt.Fprintln(stderr, "fastgate token:", err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

func newLogger(cfg *config.Config, w io.Writer) zerolog.Logger {
	level, _ := zerolog.ParseLevel(cfg.Log.Level)
	if cfg.Log.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

type redisLogger struct{ l zerolog.Logger }

func (r redisLogger) Printf(_ context.Context, format string, v ...any) {
	r.l.Debug().Str("component", "redis").Msgf(format, v...)
}

// startStubs starts a stub upstream on every instance address of cfg.
func startStubs(cfg *config.Config) ([]*stub.Server, error) {
	var out []*stub.Server
	for _, svc := range cfg.Services {
		for _, in := range svc.Instances {
			s, err := stub.Start(stub.Options{ID: in.ID, Addr: in.Addr, Handler: stub.Demo(in.ID)})
			if err != nil {
				closeAll(out)
				return nil, fmt.Errorf("instance %s of %s on %s: %w", in.ID, svc.Name, in.Addr, err)
			}
			out = append(out, s)
		}
	}
	return out, nil
}

func closeAll(stubs []*stub.Server) {
	for _, s := range stubs {
		if err := s.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			fmt.Fprintln(os.Stderr, "stub close:", err)
		}
	}
}
