package platformsim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// VTEXMessages are the Channel Order API notification codes.
var VTEXMessages = map[string]string{
	"EOI000": "Unknown error",
	"EOI001": "Unmapped error",
	"EOI008": "Cannot approve an order that is not integrated yet",
	"EOI009": "Order out of valid status to approve",
	"EOI011": "Order is waiting for manual authorization by the seller",
	"SOI002": "Order approved successfully",
	"SOI003": "Order successfully enqueued",
}

// VTEX simulates the Channel Order API's PUT
// /api/order-integration/orders/status, checking the app key and token
// headers.
type VTEX struct {
	recorder
	AppKey, AppToken string

	mu     sync.Mutex
	waits  map[string]int    // marketplaceOrderId → EOI011 answers given
	status map[string]string // marketplaceOrderId → status applied
}

// NewVTEX returns a simulator that accepts appKey and appToken.
func NewVTEX(appKey, appToken string) *VTEX { return &VTEX{AppKey: appKey, AppToken: appToken} }

// ServeHTTP answers one request.
func (v *VTEX) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rq := v.record(r)
	if r.URL.Path != "/api/order-integration/orders/status" || r.Method != http.MethodPut {
		writeJSON(w, http.StatusNotFound, map[string]any{"success": false, "code": "EOI000", "message": "no such endpoint"})
		return
	}
	if r.Header.Get("X-VTEX-API-AppKey") != v.AppKey || r.Header.Get("X-VTEX-API-AppToken") != v.AppToken {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte("Unauthorized"))
		return
	}
	var body struct {
		MarketplaceOrderID     string `json:"marketplaceOrderId"`
		MarketplaceOrderStatus string `json:"marketplaceOrderStatus"`
		ConnectorName          string `json:"connectorName"`
		ConnectorEndpoint      string `json:"connectorEndpoint"`
	}
	if err := json.Unmarshal([]byte(rq.Body), &body); err != nil || body.MarketplaceOrderID == "" || body.MarketplaceOrderStatus == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "code": "EOI001", "message": "marketplaceOrderId and marketplaceOrderStatus are required"})
		return
	}
	id := body.MarketplaceOrderID
	if hostile(w, id) {
		return
	}
	answer := func(status int, code string) {
		writeJSON(w, status, map[string]any{
			"marketplaceOrderId": id, "accountName": nil, "code": code, "flow": "ApproveOrder",
			"success": strings.HasPrefix(code, "S"), "operationId": nil, "errors": nil, "fields": nil, "message": VTEXMessages[code],
		})
	}
	if rest, ok := strings.CutPrefix(id, "err-"); ok {
		code, _, _ := strings.Cut(rest, "-")
		answer(http.StatusBadRequest, code)
		return
	}
	if rest, ok := strings.CutPrefix(id, "wait-"); ok {
		n, _, _ := strings.Cut(rest, "-")
		limit, _ := strconv.Atoi(n)
		v.mu.Lock()
		if v.waits == nil {
			v.waits = map[string]int{}
		}
		given := v.waits[id]
		if given < limit {
			v.waits[id]++
		}
		v.mu.Unlock()
		if given < limit {
			answer(http.StatusBadRequest, "EOI011")
			return
		}
	}
	if v.apply(id, r) {
		v.mu.Lock()
		if v.status == nil {
			v.status = map[string]string{}
		}
		v.status[id] = body.MarketplaceOrderStatus
		v.mu.Unlock()
	}
	answer(http.StatusOK, "SOI003")
}

// Status returns the status last applied to an order ("" for none).
func (v *VTEX) Status(id string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.status[id]
}
