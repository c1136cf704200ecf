package hooks_test

import (
	"net/http"
	"strconv"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/hooks"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"e1"}`)
	hmacHook := &definitions.Hook{Name: "h", Auth: definitions.HookAuth{Type: definitions.HookAuthHMAC, Secret: "S"}}
	b64 := &definitions.Hook{Name: "h", Auth: definitions.HookAuth{Type: definitions.HookAuthHMAC, Secret: "S", Header: "X-Shopify-Hmac-Sha256", Encoding: "base64"}}
	stamped := &definitions.Hook{Name: "h", Auth: definitions.HookAuth{Type: definitions.HookAuthHMAC, Secret: "S", Prefix: "sha256=", TimestampHeader: "X-Ts", Tolerance: definitions.Duration(time.Minute)}}
	bearer := &definitions.Hook{Name: "h", Auth: definitions.HookAuth{Type: definitions.HookAuthBearer, Secret: "S"}}
	header := &definitions.Hook{Name: "h", Auth: definitions.HookAuth{Type: definitions.HookAuthHeader, Secret: "S", Header: "X-Key"}}
	ts := strconv.FormatInt(now.Unix(), 10)
	for _, tc := range []struct {
		name   string
		h      *definitions.Hook
		header map[string]string
		secret string
		want   error
	}{
		{"hmac hex", hmacHook, map[string]string{"X-Signature": hooks.Sign(hmacHook, "tok", body, 0)}, "tok", nil},
		{"hmac upper-case hex", hmacHook, map[string]string{"X-Signature": upper(hooks.Sign(hmacHook, "tok", body, 0))}, "tok", nil},
		{"hmac wrong secret", hmacHook, map[string]string{"X-Signature": hooks.Sign(hmacHook, "other", body, 0)}, "tok", hooks.ErrBadSignature},
		{"hmac not hex", hmacHook, map[string]string{"X-Signature": "zz"}, "tok", hooks.ErrBadSignature},
		{"hmac missing", hmacHook, nil, "tok", hooks.ErrNoSignature},
		{"no secret here", hmacHook, map[string]string{"X-Signature": "00"}, "", hooks.ErrNoSecret},
		{"base64 (Shopify style)", b64, map[string]string{"X-Shopify-Hmac-Sha256": hooks.Sign(b64, "tok", body, 0)}, "tok", nil},
		{"stamped", stamped, map[string]string{"X-Ts": ts, "X-Signature": hooks.Sign(stamped, "tok", body, now.Unix())}, "tok", nil},
		{"stamped, prefix missing", stamped, map[string]string{"X-Ts": ts, "X-Signature": hooks.Sign(hmacHook, "tok", body, 0)}, "tok", hooks.ErrBadSignature},
		{"stamped, timestamp changed", stamped, map[string]string{"X-Ts": strconv.FormatInt(now.Unix()-1, 10), "X-Signature": hooks.Sign(stamped, "tok", body, now.Unix())}, "tok", hooks.ErrBadSignature},
		{"stamped, too old", stamped, map[string]string{"X-Ts": strconv.FormatInt(now.Unix()-61, 10), "X-Signature": hooks.Sign(stamped, "tok", body, now.Unix()-61)}, "tok", hooks.ErrStale},
		{"stamped, no timestamp", stamped, map[string]string{"X-Signature": hooks.Sign(stamped, "tok", body, now.Unix())}, "tok", hooks.ErrStale},
		{"bearer", bearer, map[string]string{"Authorization": "Bearer tok"}, "tok", nil},
		{"bearer wrong", bearer, map[string]string{"Authorization": "Bearer tok2"}, "tok", hooks.ErrBadSignature},
		{"bearer basic", bearer, map[string]string{"Authorization": "Basic dG9r"}, "tok", hooks.ErrNoSignature},
		{"header", header, map[string]string{"X-Key": "tok"}, "tok", nil},
		{"header wrong", header, map[string]string{"X-Key": "to"}, "tok", hooks.ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			err := hooks.Verify(tc.h, h, body, tc.secret, now)
			if tc.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.want)
			}
		})
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 32
		}
	}
	return string(b)
}

func TestParamsAndEventID(t *testing.T) {
	t.Parallel()
	h := &definitions.Hook{Name: "h", Parameters: map[string]string{"OrderNumber": "$.order.number", "Count": "order.lines", "Flag": "order.gift", "Obj": "order"},
		Set: map[string]string{"op": "cancel"}, EventID: []string{"id", "order.number"}}
	p, err := hooks.Decode([]byte(`{"id":"e1","order":{"number":"WEB1","lines":3,"gift":true}}`))
	require.NoError(t, err)
	vals, bad := hooks.Params(h, p)
	require.Equal(t, map[string]string{"OrderNumber": "WEB1", "Count": "3", "Flag": "true", "op": "cancel"}, vals)
	require.Equal(t, map[string]string{"Obj": "payload field order is an object or list, not a value"}, bad)
	id, err := hooks.EventID(h, p)
	require.NoError(t, err)
	require.Equal(t, "e1\x00WEB1", id)
	require.Equal(t, hooks.IdempotencyKey("h", id), hooks.IdempotencyKey("h", "e1\x00WEB1"))
	require.NotEqual(t, hooks.IdempotencyKey("h", id), hooks.IdempotencyKey("g", id))
	_, err = hooks.Decode([]byte(`"x"`))
	require.ErrorIs(t, err, hooks.ErrNotObject)
	_, err = hooks.Decode([]byte(`{} {}`))
	require.Error(t, err)
}

func TestStatsKeepsTheLastCallsNewestFirst(t *testing.T) {
	t.Parallel()
	var s hooks.Stats
	for i := range 25 {
		o := hooks.Accepted
		if i%5 == 0 {
			o = hooks.Unauthorized
		}
		s.Record("h", hooks.Call{Status: i, Outcome: o})
	}
	sum := s.Of("h")
	require.Len(t, sum.Last, hooks.LastCalls)
	require.Equal(t, 24, sum.Last[0].Status)
	require.Equal(t, 5, sum.Last[hooks.LastCalls-1].Status)
	require.Equal(t, int64(20), sum.Accepted)
	require.Equal(t, int64(5), sum.Refused)
	require.Empty(t, s.Of("other").Last)
}

func TestFilterSeesNumbersAndMissingFields(t *testing.T) {
	t.Parallel()
	set, err := definitions.LoadFS(fstest.MapFS{"h.yaml": {Data: []byte(`
connections: [{name: l, type: noop}]
jobs: [{name: J, connection: l, processor: Noop}]
hooks:
  - {name: big, job: J, auth: {type: bearer, secret: T}, filter: 'total > 100 && order.status == "paid"'}
`)}}, ".")
	require.NoError(t, err)
	require.NoError(t, set.Validate(nil))
	h, _ := set.Hook("big")
	for _, tc := range []struct {
		body string
		want bool
	}{
		{`{"total":150,"order":{"status":"paid"}}`, true},
		{`{"total":150.5,"order":{"status":"paid"}}`, true},
		{`{"total":99,"order":{"status":"paid"}}`, false},
		{`{"total":150}`, false}, // no order: false, not an error
		{`{"order":{"status":"paid"}}`, false},
	} {
		p, err := hooks.Decode([]byte(tc.body))
		require.NoError(t, err)
		got, err := h.Match(p.Object())
		require.NoError(t, err, tc.body)
		require.Equal(t, tc.want, got, tc.body)
	}
	p, _ := hooks.Decode([]byte(`{"total":"lots","order":{"status":"paid"}}`))
	_, err = h.Match(p.Object())
	require.Error(t, err, "a type mismatch is an error")
}
