package aggregate

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// Outcome is how one part settled.
type Outcome uint8

// Part outcomes. Every outcome but OutcomeOK is a failed part.
const (
	OutcomePending     Outcome = iota // not called (the zero value; Summary entries past the last part)
	OutcomeOK                         // 2xx with a valid JSON body within max_part_bytes
	OutcomeUnreachable                // the transport failed: no instance, refused, reset, malformed answer
	OutcomeTimeout                    // no answer by the part's deadline
	OutcomeDeadline                   // still running at the aggregate's deadline: abandoned
	OutcomeBadStatus                  // the part answered non-2xx
	OutcomeInvalidJSON                // the body is not valid JSON (or is compressed)
	OutcomeTooLarge                   // the body is over max_part_bytes
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"pending", "ok", "unreachable", "timeout", "deadline", "bad_status", "invalid_json", "too_large"}

// String is the outcome's name as used in metrics and errors: "ok",
// "timeout", "invalid_json"...
func (o Outcome) String() string {
	if o >= numOutcomes {
		return "unknown"
	}
	return outcomeNames[o]
}

// timedOut reports the outcomes caused by a deadline.
func (o Outcome) timedOut() bool { return o == OutcomeTimeout || o == OutcomeDeadline }

// result is a settled part.
type result struct {
	outcome Outcome
	status  int    // the part's HTTP status; 0 when no answer was read
	body    []byte // valid JSON, trimmed, when outcome is OutcomeOK; borrowed from the part's response
	private bool   // the part's answer is not for sharing (privateAnswer)
}

// maxDepth bounds the nesting of a part body. fastjson's validator has no
// limit of its own (it recurses per level), and encoding/json refuses
// documents nested deeper than 10000.
const maxDepth = 1000

// checkBody classifies a part's answer from its status and body: the body
// is kept (trimmed of JSON whitespace) only when it is valid.
func checkBody(status int, body []byte, maxBytes int) result {
	r := result{status: status}
	switch {
	case status < 200 || status > 299:
		r.outcome = OutcomeBadStatus
	case len(body) > maxBytes:
		r.outcome = OutcomeTooLarge
	case !validJSON(body):
		r.outcome = OutcomeInvalidJSON
	default:
		r.outcome, r.body = OutcomeOK, trimWS(body)
	}
	return r
}

// validJSON reports whether b is one JSON value (RFC 8259) in valid UTF-8,
// nested at most maxDepth levels. It does not allocate (fastjson allocates
// its error, on invalid input only).
//
// fastjson.ValidateBytes checks the grammar but not all of the strings:
// in a string with an escape it looks for control characters only after
// the last escape, and it accepts invalid UTF-8. stringsOK checks both,
// since a part body is copied raw into the answer and one bad part would
// make the whole answer invalid.
func validJSON(b []byte) bool {
	return stringsOK(b) && fastjson.ValidateBytes(b) == nil
}

// stringsOK reports whether b nests at most maxDepth levels and every
// string in it is valid UTF-8 without a raw control character (< 0x20). It
// follows strings as JSON delimits them and checks nothing else of the
// grammar: it runs beside fastjson's validator, and its answer for a body
// that validator rejects does not matter.
//
// A body of printable ASCII only, with fewer brackets than maxDepth (most
// answers), passes on one word-wise scan and two vectorized counts; others
// get the string-aware scan.
func stringsOK(b []byte) bool {
	if printableASCII(b) && bytes.Count(b, openBrace)+bytes.Count(b, openBracket) <= maxDepth {
		return true
	}
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			end, ok := skipString(b, i+1)
			if !ok {
				return false
			}
			i = end
		case '{', '[':
			if depth++; depth > maxDepth {
				return false
			}
		case '}', ']':
			depth--
		}
	}
	return true
}

var (
	openBrace   = []byte("{")
	openBracket = []byte("[")
)

// Word-wise byte tests on eight lanes (bytes) of a uint64 x: x&highs flags
// the lanes >= 0x80, (x-ones*n)&^x&highs the lanes below n (n <= 0x80),
// and with y = x^(ones*c), (y-ones)&^y&highs the lanes equal to c. A lane
// flagged through a borrow from the lane below may be a false positive;
// the lowest flagged lane never is.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// printableASCII reports whether every byte of b is in 0x20..0x7f: no
// control character (JSON whitespace included) and no UTF-8 sequence. It
// tests eight bytes at a time.
func printableASCII(b []byte) bool {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		if (x|(x-ones*0x20)&^x)&highs != 0 {
			return false
		}
	}
	for ; i < len(b); i++ {
		if b[i] < 0x20 || b[i] >= 0x80 {
			return false
		}
	}
	return true
}

// skipString scans the string whose contents start at b[i] and returns the
// index of its closing quote (len(b) when there is none), with false at
// the first raw control character or invalid UTF-8 sequence. The byte after
// a backslash is skipped unchecked: fastjson accepts only " \ / b f n r t u
// there, and hex digits after u.
func skipString(b []byte, i int) (int, bool) {
	for {
		i = plainRun(b, i)
		if i >= len(b) {
			return len(b), true
		}
		switch c := b[i]; {
		case c == '"':
			return i, true
		case c == '\\':
			i += 2
		case c < 0x20:
			return i, false
		default: // c >= 0x80
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return i, false
			}
			i += n
		}
	}
}

