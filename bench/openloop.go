package main

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"
)

// openLoop is a constant-rate load run. Request i is due at start+i/Rate
// whatever happened to earlier requests, and its latency is measured from
// that intended send time, so a stalled server is charged for the whole
// queue it causes (no coordinated omission).
type openLoop struct {
	// Addr is the target's loopback host:port.
	Addr   string
	Method string
	Path   string
	// Body is sent with every request [nil: none].
	Body []byte
	// Headers are sent with every request [none].
	Headers []header
	// Tokens are Authorization values sent one per request in turn,
	// starting at the position saved in Cursor [nil: none].
	Tokens [][]byte
	// Cursor is the file that holds the position in Tokens to start at,
	// shared with wrk's script (see tokens.go); the run saves the next
	// position there when it ends ["": start at 0, save nothing].
	Cursor string
	// Rate is requests per second.
	Rate float64
	// Duration is how long requests keep falling due.
	Duration time.Duration
	// Conns bounds the concurrent requests (and connections).
	Conns int
	// Timeout bounds each request; a late one counts as a timeout error [2s].
	Timeout time.Duration
}

// Latency histograms cover 1 µs to 60 s at 3 significant digits.
const (
	histMin    = 1
	histMax    = 60_000_000
	histDigits = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

// errBadOpenLoop is returned for a run that cannot be paced.
var errBadOpenLoop = errors.New("bench: open loop needs Rate > 0, Duration > 0 and Conns > 0")

// run drives the load and returns its sample (CPU fields left zero).
// Requests counts successful (2xx) answers; failures are counted in
// Errors. Every request sent is in the percentiles: a non-2xx answer at
// the time it took, as wrk counts them, a request without an answer at
// Timeout at least. A target whose slowest requests fail must not look
// fast, nor one that refuses connections quickly. It stops by itself: no
// request is started after Duration plus Timeout, and requests due but not
// started by then are counted as Missed.
func (o openLoop) run(ctx context.Context) (sample, error) {
	if o.Rate <= 0 || o.Duration <= 0 || o.Conns <= 0 {
		return sample{}, errBadOpenLoop
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	hc := &fasthttp.HostClient{
		Addr:                      o.Addr,
		MaxConns:                  o.Conns,
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		ReadTimeout:               o.Timeout,
		WriteTimeout:              o.Timeout,
		NoDefaultUserAgentHeader:  true,
		ReadBufferSize:            32 << 10,
	}
	defer hc.CloseIdleConnections()
	var tokens *tokenCycle
	if len(o.Tokens) > 0 {
		start, err := readCursor(o.Cursor)
		if err != nil {
			return sample{}, err
		}
		tokens = newTokenCycle(o.Tokens, start)
	}

	total := int64(o.Rate * o.Duration.Seconds())
	interval := float64(time.Second) / o.Rate
	start := time.Now().Add(10 * time.Millisecond)
	hardStop := start.Add(o.Duration + o.Timeout)

	// The pacer hands each request's due time to whichever worker is free;
	// a due time waiting in the buffer still counts from when it was due.
	due := make(chan time.Time, min(total, 1<<16))
	workers := make([]openWorker, o.Conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		w.hist = newHist()
		wg.Go(func() { w.loop(ctx, o, hc, tokens, due, hardStop) })
	}
	sent := pace(ctx, due, total, start, interval, hardStop)
	close(due)
	wg.Wait()
	end := time.Now()
	if tokens != nil && o.Cursor != "" {
		if err := writeCursor(o.Cursor, tokens.pos()); err != nil {
			return sample{}, err
		}
	}

	h := newHist()
	var s sample
	for i := range workers {
		h.Merge(workers[i].hist)
		s.Errors = s.Errors.add(workers[i].errs)
		s.Requests += workers[i].ok
	}
	s.Errors.Missed += total - sent
	s.Seconds = end.Sub(start).Seconds()
	s.Rate = o.Rate
	if s.Seconds > 0 {
		s.RPS = float64(s.Requests) / s.Seconds
	}
	fillLatency(&s, h)
	return s, ctx.Err()
}

// pace sends request i's due time, start+i*interval, on due when it comes,
// and returns how many it sent before ctx ended or hardStop passed.
//
// Go's timers wake up to a millisecond late when the process is idle in
// epoll, which would add up to 1 ms to every measured latency; pace sleeps
// the last stretch with nanosleep, which is accurate to tens of µs.
func pace(ctx context.Context, due chan<- time.Time, total int64, start time.Time, interval float64, hardStop time.Time) int64 {
	var i int64
	for i < total && ctx.Err() == nil {
		now := time.Now()
		if now.After(hardStop) {
			break
		}
		for ; i < total; i++ {
			t := start.Add(time.Duration(float64(i) * interval))
			if t.After(now) {
				break
			}
			due <- t
		}
		if i == total {
			break
		}
		next := start.Add(time.Duration(float64(i) * interval))
		d := time.Until(next)
		if d > 3*time.Millisecond {
			time.Sleep(d - 2*time.Millisecond)
			d = time.Until(next)
		}
		if d > 0 {
			ts := syscall.NsecToTimespec(int64(d))
			_ = syscall.Nanosleep(&ts, nil)
		}
	}
	return i
}

// fillLatency sets the percentile fields of s from h (microseconds).
func fillLatency(s *sample, h *hdrhistogram.Histogram) {
	vals := h.ValueAtPercentilesSlice(spectrumPcts[:])
	s.Spectrum = make([]point, len(vals))
	for i, v := range vals {
		s.Spectrum[i] = point{Pct: spectrumPcts[i], US: float64(v)}
	}
	s.P50US = float64(h.ValueAtPercentile(50))
	s.P90US = float64(h.ValueAtPercentile(90))
	s.P99US = float64(h.ValueAtPercentile(99))
	s.P999US = float64(h.ValueAtPercentile(99.9))
	s.MaxUS = float64(h.Max())
}

// openWorker sends requests one at a time; it owns its histogram and error
// counts, merged after the run, so the hot loop shares only the counter.
type openWorker struct {
	hist *hdrhistogram.Histogram // every request sent
	errs errorCounts
	ok   int64 // 2xx answers
}

// loop sends a request for each due time until due is closed, with the
// next of tokens as its Authorization header when tokens is not nil.
func (w *openWorker) loop(ctx context.Context, o openLoop, hc *fasthttp.HostClient, tokens *tokenCycle,
	due <-chan time.Time, hardStop time.Time) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + o.Addr + o.Path)
	req.Header.SetMethod(o.Method)
	for _, h := range o.Headers {
		req.Header.Set(h.Name, h.Value)
	}
	if len(o.Body) > 0 {
		req.SetBodyRaw(o.Body)
		req.Header.SetContentType("application/octet-stream")
	}
	for t := range due {
		if ctx.Err() != nil || time.Now().After(hardStop) {
			w.errs.Missed++
			continue
		}
		if tokens != nil {
			req.Header.SetBytesV(fasthttp.HeaderAuthorization, tokens.take())
		}
		err := hc.DoTimeout(req, resp, o.Timeout)
		lat := time.Since(t)
		switch {
		case err != nil:
			// No answer: counted at the timeout at least, so that a fast
			// refusal or reset can only raise the tail, never lower it.
			w.countErr(err)
			lat = max(lat, o.Timeout)
		case resp.StatusCode() < 200 || resp.StatusCode() > 299:
			w.errs.Status++
		default:
			w.ok++
		}
		_ = w.hist.RecordValue(max(histMin, min(histMax, lat.Microseconds())))
	}
}

func (w *openWorker) countErr(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		w.errs.Timeout++
	case errors.Is(err, fasthttp.ErrDialTimeout), isDialErr(err):
		w.errs.Connect++
	default:
		w.errs.Read++
	}
}

func isDialErr(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}
