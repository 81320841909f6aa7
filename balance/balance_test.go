package balance_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastgate/fastgate/balance"
	"github.com/fastgate/fastgate/config"
	"github.com/valyala/fasthttp"
)

// newService builds a service with one instance per weight, through
// config.Parse so that defaults are filled as in production. Nothing is
// dialled.
func newService(tb testing.TB, weights ...int) *balance.Service {
	tb.Helper()
	return newServiceWith(tb, "", weights...)
}

// newServiceWith is newService with extra TOML for the service (keys, then
// sub-tables such as [services.breaker]).
func newServiceWith(tb testing.TB, extra string, weights ...int) *balance.Service {
	tb.Helper()
	var b strings.Builder
	b.WriteString("[[services]]\nname = \"svc\"\n" + extra + "\n")
	for i, w := range weights {
		fmt.Fprintf(&b, "[[services.instances]]\nid = \"i%d\"\naddr = \"127.0.0.1:%d\"\nweight = %d\n", i, 10000+i, w)
	}
	c, err := config.Parse([]byte(b.String()))
	if err != nil {
		tb.Fatalf("config: %v", err)
	}
	return balance.New(&c.Services[0], balance.Options{})
}

// indexOf maps a picked instance back to its position; -1 for nil.
func indexOf(s *balance.Service, in *balance.Instance) int {
	for i, x := range s.Instances() {
		if x == in {
			return i
		}
	}
	if in == nil {
		return -1
	}
	panic("instance not in service: " + in.ID())
}

// picks returns the indexes of the next n sequential picks.
func picks(s *balance.Service, tried uint64, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = indexOf(s, s.Pick(tried))
	}
	return out
}

// count tallies indexes; nil picks are counted under -1.
func count(idx []int) map[int]int {
	m := map[int]int{}
	for _, i := range idx {
		m[i]++
	}
	return m
}

// reference is nginx's smooth weighted round-robin, written out plainly and
// without the gcd reduction, for steps picks.
func reference(weights []int, steps int) []uint8 {
	total := 0
	for _, w := range weights {
		if w > 0 {
			total += w
		}
	}
	cur := make([]int, len(weights))
	var seq []uint8
	for range steps {
		best := -1
		for i, w := range weights {
			if w <= 0 {
				continue
			}
			cur[i] += w
			if best == -1 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		seq = append(seq, uint8(best))
	}
	return seq
}

func TestSequence(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int
		want    []uint8
	}{
		{"5,1,1", []int{5, 1, 1}, []uint8{0, 0, 1, 0, 2, 0, 0}},
		{"3,1", []int{3, 1}, []uint8{0, 0, 1, 0}},
		{"1,3", []int{1, 3}, []uint8{1, 0, 1, 1}},
		{"1,1,1", []int{1, 1, 1}, []uint8{0, 1, 2}},
		{"2,0,1 zero never appears", []int{2, 0, 1}, []uint8{0, 2, 0}},
		{"2,1,0,3", []int{2, 1, 0, 3}, []uint8{3, 0, 1, 3, 0, 3}},
		{"5,1 (5,1,1 with one down)", []int{5, 1}, []uint8{0, 0, 0, 1, 0, 0}},
		{"4,2 reduced by gcd to 2,1", []int{4, 2}, []uint8{0, 1, 0}},
		{"1000,1000,1000 reduced to 1,1,1", []int{1000, 1000, 1000}, []uint8{0, 1, 2}},
		{"single", []int{7}, []uint8{0}},
		{"negative ignored", []int{-3, 2}, []uint8{1}},
		{"0,0", []int{0, 0}, nil},
		{"empty", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := balance.Sequence(tc.weights)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Sequence(%v) = %v, want %v", tc.weights, got, tc.want)
			}
		})
	}

	t.Run("64 instances", func(t *testing.T) {
		weights := make([]int, config.MaxInstances)
		total := 0
		for i := range weights {
			weights[i] = 2 * (i%7 + 1) // gcd 2
			total += weights[i]
		}
		seq := balance.Sequence(weights)
		if len(seq) != total/2 {
			t.Fatalf("len = %d, want %d", len(seq), total/2)
		}
		got := make([]int, len(weights))
		for _, i := range seq {
			got[i]++
		}
		for i, w := range weights {
			if got[i] != w/2 {
				t.Errorf("instance %d appears %d times, want %d", i, got[i], w/2)
			}
		}
		if ref := reference(weights, len(seq)); !reflect.DeepEqual(seq, ref) {
			t.Errorf("Sequence differs from the reference:\n got %v\nwant %v", seq, ref)
		}
	})

	t.Run("64 instances at max weight", func(t *testing.T) {
		weights := make([]int, config.MaxInstances)
		for i := range weights {
			weights[i] = 1000
		}
		seq := balance.Sequence(weights)
		if len(seq) != 64 {
			t.Fatalf("len = %d, want 64", len(seq))
		}
		for i, x := range seq {
			if int(x) != i {
				t.Fatalf("seq[%d] = %d, want %d", i, x, i)
			}
		}
	})

	// Against the plain nginx algorithm on random weights (fixed seed).
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 50 {
		weights := make([]int, 1+r.IntN(10))
		for i := range weights {
			weights[i] = r.IntN(12) * (1 + n%3) // some zeros, some common factors
		}
		t.Run(fmt.Sprint("random ", weights), func(t *testing.T) {
			seq := balance.Sequence(weights)
			g, total := 0, 0
			for _, w := range weights {
				total += w
				if w > 0 {
					for a, b := g, w; ; {
						if b == 0 {
							g = a
							break
						}
						a, b = b, a%b
					}
				}
			}
			if total == 0 {
				if seq != nil {
					t.Fatalf("Sequence(%v) = %v, want nil", weights, seq)
				}
				return
			}
			if ref := reference(weights, total/g); !reflect.DeepEqual(seq, ref) {
				t.Errorf("Sequence(%v) =\n %v, want\n %v", weights, seq, ref)
			}
		})
	}
}

