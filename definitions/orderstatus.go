package definitions

// OrderStatusMap maps the ERP's order statuses to commerce order statuses
// and says which commerce statuses allow cancellation (the top-level
// orderStatuses section; at most one per Set).
//
// It lives here, not beside processors/httperp that reads it, on purpose:
// it is YAML that users write, loaded with file:line positions, validated
// and reloaded with the rest of the Set (a mapping that names an unknown
// status fails the load like any definition), and any processor — the
// built-in HTTP ones today, a registered one tomorrow — reads it from the
// Set. httperp keeps only the lookups it needs (orders.go).
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
