package platformsim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// SalesforceTokenPath is where the simulator's token endpoint listens.
const SalesforceTokenPath = "/dwsso/oauth2/access_token"

// Salesforce simulates Salesforce B2C Commerce: the account manager token
// endpoint (client credentials, HTTP basic) and OCAPI's PUT
// /s/-/dw/data/v23_2/sites/{site}/orders/{orderNo}/status.
type Salesforce struct {
	recorder
	ClientID, ClientSecret string
}

// NewSalesforce returns a simulator that accepts the client credentials.
func NewSalesforce(clientID, clientSecret string) *Salesforce {
	return &Salesforce{ClientID: clientID, ClientSecret: clientSecret}
}

func fault(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"_v": "23.2", "fault": map[string]any{"type": typ, "message": msg}})
}

// ServeHTTP answers one request.
func (s *Salesforce) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rq := s.record(r)
	if r.URL.Path == SalesforceTokenPath && r.Method == http.MethodPost {
		u, p, ok := basicAuth(r)
		u, _ = url.QueryUnescape(u)
		p, _ = url.QueryUnescape(p)
		if !ok || u != s.ClientID || p != s.ClientSecret || !strings.Contains(rq.Body, "grant_type=client_credentials") {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client", "error_description": "Client authentication failed"})
			return
		}
		s.issue(w, "sfcc")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/s/-/dw/data/v23_2/sites/")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 4 || parts[1] != "orders" || parts[3] != "status" || r.Method != http.MethodPut {
		fault(w, http.StatusNotFound, "ResourcePathNotFoundException", "Unknown resource path "+r.URL.Path)
		return
	}
	if !s.bearerOK(r) {
		fault(w, http.StatusUnauthorized, "InvalidAccessTokenException", "The request is unauthorized, the access token is invalid.")
		return
	}
	orderNo := parts[2]
	if hostile(w, orderNo) {
		return
	}
	var body struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(rq.Body), &body); err != nil || body.Status == "" {
		fault(w, http.StatusBadRequest, "PropertyConstraintViolationException", "The property 'status' is required.")
		return
	}
	switch {
	case strings.HasPrefix(orderNo, "som-"):
		fault(w, http.StatusBadRequest, "StatusTransitionNotPossibleException", "The order status of order '"+orderNo+"' can't be changed to '"+body.Status+"'.")
	case strings.HasPrefix(orderNo, "illegal-"):
		fault(w, http.StatusBadRequest, "IllegalOrderIntegrationStateException", "Status of integrated orders cannot be changed.")
	case strings.HasPrefix(orderNo, "missing-"):
		fault(w, http.StatusNotFound, "OrderNotFoundException", "No order with number '"+orderNo+"' was found.")
	default:
		s.apply(orderNo, r)
		w.WriteHeader(http.StatusNoContent)
	}
}
