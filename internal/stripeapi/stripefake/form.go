package stripefake

import (
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// params is a request's form turned back into the nested shape stripe-go
// flattened: "line_items[0][price]=p" becomes
// params{"line_items": params{"0": params{"price": "p"}}}. Leaves are
// strings; a list is a params keyed by index, read back with list.
type params map[string]any

func parseParams(form url.Values) params {
	root := params{}
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	// Sorted so "metadata=" (clear all) lands before "metadata[k]=v".
	sort.Strings(keys)
	for _, key := range keys {
		vals := form[key]
		parts := splitKey(key)
		node := root
		for _, part := range parts[:len(parts)-1] {
			child, ok := node[part].(params)
			if !ok {
				child = params{}
				node[part] = child
			}
			node = child
		}
		last := parts[len(parts)-1]
		if _, isMap := node[last].(params); !isMap {
			node[last] = vals[len(vals)-1]
		}
	}
	return root
}

// splitKey turns "a[b][c]" into ["a", "b", "c"] (stripe-go's form.FormatKey
// in reverse).
func splitKey(key string) []string {
	head, rest, _ := strings.Cut(key, "[")
	parts := []string{head}
	for rest != "" {
		part, after, _ := strings.Cut(rest, "]")
		parts = append(parts, part)
		rest = strings.TrimPrefix(after, "[")
	}
	return parts
}

func (p params) has(key string) bool { _, ok := p[key]; return ok }

// str is a string leaf; ok is false when it is absent.
func (p params) str(key string) (string, bool) {
	s, ok := p[key].(string)
	return s, ok
}

func (p params) sub(key string) params {
	sub, _ := p[key].(params)
	return sub
}

// list reads "key[0]", "key[1]", ... in index order. An empty string
// ("key=") is stripe-go's way of sending an empty list.
func (p params) list(key string) []any {
	m := p.sub(key)
	idx := make([]int, 0, len(m))
	for k := range m {
		if i, err := strconv.Atoi(k); err == nil {
			idx = append(idx, i)
		}
	}
	sort.Ints(idx)
	out := make([]any, 0, len(idx))
	for _, i := range idx {
		out = append(out, m[strconv.Itoa(i)])
	}
	return out
}

func (p params) strs(key string) []string {
	var out []string
	for _, v := range p.list(key) {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// int and bool read what stripe-go sends ("42", "true"); a value that does
// not parse reads as absent, since stripe-go never sends one.
func (p params) int(key string) (int64, bool) {
	s, _ := p.str(key)
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func (p params) bool(key string) (value, ok bool) {
	s, _ := p.str(key)
	b, err := strconv.ParseBool(s)
	return b, err == nil
}

// only rejects top-level params the fake does not imitate, the way Stripe
// rejects params it does not know: a param the fake silently ignored would
// let a test pass that Stripe would fail or answer differently.
func (p params) only(allowed ...string) *apiError {
	return p.onlyAt("", append(allowed, "expand")...)
}

// onlyAt is only for the params nested under prefix ("subscription_data").
func (p params) onlyAt(prefix string, allowed ...string) *apiError {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if slices.Contains(allowed, k) {
			continue
		}
		name := k
		if prefix != "" {
			name = prefix + "[" + k + "]"
		}
		return &apiError{status: 400, Type: "invalid_request_error", Code: "parameter_unknown", Param: name,
			Message: "Received unknown parameter: " + name}
	}
	return nil
}

// applyMetadata updates meta like Stripe: "metadata=" clears it, and
// "metadata[k]=" removes one key.
func applyMetadata(meta map[string]any, p params) map[string]any {
	if s, ok := p.str("metadata"); ok && s == "" {
		return map[string]any{}
	}
	out := clone(meta).(map[string]any)
	for k, v := range p.sub("metadata") {
		if s, _ := v.(string); s == "" {
			delete(out, k)
		} else {
			out[k] = s
		}
	}
	return out
}
