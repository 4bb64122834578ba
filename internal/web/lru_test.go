package web

import (
	"fmt"
	"testing"
)

func TestLRUEvictsLeastRecentlyUsed(t *testing.T) {
	c := newLRU[int, string](3, nil)
	for i := range 3 {
		c.put(i, fmt.Sprint(i))
	}
	if _, ok := c.get(0); !ok { // 0 is now the most recently used
		t.Fatal("0 is missing before anything was evicted")
	}
	c.put(3, "3") // evicts 1, the least recently used
	if _, ok := c.get(1); ok {
		t.Error("1 was kept; it was the least recently used")
	}
	for _, k := range []int{0, 2, 3} {
		if v, ok := c.get(k); !ok || v != fmt.Sprint(k) {
			t.Errorf("get(%d) = %q, %v", k, v, ok)
		}
	}
	c.put(3, "three") // replacing keeps the count
	if v, _ := c.get(3); v != "three" || c.len() != 3 {
		t.Errorf("after replacing 3: %q, %d entries", v, c.len())
	}
}

func TestLRUBoundsSize(t *testing.T) {
	c := newLRU[string, string](10, func(s string) int { return len(s) })
	c.put("a", "aaaa")
	c.put("b", "bbbb")
	c.put("c", "cccc") // 12 > 10: "a" goes
	if _, ok := c.get("a"); ok {
		t.Error(`"a" was kept past the size bound`)
	}
	c.put("huge", "0123456789x") // larger than the whole cache: not kept, nothing evicted
	if _, ok := c.get("huge"); ok {
		t.Error("an entry larger than the cache was kept")
	}
	if c.len() != 2 {
		t.Errorf("%d entries, want 2", c.len())
	}
	c.put("b", "bbbbbbbbb") // growing "b" to 9 units evicts "c"
	if _, ok := c.get("c"); ok || c.len() != 1 {
		t.Errorf(`"c" kept (%v) or %d entries after "b" grew`, ok, c.len())
	}
}
