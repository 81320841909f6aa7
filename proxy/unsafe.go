package proxy

import "unsafe"

// b2s converts b to a string without copying. The string is valid only
// while b is unchanged; use it for look-ups and parsing, never store it.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// s2b converts s to bytes without copying. The bytes must not be modified.
func s2b(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