func TestInstanceAccessors(t *testing.T) {
	s := newService(t, 3, 0, 1)
	if s.Name() != "svc" {
		t.Errorf("Name = %q", s.Name())
	}
	ins := s.Instances()
	if len(ins) != 3 {
		t.Fatalf("%d instances, want 3", len(ins))
	}
	for i, in := range ins {
		wantID, wantAddr, wantW := fmt.Sprintf("i%d", i), fmt.Sprintf("127.0.0.1:%d", 10000+i), []int{3, 0, 1}[i]
		if in.ID() != wantID || in.Addr() != wantAddr || in.Weight() != wantW || in.Service() != s ||
			!in.Healthy() || !in.Available() || in.InFlight() != 0 {
			t.Errorf("instance %d = %s %s w=%d healthy=%v in-flight=%d, want %s %s w=%d healthy",
				i, in.ID(), in.Addr(), in.Weight(), in.Healthy(), in.InFlight(), wantID, wantAddr, wantW)
		}
	}
}

// TestDoDeadlinePassed: a request whose deadline has passed is not sent
// (nothing listens on the instance's address: sending would be a dial
// error), and the error says so.
func TestDoDeadlinePassed(t *testing.T) {
	in := newService(t, 1).Instances()[0]
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://127.0.0.1:10000/x")
	for _, d := range []time.Duration{0, -time.Second} {
		if err := in.DoDeadline(req, resp, time.Now().Add(d)); err != balance.ErrDeadline {
			t.Errorf("deadline now%+v: %v, want balance.ErrDeadline", d, err)
		}
	}
	if n := in.InFlight(); n != 0 {
		t.Errorf("in flight %d after requests not sent", n)
	}
}

// TestPickSlidingWindow checks smoothness through Pick: with weights 3:1
// every 4 consecutive picks hold exactly 3 of the first instance.
func TestPickSlidingWindow(t *testing.T) {
	s := newService(t, 3, 1)
	seq := picks(s, 0, 4000)
	if want := []int{0, 0, 1, 0, 0, 0, 1, 0}; !reflect.DeepEqual(seq[:8], want) {
		t.Errorf("first picks = %v, want %v", seq[:8], want)
	}
	for i := 0; i+4 <= len(seq); i++ {
		if c := count(seq[i : i+4]); c[0] != 3 || c[1] != 1 {
			t.Fatalf("picks %d..%d = %v, want three 0 and one 1", i, i+3, seq[i:i+4])
		}
	}
}

func TestPickFollowsSequence(t *testing.T) {
	for _, weights := range [][]int{{5, 1, 1}, {2, 0, 1}, {1, 2, 3, 4}} {
		t.Run(fmt.Sprint(weights), func(t *testing.T) {
			s := newService(t, weights...)
			want := balance.Sequence(weights)
			for round := range 3 {
				for j, w := range want {
					if got := indexOf(s, s.Pick(0)); got != int(w) {
						t.Fatalf("round %d pick %d = %d, want %d (sequence %v)", round, j, got, w, want)
					}
				}
			}
		})
	}
}

