package main

// The jwt-verify scenario's tokens, and the order they are sent in.
//
// The gateway remembers the tokens it has verified in auth's seen cache
// (auth/seen.go): 16 shards picked by a seeded hash of the token, each
// holding up to 1024 tokens and emptied whole when a miss finds it full.
// While every request so far was a miss (each one adds its token), a token
// can hit only if fewer than 1024 other tokens reached its shard since it
// was added: 1024 would have filled the shard and emptied it.
//
// jwt-verify sends its verifyTokens (65536) tokens in one fixed order,
// round and round. wrk's threads have a Lua state each, so they share the
// order out: thread k of T sends positions c+k, c+k+T, c+k+2T, ... (c: the
// cursor below), and no two threads send one token at once. With T = 2,
// each thread alone sends 32767 other tokens before it comes back to one,
// about 2048 of them in that token's shard (binomial: 2048 ± 44; 1024 or
// fewer is over 20 standard deviations away), whatever the other thread
// does; so the token misses, and from the first request on every request
// does. auth's TestSeenCycle runs such a cycle of 2×auth.SeenMax tokens through
// the cache itself, and shows that one of auth.SeenMax tokens would hit. The
// open loop's workers share one counter: a token comes back after all
// 65535 others.
//
// A target is loaded many times in a scenario (warmup, rounds, both load
// modes). Each target has a cursor file in the scenario's dir: each run
// starts at its position and saves the next one when it ends (wrk's
// done(), the open loop after its last request), so a run goes on where
// the target's last one stopped instead of starting over on tokens the
// gateway has just cached.
//
// The slack this costs is small next to the ~1000 tokens per shard to
// spare: the positions wrk's slower thread had not reached when a run
// ended are skipped (the next run starts after the furthest), and up to 64
// requests are in flight at once. With -threads above 2, each thread alone
// cycles through fewer than 2×auth.SeenMax tokens, and the guarantee rests on
// the other threads' progress too.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastgate/fastgate/auth"
)

// tokenFile is the file in a scenario's dir that holds its tokens, one per
// line, for wrk's script.
const tokenFile = "tokens.txt"

// prepareTokens mints n tokens for k, sub "0" to "n-1", writes them to
// path one per line, and returns them as Authorization values.
func prepareTokens(k *jwtKeys, path string, n int) ([][]byte, error) {
	toks, err := mintTokens(k, n, time.Now())
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	bearers := make([][]byte, n)
	for i, t := range toks {
		b.WriteString(t)
		b.WriteByte('\n')
		bearers[i] = []byte("Bearer " + t)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return bearers, nil
}

// mintTokens mints n tokens with the gateway's own auth.Mint, token i with
// sub i, on every CPU: about 140 µs of CPU each on the reference machine
// (65536 in 4.7 s on its 2 cores), most of it the signature and
// auth.Mint reading the key files again for each token.
func mintTokens(k *jwtKeys, n int, now time.Time) ([]string, error) {
	if n <= 0 {
		return nil, fmt.Errorf("bench: %d tokens to mint", n)
	}
	cfg := k.mintConfig()
	toks := make([]string, n)
	workers := min(runtime.GOMAXPROCS(0), n)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n && errs[w] == nil; i += workers {
				toks[i], errs[w] = auth.Mint(cfg, strconv.Itoa(i), jwtTTL, now)
			}
		})
	}
	wg.Wait()
	return toks, errors.Join(errs...)
}

// tokenCycle hands out Authorization values in turn from a start position.
//
// It is safe calling tokenCycle methods from concurrently running
// goroutines.
type tokenCycle struct {
	vals [][]byte // immutable
	next atomic.Int64
}

func newTokenCycle(vals [][]byte, start int64) *tokenCycle {
	c := &tokenCycle{vals: vals}
	c.next.Store(start)
	return c
}

// take returns the next value. It does not allocate.
func (c *tokenCycle) take() []byte {
	i := c.next.Add(1) - 1
	return c.vals[i%int64(len(c.vals))]
}

// pos is the position the next take hands out.
func (c *tokenCycle) pos() int64 { return c.next.Load() }

// readCursor returns the position saved in path, 0 when there is no file
// yet.
func readCursor(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bench: %s: bad token cursor %q", path, bytes.TrimSpace(b))
	}
	return n, nil
}

// writeCursor saves pos in path, as wrk's script does.
func writeCursor(path string, pos int64) error {
	return os.WriteFile(path, []byte(strconv.FormatInt(pos, 10)+"\n"), 0o644)
}
