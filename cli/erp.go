package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"time"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/erpdemo"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/platformsim"
	"github.com/jobrunner/jobrunner/processors/httperp"
)

// registerHTTP registers the reference ERP processors (connection type
// http), reading the status mapping from the loaded definitions and job
// state from the store.
func registerHTTP(a *app) {
	httperp.Register(a.registry, httperp.Options{
		Statuses: func() *definitions.OrderStatusMap {
			if set := a.defs.Load(); set != nil {
				return set.OrderStatuses
			}
			return nil
		},
		Sync: a.state,
		OnResponse: func(conn string, status int) {
			if m := a.metrics.Load(); m != nil {
				m.ObserveERPResponse(conn, status)
			}
		},
		OnThrottle: a.throttle,
	})
}

// throttle pauses a connection that answered 429/503 with Retry-After for
// that long (never shortening a longer pause), so that no instance sends
// to it meanwhile.
func (a *app) throttle(conn string, status int, after time.Duration) {
	store := a.state.store
	if store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	until := time.Now().Add(after)
	err := store.PauseAtLeast(ctx, jobs.Pause{Kind: jobs.PauseConnection, Name: conn, Until: &until, By: "circuit-breaker",
		Reason: fmt.Sprintf("the connection answered %d with Retry-After %s", status, after.Round(time.Second))})
	if err != nil {
		a.log.WithError(err).WithField("connection", conn).Warn("circuit breaker: could not pause the connection")
		return
	}
	a.log.WithField("connection", conn).WithField("until", until.UTC().Format(time.RFC3339)).
		Warnf("circuit breaker: connection %s answered %d with Retry-After %s: paused until then on every instance", conn, status, after.Round(time.Second))
}

// startDemoERP starts the demo ERP and a VTEX simulator (the demo shop)
// on loopback ports and points the built-in erp and shop connections at
// them (JOBRUNNER_ERP_URL, JOBRUNNER_ERP_TOKEN, JOBRUNNER_SHOP_URL,
// JOBRUNNER_SHOP_APP_KEY, JOBRUNNER_SHOP_APP_TOKEN).
func (a *app) startDemoERP() (stop func(), err error) {
	srv, err := erpdemo.Start("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("starting the demo shop: %w", err)
	}
	key, tok := demoSecret(), demoSecret()
	shop := &http.Server{Handler: platformsim.NewVTEX(key, tok), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = shop.Serve(ln) }()
	shopURL := "http://" + ln.Addr().String()
	a.env = map[string]string{"JOBRUNNER_ERP_URL": srv.URL(), "JOBRUNNER_ERP_TOKEN": srv.Token(),
		"JOBRUNNER_SHOP_URL": shopURL, "JOBRUNNER_SHOP_APP_KEY": key, "JOBRUNNER_SHOP_APP_TOKEN": tok,
		"JOBRUNNER_HOOK_SECRET": DemoHookSecret, "JOBRUNNER_VTEX_HOOK_TOKEN": DemoHookSecret}
	a.log.WithField("erp_url", srv.URL()).WithField("shop_url", shopURL).
		Warn("DEMO ERP and shop: the erp and shop connections point at built-in samples (a sample ERP, a VTEX simulator), not real systems")
	return func() { _ = srv.Close(); _ = shop.Close() }, nil
}

// DemoHookSecret is the secret of the built-in hooks under `serve --demo`
// (documented in the README, so that a curl line can sign a payload).
const DemoHookSecret = "demo-hook-secret"

// demoSecret returns 16 random hex digits.
func demoSecret() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// getenv resolves connection settings and secrets: the demo ERP's values
// when it runs, else the process environment.
func (a *app) getenv(k string) string {
	if v, ok := a.env[k]; ok {
		return v
	}
	return os.Getenv(k)
}

// cliUser names who runs the CLI, for the run's triggered_by.
func cliUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}
