package cli

import (
	"os"
	"os/user"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/erpdemo"
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
		State: a.state,
		OnResponse: func(conn string, status int) {
			if m := a.metrics.Load(); m != nil {
				m.ObserveERPResponse(conn, status)
			}
		},
	})
}

// startDemoERP starts the demo ERP on a loopback port and points the
// built-in erp connection at it (JOBRUNNER_ERP_URL, JOBRUNNER_ERP_TOKEN).
func (a *app) startDemoERP() (stop func(), err error) {
	srv, err := erpdemo.Start("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a.env = map[string]string{"JOBRUNNER_ERP_URL": srv.URL(), "JOBRUNNER_ERP_TOKEN": srv.Token()}
	a.log.WithField("erp_url", srv.URL()).Warn("DEMO ERP: the erp connection points at the built-in sample ERP, not a real one")
	return func() { _ = srv.Close() }, nil
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