// plainRun returns the index of the first byte at or after b[i] that ends
// a run of plain string characters: a quote, a backslash, a control
// character or a byte of a multi-byte UTF-8 sequence; len(b) if none does.
// It tests eight bytes at a time.
func plainRun(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q, bs := x^(ones*'"'), x^(ones*'\\')
		// The lowest flag of all terms is exact: the first stop.
		stop := (x | (x-ones*0x20)&^x | (q-ones)&^q | (bs-ones)&^bs) & highs
		if stop != 0 {
			return i + bits.TrailingZeros64(stop)/8
		}
	}
	for i < len(b) && !stringStop[b[i]] {
		i++
	}
	return i
}

// stringStop is the byte-wise test of plainRun.
var stringStop = func() (t [256]bool) {
	for c := range t {
		t[c] = c < 0x20 || c == '"' || c == '\\' || c >= 0x80
	}
	return t
}()

func trimWS(b []byte) []byte {
	for len(b) > 0 && isWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// errorStatus is the status reported for a failed part in "errors": what
// the gateway would have answered for it alone, or the part's own status.
func (r *result) errorStatus() int {
	switch r.outcome {
	case OutcomeTimeout, OutcomeDeadline:
		return 504
	case OutcomeBadStatus:
		return r.status
	}
	return 502
}

// Answer statuses, as in the body's "status" and the requests_total label.
const (
	statusSuccess = iota
	statusPartial
	statusError
	statusBadRequest
	numStatuses
)

var statusNames = [numStatuses]string{"success", "partial", "error", "bad_request"}

// verdict is what the results add up to.
type verdict struct {
	status    int // index into statusNames
	code      int // HTTP status
	succeeded int
}

// decide applies the status rules: 200 when every part succeeded;
// statusOnPartial when only optional parts failed and one succeeded; else
// 502, or 504 when every failure that decided it was a timeout.
func decide(parts []part, res []result, statusOnPartial int) verdict {
	var v verdict
	requiredFailed, allTimeouts, requiredTimeouts := false, true, true
	for i := range res {
		o := res[i].outcome
		if o == OutcomeOK {
			v.succeeded++
			continue
		}
		allTimeouts = allTimeouts && o.timedOut()
		if parts[i].required {
			requiredFailed = true
			requiredTimeouts = requiredTimeouts && o.timedOut()
		}
	}
	switch {
	case v.succeeded == len(res):
		v.status, v.code = statusSuccess, 200
	case requiredFailed:
		v.status, v.code = statusError, errorCode(requiredTimeouts)
	case v.succeeded == 0:
		v.status, v.code = statusError, errorCode(allTimeouts)
	default:
		v.status, v.code = statusPartial, statusOnPartial
	}
	return v
}

func errorCode(timeout bool) int {
	if timeout {
		return 504
	}
	return 502
}

// appendAnswer appends the aggregate's JSON document:
//
//	{"status":"partial","data":{"a":{...},"b":null},"errors":{"b":{"status":504,"error":"timeout"}},
//	 "meta":{"aggregated_at":"...","services_called":2,"services_succeeded":1,"duration_ms":12.345}}
//
// Part bodies are appended as they are (validated by checkBody); nothing is
// decoded or re-encoded. It does not allocate when dst has room.
func appendAnswer(dst []byte, parts []part, res []result, v verdict, at time.Time, took time.Duration) []byte {
	dst = append(dst, `{"status":"`...)
	dst = append(dst, statusNames[v.status]...)
	dst = append(dst, `","data":{`...)
	for i := range res {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, parts[i].keyJSON...)
		if res[i].outcome == OutcomeOK {
			dst = append(dst, res[i].body...)
		} else {
			dst = append(dst, "null"...)
		}
	}
	dst = append(dst, `},"errors":{`...)
	first := true
	for i := range res {
		if res[i].outcome == OutcomeOK {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, parts[i].keyJSON...)
		dst = append(dst, `{"status":`...)
		dst = strconv.AppendInt(dst, int64(res[i].errorStatus()), 10)
		dst = append(dst, `,"error":"`...)
		dst = append(dst, res[i].outcome.String()...)
		dst = append(dst, `"}`...)
	}
	dst = append(dst, `},"meta":{"aggregated_at":"`...)
	dst = at.UTC().AppendFormat(dst, time.RFC3339)
	dst = append(dst, `","services_called":`...)
	dst = strconv.AppendInt(dst, int64(len(res)), 10)
	dst = append(dst, `,"services_succeeded":`...)
	dst = strconv.AppendInt(dst, int64(v.succeeded), 10)
	dst = append(dst, `,"duration_ms":`...)
	dst = strconv.AppendFloat(dst, float64(took.Microseconds())/1000, 'f', 3, 64)
	return append(dst, "}}"...)
}

// appendJSONString appends s escaped for use inside a JSON string.
func appendJSONString[T string | []byte](dst []byte, s T) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20 || c == 0x7f:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
