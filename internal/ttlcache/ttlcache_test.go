package ttlcache

import (
	"testing"
	"time"
)

// A value is served until its time is up and not after; forgetting and a
// full cache drop values.
func TestValuesExpireAndFullCachesMakeRoom(t *testing.T) {
	c := New[string, int](time.Hour, 2)
	c.Put("a", 1)
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("Get(a) = %v %v, want 1", v, ok)
	}
	c.Forget("a")
	if _, ok := c.Get("a"); ok {
		t.Error("a forgotten value is still served")
	}
	c.Put("a", 1)
	c.Put("b", 2)
	c.Put("c", 3) // full, nothing expired: starts over
	if _, ok := c.Get("a"); ok {
		t.Error("a full cache kept its oldest values")
	}
	if v, ok := c.Get("c"); !ok || v != 3 {
		t.Errorf("Get(c) = %v %v, want 3", v, ok)
	}

	c.Add("c", 4) // c holds a fresh value: kept
	c.Add("d", 5) // d holds none: added
	if v, _ := c.Get("c"); v != 3 {
		t.Errorf("Add replaced a fresh value: c = %d, want 3", v)
	}
	if v, _ := c.Get("d"); v != 5 {
		t.Errorf("Add did not add: d = %d, want 5", v)
	}

	expired := New[string, int](-time.Second, 10) // every value is already past its time
	expired.Put("x", 1)
	if _, ok := expired.Get("x"); ok {
		t.Error("an expired value is served")
	}
}