func TestPickHealth(t *testing.T) {
	s := newService(t, 5, 1, 1)
	a, b, c := s.Instances()[0], s.Instances()[1], s.Instances()[2]

	steps := []struct {
		name        string
		in          *balance.Instance
		up          bool
		changed     bool
		healthy     int
		want        map[int]int // counts over 42 picks (a multiple of every period here)
		wantHealthy [3]bool
	}{
		{"b down", b, false, true, 2, map[int]int{0: 35, 2: 7}, [3]bool{true, false, true}},
		{"b down again", b, false, false, 2, map[int]int{0: 35, 2: 7}, [3]bool{true, false, true}},
		{"b up", b, true, true, 3, map[int]int{0: 30, 1: 6, 2: 6}, [3]bool{true, true, true}},
		{"b up again", b, true, false, 3, map[int]int{0: 30, 1: 6, 2: 6}, [3]bool{true, true, true}},
		{"a down", a, false, true, 2, map[int]int{1: 21, 2: 21}, [3]bool{false, true, true}},
		{"c down", c, false, true, 1, map[int]int{1: 42}, [3]bool{false, true, false}},
		{"b down: all down", b, false, true, 0, map[int]int{-1: 42}, [3]bool{false, false, false}},
		{"c up", c, true, true, 1, map[int]int{2: 42}, [3]bool{false, false, true}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if got := st.in.SetHealthy(st.up); got != st.changed {
				t.Errorf("SetHealthy(%v) changed = %v, want %v", st.up, got, st.changed)
			}
			if h, n := s.Counts(); h != st.healthy || n != 3 {
				t.Errorf("Counts = %d, %d, want %d, 3", h, n, st.healthy)
			}
			for i, in := range s.Instances() {
				if in.Healthy() != st.wantHealthy[i] || in.Available() != st.wantHealthy[i] {
					t.Errorf("instance %d healthy=%v available=%v, want %v", i, in.Healthy(), in.Available(), st.wantHealthy[i])
				}
			}
			if got := count(picks(s, 0, 42)); !reflect.DeepEqual(got, st.want) {
				t.Errorf("counts over 42 picks = %v, want %v", got, st.want)
			}
		})
	}
}

func TestPickTried(t *testing.T) {
	s := newService(t, 5, 1, 1)
	ins := s.Instances()
	all := uint64(0)
	for _, in := range ins {
		all = balance.Tried(all, in)
	}
	if all != 0b111 {
		t.Fatalf("Tried over all = %b, want 111", all)
	}
	for _, tc := range []struct {
		name  string
		tried []int
		may   map[int]bool // instances the picks may return; each must appear
	}{
		{"none", nil, map[int]bool{0: true, 1: true, 2: true}},
		{"a", []int{0}, map[int]bool{1: true, 2: true}},
		{"b", []int{1}, map[int]bool{0: true, 2: true}},
		{"a,b", []int{0, 1}, map[int]bool{2: true}},
		{"a,c", []int{0, 2}, map[int]bool{1: true}},
		{"all", []int{0, 1, 2}, map[int]bool{-1: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tried uint64
			for _, i := range tc.tried {
				tried = balance.Tried(tried, ins[i])
			}
			got := count(picks(s, tried, 70))
			for i := range got {
				if !tc.may[i] {
					t.Errorf("picked %d with tried %v: counts %v", i, tc.tried, got)
				}
			}
			for i := range tc.may {
				if got[i] == 0 {
					t.Errorf("never picked %d with tried %v: counts %v", i, tc.tried, got)
				}
			}
		})
	}

	t.Run("tried and down", func(t *testing.T) {
		s := newService(t, 1, 1, 1)
		ins := s.Instances()
		ins[2].SetHealthy(false)
		tried := balance.Tried(0, ins[0])
		if got := count(picks(s, tried, 30)); !reflect.DeepEqual(got, map[int]int{1: 30}) {
			t.Errorf("counts = %v, want only instance 1", got)
		}
		tried = balance.Tried(tried, ins[1])
		if in := s.Pick(tried); in != nil {
			t.Errorf("Pick = %s, want nil (one down, the others tried)", in.ID())
		}
	})
}

// TestPickSkipsUnavailable checks that Pick asks Available, not only the
// schedule: an instance whose breaker is open keeps a slot in the schedule
// (for its half-open probe) but is not returned until the breaker allows.
func TestPickSkipsUnavailable(t *testing.T) {
	s := newServiceWith(t, "[services.breaker]\nconsecutive_failures = 1\nopen_for = \"1h\"\nmax_open_for = \"1h\"", 1, 1, 1)
	a := s.Instances()[0]
	a.Record(true) // one failure trips the breaker
	if a.Available() || !a.Healthy() {
		t.Fatalf("after a failure: available=%v healthy=%v, want unavailable but healthy", a.Available(), a.Healthy())
	}
	got := count(picks(s, 0, 30))
	if got[0] != 0 || got[1] == 0 || got[2] == 0 || got[1]+got[2] != 30 {
		t.Errorf("counts = %v, want instances 1 and 2 only", got)
	}
	if in := s.Pick(balance.Tried(balance.Tried(0, s.Instances()[1]), s.Instances()[2])); in != nil {
		t.Errorf("Pick = %s, want nil: the only untried instance is ejected", in.ID())
	}
}

