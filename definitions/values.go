package definitions

// Values are a run's typed parameters by name. Each value has the Go type
// of its parameter's type: string (string, enum), int64 (int),
// decimal.Decimal (decimal), bool (bool), Date (date), time.Time in UTC
// (datetime).
type Values map[string]any
