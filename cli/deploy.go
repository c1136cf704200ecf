package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobrunner/jobrunner/erpdemo"
)

// healthcheckCommand is `jobrunner healthcheck`: the container image's
// HEALTHCHECK (a scratch image has no curl).
func (a *app) healthcheckCommand() *cobra.Command {
	var url string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "GET a health URL (default the local /readyz); exit 0 on 2xx, 1 otherwise",
		Args:  wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return usagef("--url %q: %v", url, err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return failedError{fmt.Sprintf("%s: %v", url, err)}
			}
			_ = resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				return failedError{fmt.Sprintf("%s answered %s", url, resp.Status)}
			}
			fmt.Fprintf(a.stdout, "%s: %s\n", url, resp.Status)
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "http://127.0.0.1:8080/readyz", "the URL to check")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}

// demoERPCommand is `jobrunner demo-erp`: the demo ERP on its own, for the
// compose file and trials (serve --demo starts one in-process instead).
func (a *app) demoERPCommand() *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "demo-erp",
		Short: "Serve the demo ERP (reference contract) on --listen; its token is JOBRUNNER_ERP_TOKEN",
		Args:  wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			token := os.Getenv("JOBRUNNER_ERP_TOKEN")
			if token == "" {
				return usagef("JOBRUNNER_ERP_TOKEN is not set: the demo ERP requires that bearer token")
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", listen, err)
			}
			srv := &http.Server{Handler: erpdemo.New(token).Handler(), ReadHeaderTimeout: 5 * time.Second}
			a.log.WithField("addr", "http://"+ln.Addr().String()).Warn("DEMO ERP listening (sample data, not a real ERP)")
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			select {
			case <-cmd.Context().Done():
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				return srv.Shutdown(sctx)
			case err := <-errc:
				if errors.Is(err, http.ErrServerClosed) {
					return nil
				}
				return err
			}
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9090", "listen address")
	return cmd
}