// TestPickConcurrent checks that concurrent picks share one schedule: every
// pick takes the next position, so over a whole number of periods the
// counts are exactly proportional to the weights.
func TestPickConcurrent(t *testing.T) {
	const goroutines, each = 8, 10000 // 80000 picks = 10000 periods of 8
	s := newService(t, 5, 2, 1)
	var wg sync.WaitGroup
	counts := make([][3]int, goroutines)
	nils := make([]int, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				in := s.Pick(0)
				if in == nil {
					nils[g]++
					continue
				}
				counts[g][indexOf(s, in)]++
			}
		})
	}
	wg.Wait()
	var total [3]int
	for g := range goroutines {
		if nils[g] != 0 {
			t.Errorf("goroutine %d got %d nil picks", g, nils[g])
		}
		for i := range total {
			total[i] += counts[g][i]
		}
	}
	if want := [3]int{50000, 20000, 10000}; total != want {
		t.Errorf("counts = %v, want %v", total, want)
	}
}

// TestSetHealthyConcurrent flips an instance from many goroutines while
// others pick; once they stop, the schedule must match the final flags.
func TestSetHealthyConcurrent(t *testing.T) {
	s := newService(t, 2, 1, 1)
	b := s.Instances()[1]
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for i := range 500 {
				b.SetHealthy(i%2 == 0) // i = 499 last: ends with false
			}
		})
	}
	var pickers sync.WaitGroup
	for range 2 {
		pickers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if s.Pick(0) == nil {
					t.Error("Pick returned nil with two instances always up")
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	pickers.Wait()

	// Every goroutine's last call sets false, so the last change was to
	// false, and the rebuild after it must have left b out.
	if b.Healthy() {
		t.Fatal("b healthy after every goroutine's last SetHealthy(false)")
	}
	if got := count(picks(s, 0, 30)); !reflect.DeepEqual(got, map[int]int{0: 20, 2: 10}) {
		t.Errorf("counts with b down = %v, want 0:20 2:10", got)
	}
	if h, n := s.Counts(); h != 2 || n != 3 {
		t.Errorf("Counts = %d, %d, want 2, 3", h, n)
	}
}

func TestCounts(t *testing.T) {
	s := newService(t, 1, 0, 4, 2)
	for _, tc := range []struct {
		down    []int
		up      []int
		healthy int
	}{
		{nil, nil, 4},
		{[]int{1}, nil, 3}, // a drained (weight 0) instance still counts as healthy until marked down
		{[]int{0, 3}, nil, 1},
		{nil, []int{1}, 2},
		{[]int{1, 2}, nil, 0},
		{nil, []int{0, 1, 2, 3}, 4},
	} {
		t.Run(fmt.Sprintf("down%v up%v", tc.down, tc.up), func(t *testing.T) {
			for _, i := range tc.down {
				s.Instances()[i].SetHealthy(false)
			}
			for _, i := range tc.up {
				s.Instances()[i].SetHealthy(true)
			}
			if h, n := s.Counts(); h != tc.healthy || n != 4 {
				t.Errorf("Counts = %d, %d, want %d, 4", h, n, tc.healthy)
			}
		})
	}
}

func TestDrainedNeverPicked(t *testing.T) {
	s := newService(t, 0, 1, 0)
	for i, x := range picks(s, 0, 20) {
		if x != 1 {
			t.Fatalf("pick %d = %d, want only instance 1", i, x)
		}
	}
	if in := s.Pick(balance.Tried(0, s.Instances()[1])); in != nil {
		t.Errorf("Pick = %s, want nil: only the drained instances are left", in.ID())
	}
}

func BenchmarkPick(b *testing.B) {
	s := newService(b, 5, 1, 1, 3)
	b.ReportAllocs()
	for b.Loop() {
		if s.Pick(0) == nil {
			b.Fatal("nil pick")
		}
	}
}

func BenchmarkPickParallel(b *testing.B) {
	s := newService(b, 5, 1, 1, 3)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if s.Pick(0) == nil {
				b.Error("nil pick")
				return
			}
		}
	})
}
