package platformsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// OracleMessages are the Oracle Commerce handleOrderActions error codes
// (from the platform's documentation) and their messages, with {0}/{1}
// filled in as the platform would.
var OracleMessages = map[string]string{
	"100094": "Organization passed in the header is currently inactive",
	"100095": "The order or return request does not belong to the current organization of the shopper profile",
	"100096": "The organization associated to the order or return request was deleted / does not exist",
	"100097": "The organization associated to the order or return request is currently inactive",
	"100098": "Current operation is being performed in an organization context and the shopper profile is not associated to any organization",
	"100099": "Current operation is being performed in an organization context and the order or return request does not belong to any organization",
	"100101": "The shopper profile does not belong to organization passed in the header",
	"200100": "Internal error occurred while processing the request.",
	"200101": "Cancel failed as order is in [PENDING_PAYMENT] state.",
	"200103": "The shipping group [sg10001] is in a no pending action state.",
	"200104": "The shipping group commerce item relationship [r10001] is in an invalid [NO_PENDING_ACTION] state.",
	"200218": "badProductReview is an invalid reason.",
	"200219": "duplicateOrder is an inactive reason.",
	"210105": "Specified order does not exist.",
	"30014":  "SiteId passed in x-ccsite header is invalid or the site was deleted",
	"30015":  "SiteId passed in x-ccsite header is currently inactive",
	"30019":  "SiteId passed in x-ccsite header is not related to the order being worked upon",
	"30020":  "The Site to which the order belongs was deleted",
	"30021":  "The Site to which the order belongs is currently inactive",
}

// OracleOps are the op values handleOrderActions accepts.
var OracleOps = []string{"cancel", "validateOrder", "validatePaymentAuthorization", "validActions", "invalidateOrder", "sendPlacedOrderEmailNotification"}

// Oracle simulates Oracle Commerce's agent API: POST /ccagent/v1/login
// (Bearer application key, form grant_type=client_credentials) and POST
// /ccagent/v1/orders/{id} (Bearer access token, body {"op": …}).
type Oracle struct {
	recorder
	// AppKey is the application key the login accepts.
	AppKey string
}

// NewOracle returns a simulator that accepts appKey.
func NewOracle(appKey string) *Oracle { return &Oracle{AppKey: appKey} }

// ServeHTTP answers one request.
func (o *Oracle) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rq := o.record(r)
	switch {
	case r.URL.Path == "/ccagent/v1/login" && r.Method == http.MethodPost:
		if r.Header.Get("Authorization") != "Bearer "+o.AppKey || !strings.Contains(rq.Body, "grant_type=client_credentials") {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"errorCode": "20060", "message": "Invalid application key", "status": "401"})
			return
		}
		o.issue(w, "occ")
	case strings.HasPrefix(r.URL.Path, "/ccagent/v1/orders/") && r.Method == http.MethodPost:
		if !o.bearerOK(r) {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"errorCode": "20061", "message": "Unauthorized: the access token is invalid or expired", "status": "401"})
			return
		}
		id := strings.TrimPrefix(r.URL.Path, "/ccagent/v1/orders/")
		if hostile(w, id) {
			return
		}
		var body struct {
			Op string `json:"op"`
		}
		if err := json.Unmarshal([]byte(rq.Body), &body); err != nil || body.Op == "" {
			writeJSON(w, http.StatusBadRequest, map[string]any{"errorCode": "100001", "message": "The op property is required", "status": "400"})
			return
		}
		if rest, ok := strings.CutPrefix(id, "err-"); ok {
			code, _, _ := strings.Cut(rest, "-")
			msg, known := OracleMessages[code]
			if !known {
				msg = "unknown simulated code " + code
			}
			status := http.StatusBadRequest
			switch code {
			case "210105":
				status = http.StatusNotFound
			case "200100":
				status = http.StatusInternalServerError
			}
			writeJSON(w, status, map[string]any{"errorCode": code, "message": msg, "status": fmt.Sprint(status)})
			return
		}
		o.apply(id, r)
		verb := map[string]string{"cancel": "cancelled", "validateOrder": "validated", "invalidateOrder": "invalidated"}[body.Op]
		if verb == "" {
			verb = "processed (" + body.Op + ")"
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"links":   []map[string]string{{"rel": "self", "href": "/ccagentui/v1/orders/" + id}},
			"id":      id,
			"message": fmt.Sprintf("Order [%s] has been successfully %s.", id, verb),
		})
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"errorCode": "404", "message": "no such endpoint " + r.Method + " " + r.URL.Path})
	}
}
