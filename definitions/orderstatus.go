package definitions

// OrderStatusMap maps the ERP's order statuses to commerce order statuses
// and says which commerce statuses allow cancellation (the top-level
// orderStatuses section; at most one per Set).
type OrderStatusMap struct {
	Mappings []StatusMapping
	// CancellableStatuses lists the commerce statuses in which an order may
	// be cancelled; each must be the CommerceStatus of some mapping.
	CancellableStatuses []string
	Pos                 Pos

	src              source
	cancellableLines []int // line of each CancellableStatuses entry
}

// StatusMapping maps one ERP order status to a commerce order status.
type StatusMapping struct {
	ERPStatus      string
	CommerceStatus string
	// AllowCancellation says whether an order in this ERP status may be
	// cancelled (default false).
	AllowCancellation bool
	Pos               Pos

	src source
}

// Lookup returns the mapping of an ERP status (matched exactly). It
// reports false when there is none or m is nil.
func (m *OrderStatusMap) Lookup(erpStatus string) (StatusMapping, bool) {
	if m == nil {
		return StatusMapping{}, false
	}
	for _, sm := range m.Mappings {
		if sm.ERPStatus == erpStatus {
			return sm, true
		}
	}
	return StatusMapping{}, false
}

// Cancellable reports whether commerceStatus is one of the cancellable
// statuses (matched exactly); false when m is nil.
func (m *OrderStatusMap) Cancellable(commerceStatus string) bool {
	if m == nil {
		return false
	}
	for _, s := range m.CancellableStatuses {
		if s == commerceStatus {
			return true
		}
	}
	return false
}
