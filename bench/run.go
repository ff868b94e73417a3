package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Run performs one benchmark and returns what it measured. It stops by
// itself: every phase is bounded by cfg's durations and timeouts. Cancel
// ctx to stop earlier; the connections are then closed and ctx's error is
// returned.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg}
	r.phase.Store("starting")
	return r.run(ctx)
}

type runner struct {
	cfg      Config
	targets  []Target
	channels []string
	runID    string
	hc       *http.Client
	shards   []shard
	res      *Result
	pub      atomic.Pointer[publisher]
	phase    atomic.Value // string, for progress lines
	start    time.Time

	clientRSSBefore int64 // the shards' RSS before they opened connections

	warnMu sync.Mutex
	warned map[string]bool
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	cfg := r.cfg
	for _, u := range cfg.URLs {
		t, _ := ParseTarget(u) // checked by withDefaults
		r.targets = append(r.targets, t)
	}
	var id [4]byte
	_, _ = rand.Read(id[:])
	r.runID = hex.EncodeToString(id[:])
	for k := range cfg.Channels {
		r.channels = append(r.channels, cfg.ChannelPrefix+r.runID+"-"+strconv.Itoa(k))
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true, IdleConnTimeout: 30 * time.Second}
	r.hc = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	r.start = time.Now()
	r.res = &Result{
		Mode: cfg.Mode, URLs: cfg.URLs, Conns: cfg.Conns, Channels: cfg.Channels, Workers: cfg.Workers,
		Client: cfg.Client, Transport: cfg.Transport, OneUser: cfg.OneUser, Duration: cfg.Duration.Seconds(), StartedAt: r.start, LoadAvgStart: loadAvg(),
	}
	if cfg.Client == ClientReactor && !reactorAvailable {
		r.res.Client = ClientGoroutine
	}
	if cfg.publishes() {
		r.res.Rate, r.res.PayloadBytes = cfg.Rate, cfg.Payload
	}
	if cfg.APIKey == "" {
		r.warn("no API key: server figures (RSS, CPU, goroutines) are not measured")
	}
	for _, t := range r.targets {
		r.res.Nodes = append(r.res.Nodes, NodeResult{URL: t.Base})
	}

	if err := r.startShards(ctx); err != nil {
		return nil, err
	}
	defer func() {
		for _, s := range r.shards {
			s.abort()
		}
	}()
	stopProgress := r.progressLoop()
	var err error
	switch {
	case cfg.Mode == ModeConnect:
		err = r.connect(ctx)
	case cfg.publishes():
		err = r.fanout(ctx)
	default:
		err = r.idle(ctx)
	}
	stopProgress()
	r.res.LoadAvgEnd = loadAvg()
	if err != nil {
		return r.res, err
	}
	return r.res, nil
}

// startShards splits the connections over this process or the worker
// processes, and gets each ready to dial.
func (r *runner) startShards(ctx context.Context) error {
	cfg := r.cfg
	sources := cfg.SourceAddrs
	if len(sources) == 0 && r.allLoopback() {
		n := max(4, (cfg.Conns+999)/1000, cfg.Workers)
		sources = sourceAddrs(mrand.IntN(253*40), n)
	}
	spec := groupSpec{
		Targets:        r.targets,
		Channels:       r.channels,
		Subscribe:      cfg.Mode != ModeConnect,
		Secret:         cfg.Secret,
		RunID:          r.runID,
		Client:         cfg.Client,
		Loops:          cfg.Loops,
		ConnectTimeout: cfg.ConnectTimeout,
		TokenTTL:       cfg.Duration + cfg.SettleTimeout + cfg.Drain + time.Hour,
		ReadPause:      cfg.ReadPause,
		Codec:          cfg.Codec,
		OneUser:        cfg.OneUser,
		Transport:      cfg.Transport,
	}
	if cfg.Workers == 0 {
		spec.Count, spec.Sources, spec.Concurrency = cfg.Conns, sources, cfg.Concurrency
		g, err := newGroup(spec)
		if err != nil {
			return err
		}
		if err := g.prepare(); err != nil {
			return err
		}
		r.shards = []shard{&localShard{g: g}}
		r.res.ClientSide.Processes = 1
		return nil
	}
	r.phase.Store("starting workers")
	w := cfg.Workers
	specs := make([]groupSpec, w)
	first := 0
	for k := range w {
		s := spec
		s.First = first
		s.Count = cfg.Conns / w
		if k < cfg.Conns%w {
			s.Count++
		}
		first += s.Count
		s.Concurrency = max(1, cfg.Concurrency/w)
		s.Sources = nil
		for j := k; j < len(sources); j += w {
			s.Sources = append(s.Sources, sources[j])
		}
		if len(s.Sources) == 0 && len(sources) > 0 {
			s.Sources = []string{sources[k%len(sources)]}
		}
		specs[k] = s
	}
	shards := make([]shard, w)
	errs := make([]error, w)
	var wg sync.WaitGroup
	for k := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs, err := startRemote(ctx, cfg, specs[k])
			if err != nil {
				errs[k] = err
				return
			}
			shards[k] = rs
		}()
	}
	wg.Wait()
	for _, s := range shards {
		if s != nil {
			r.shards = append(r.shards, s)
		}
	}
	r.res.ClientSide.Processes = 1 + len(r.shards)
	return errors.Join(errs...)
}

func (r *runner) allLoopback() bool {
	for _, t := range r.targets {
		if !t.loopback() {
			return false
		}
	}
	return true
}

// openAll opens every shard's connections at once and fills in
// Result.Connect. It returns the opened connections by [node][channel].
func (r *runner) openAll(ctx context.Context) ([][]int, error) {
	r.phase.Store("opening")
	reps := make([]openReport, len(r.shards))
	errs := make([]error, len(r.shards))
	var wg sync.WaitGroup
	for k, s := range r.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[k], errs[k] = s.open(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c := &r.res.Connect
	c.Errors = map[string]int{}
	hs := newHist()
	conns := make([][]int, len(r.targets))
	for i := range conns {
		conns[i] = make([]int, len(r.channels))
	}
	var start, end int64
	for _, rep := range reps {
		r.clientRSSBefore += rep.RSSBefore
		c.Opened += rep.Opened
		c.Failed += rep.Failed
		for k, v := range rep.Errors {
			c.Errors[k] += v
		}
		if start == 0 || rep.StartNS < start {
			start = rep.StartNS
		}
		end = max(end, rep.EndNS)
		if err := mergeEncoded(hs, rep.Handshake); err != nil {
			return nil, err
		}
		for n := range rep.Conns {
			for ch := range rep.Conns[n] {
				if n < len(conns) && ch < len(conns[n]) {
					conns[n][ch] += rep.Conns[n][ch]
				}
			}
		}
	}
	if len(c.Errors) == 0 {
		c.Errors = nil
	}
	c.Seconds = float64(end-start) / 1e9
	if c.Seconds > 0 {
		c.PerSecond = float64(c.Opened) / c.Seconds
	}
	c.Handshake = percentiles(hs)
	for n := range conns {
		for _, v := range conns[n] {
			r.res.Nodes[n].Conns += v
		}
	}
	if c.Failed > 0 {
		r.warn(fmt.Sprintf("%d of %d connections failed to open", c.Failed, r.cfg.Conns))
	}
	return conns, nil
}

// closeAll closes every shard and merges their reports.
func (r *runner) closeAll(ctx context.Context) ([]closeReport, error) {
	r.phase.Store("closing")
	reps := make([]closeReport, len(r.shards))
	errs := make([]error, len(r.shards))
	var wg sync.WaitGroup
	for k, s := range r.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[k], errs[k] = s.close(ctx)
		}()
	}
	wg.Wait()
	for _, rep := range reps {
		for code, n := range rep.Lost {
			if r.res.Lost == nil {
				r.res.Lost = map[string]int{}
			}
			r.res.Lost[code] += n
		}
	}
	return reps, errors.Join(errs...)
}

func (r *runner) connect(ctx context.Context) error {
	before := r.statsAll(ctx)
	if _, err := r.openAll(ctx); err != nil {
		return err
	}
	after := r.statsAll(ctx)
	r.fillNodes(before, after)
	r.clientFigures()
	if cpu := r.serverCPU(); cpu > 0 && r.res.Connect.Opened > 0 {
		r.res.Connect.ServerCPUPerConnUS = cpu / float64(r.res.Connect.Opened) * 1e6
	}
	_, err := r.closeAll(ctx)
	return err
}

func (r *runner) idle(ctx context.Context) error {
	cfg := r.cfg
	before := r.statsAll(ctx)
	if _, err := r.openAll(ctx); err != nil {
		return err
	}
	r.phase.Store("holding")
	atHold := r.statsAll(ctx)
	held := time.Now()
	afterAt := held
	deadline := held.Add(cfg.Duration + cfg.SettleTimeout)
	const window = 5
	var samples [][]*ServerStats
	after := before
	settled := false
	tick := time.NewTicker(time.Second)
	for !settled && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			tick.Stop()
			_, _ = r.closeAll(context.Background())
			return ctx.Err()
		case <-tick.C:
		}
		after = r.statsAll(ctx)
		afterAt = time.Now()
		samples = append(samples, after)
		if len(samples) > window {
			samples = samples[1:]
		}
		if time.Since(held) >= cfg.Duration {
			settled = cfg.APIKey == "" || (len(samples) == window && rssSettled(samples))
		}
	}
	tick.Stop()
	idle := &IdleResult{Settled: settled, HeldSeconds: time.Since(held).Seconds()}
	r.res.Idle = idle
	idle.ServerCPUCores = heldCPU(atHold, after, afterAt.Sub(held))
	r.fillNodes(before, after)
	var conns int
	var drss, dheap, dstack, dgor float64
	for n, nr := range r.res.Nodes {
		if before[n] == nil || after[n] == nil || nr.Conns == 0 {
			continue
		}
		conns += nr.Conns
		d := float64(after[n].RSSBytes - before[n].RSSBytes)
		r.res.Nodes[n].RSSPerConn = d / float64(nr.Conns)
		drss += d
		dheap += float64(after[n].HeapBytes) - float64(before[n].HeapBytes)
		dstack += float64(after[n].StackBytes) - float64(before[n].StackBytes)
		dgor += float64(after[n].Goroutines - before[n].Goroutines)
	}
	if conns > 0 {
		idle.RSSPerConn, idle.HeapPerConn = drss/float64(conns), dheap/float64(conns)
		idle.StackPerConn, idle.GoroutinesPerConn = dstack/float64(conns), dgor/float64(conns)
	}
	r.clientFigures()
	if opened := r.res.Connect.Opened; opened > 0 {
		idle.ClientRSSPerConn = float64(r.clientRSSGrowth()) / float64(opened)
	}
	reps, err := r.closeAll(ctx)
	for _, rep := range reps {
		idle.Pings += rep.Pings
	}
	return err
}

// heldCPU is the nodes' CPU time between two stats samples taken span
// apart, in cores (0 when a sample is missing).
func heldCPU(from, to []*ServerStats, span time.Duration) float64 {
	var cpu float64
	for n := range from {
		if from[n] == nil || n >= len(to) || to[n] == nil {
			return 0
		}
		cpu += to[n].CPUSeconds - from[n].CPUSeconds
	}
	if span <= 0 {
		return 0
	}
	return cpu / span.Seconds()
}

// rssSettled reports whether every node's RSS moved by less than 1% over
// the samples and no sample is missing.
func rssSettled(samples [][]*ServerStats) bool {
	for n := range samples[0] {
		lo, hi := int64(-1), int64(0)
		for _, s := range samples {
			if s[n] == nil {
				return false
			}
			v := s[n].RSSBytes
			if lo < 0 || v < lo {
				lo = v
			}
			hi = max(hi, v)
		}
		if hi > 0 && float64(hi-lo) > 0.01*float64(hi) {
			return false
		}
	}
	return true
}

func (r *runner) fanout(ctx context.Context) error {
	cfg := r.cfg
	conns, err := r.openAll(ctx)
	if err != nil {
		return err
	}
	p := newPublisher(cfg, r.targets, r.channels, r.hc)
	if cfg.PublishVia == PublishWS {
		if err := p.openWS(ctx, r.runID); err != nil {
			_, _ = r.closeAll(context.Background())
			return err
		}
		defer p.close()
	}
	r.pub.Store(p)
	before := r.statsAll(ctx)
	cpu0 := r.clientCPU()
	r.phase.Store("publishing")
	p.run(ctx)

	// Wait for the deliveries still in flight.
	r.phase.Store("draining")
	expected := func() int64 { rep := p.report(); return r.expected(conns, &rep) }
	ended := time.Now()
	last, lastChange := int64(-1), time.Now()
	for ctx.Err() == nil && time.Since(ended) < cfg.Drain {
		got := r.deliveries()
		if got >= expected() && (cfg.PublishVia == PublishAPI || p.accepted()+p.failed.Load() >= p.report().Attempts) {
			break
		}
		if got != last {
			last, lastChange = got, time.Now()
		} else if time.Since(lastChange) > 3*time.Second {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	after := r.statsAll(ctx)
	cpu1 := r.clientCPU()
	pr := p.report()
	reps, cerr := r.closeAll(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}

	f := &FanoutResult{
		Published:      pr.total(),
		PublishErrors:  pr.Errors,
		PublishLate:    pr.Late,
		PublishUnsent:  pr.Unsent,
		PublishSeconds: pr.End.Sub(pr.Start).Seconds(),
	}
	if len(f.PublishErrors) == 0 {
		f.PublishErrors = nil
	}
	r.res.Fanout = f
	r.fillNodes(before, after)
	lat := newHist()
	var wireBytes uint64
	for _, rep := range reps {
		if err := mergeEncoded(lat, rep.Latency); err != nil {
			return err
		}
		for n := range rep.Counts {
			for ch, cc := range rep.Counts[n] {
				if n >= len(r.res.Nodes) || ch >= len(r.channels) {
					continue
				}
				nr := &r.res.Nodes[n]
				nr.Deliveries += int64(cc.Unique)
				nr.Duplicates += int64(cc.Dups)
				wireBytes += cc.WireBytes
			}
		}
	}
	for n := range r.res.Nodes {
		nr := &r.res.Nodes[n]
		for ch := range r.channels {
			nr.Expected += int64(conns[n][ch]) * r.published(&pr, n, ch)
		}
		nr.Missing = max(0, nr.Expected-nr.Deliveries)
		f.Expected += nr.Expected
		f.Deliveries += nr.Deliveries
		f.Missing += nr.Missing
		f.Duplicates += nr.Duplicates
	}
	f.Latency = percentiles(lat)
	if f.PublishSeconds > 0 {
		f.DeliveriesPerSec = float64(f.Deliveries) / f.PublishSeconds
	}
	f.ServerCPUSeconds = r.serverCPU()
	f.Codec = r.cfg.Codec
	if f.Deliveries > 0 {
		f.WireBytesPerDelivery = float64(wireBytes) / float64(f.Deliveries)
		f.CPUPerDeliveryUS = f.ServerCPUSeconds / float64(f.Deliveries) * 1e6
		f.ClientCPUPerDeliveryUS = (cpu1 - cpu0) / float64(f.Deliveries) * 1e6
	}
	r.clientFigures()
	if f.Missing > 0 {
		r.warn(fmt.Sprintf("%d deliveries missing", f.Missing))
	}
	if pr.Unsent > 0 {
		r.warn(fmt.Sprintf("%d scheduled publishes were not sent: the publishers were still behind %v after the duration (raise --publishers)", pr.Unsent, publishGrace))
	}
	if pr.Late > 0 {
		r.warn(fmt.Sprintf("%d publishes started more than 10ms late: the publisher could not keep the rate", pr.Late))
	}
	return cerr
}

// published is how many publishes channel ch of node n received.
func (r *runner) published(pr *pubReport, n, ch int) int64 {
	if r.cfg.PublishTo == PublishAll {
		return pr.OK[n][ch]
	}
	return pr.OK[0][ch]
}

func (r *runner) expected(conns [][]int, pr *pubReport) int64 {
	var e int64
	for n := range conns {
		for ch := range conns[n] {
			e += int64(conns[n][ch]) * r.published(pr, n, ch)
		}
	}
	return e
}

func (r *runner) deliveries() int64 {
	var n int64
	for _, s := range r.shards {
		n += int64(s.progress().Deliveries)
	}
	return n
}

// clientCPU is the CPU time of this process and of the workers.
func (r *runner) clientCPU() float64 {
	cpu := processCPU()
	for _, s := range r.shards {
		if _, ok := s.(*remoteShard); ok {
			cpu += s.progress().CPU
		}
	}
	return cpu
}

// clientRSSGrowth is how much the processes that hold connections grew
// since before they opened them.
func (r *runner) clientRSSGrowth() int64 {
	var d int64
	for _, s := range r.shards {
		p := s.progress()
		d += p.RSS
	}
	return d - r.clientRSSBefore
}

func (r *runner) clientFigures() {
	cs := &r.res.ClientSide
	cs.RSSBytes, cs.CPUSeconds = processRSS(), processCPU()
	for _, s := range r.shards {
		if _, ok := s.(*remoteShard); ok {
			p := s.progress()
			cs.RSSBytes += p.RSS
			cs.CPUSeconds += p.CPU
		}
	}
}

func (r *runner) fillNodes(before, after []*ServerStats) {
	for n := range r.res.Nodes {
		nr := &r.res.Nodes[n]
		nr.Before, nr.After = before[n], after[n]
		if before[n] != nil && after[n] != nil {
			nr.CPUSeconds = after[n].CPUSeconds - before[n].CPUSeconds
		}
	}
}

func (r *runner) serverCPU() float64 {
	var s float64
	for _, n := range r.res.Nodes {
		s += n.CPUSeconds
	}
	return s
}

// statsAll fetches every node's stats (nil where that fails).
func (r *runner) statsAll(ctx context.Context) []*ServerStats {
	out := make([]*ServerStats, len(r.targets))
	if r.cfg.APIKey == "" {
		return out
	}
	for n, t := range r.targets {
		st, err := fetchStats(ctx, r.hc, t, r.cfg.APIKey)
		if err != nil {
			r.warn(err.Error())
			continue
		}
		out[n] = &st
	}
	return out
}

func (r *runner) warn(msg string) {
	r.warnMu.Lock()
	defer r.warnMu.Unlock()
	if r.warned == nil {
		r.warned = map[string]bool{}
	}
	if r.warned[msg] {
		return
	}
	r.warned[msg] = true
	r.res.Warnings = append(r.res.Warnings, msg)
}

// progressLoop prints a progress line every second until stopped.
func (r *runner) progressLoop() (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var lastDel int64
		var lastCPU float64
		lastT := time.Now()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			now := time.Now()
			var open, del int64
			for _, s := range r.shards {
				p := s.progress()
				open += p.Open
				del += int64(p.Deliveries)
			}
			dt := now.Sub(lastT).Seconds()
			var b strings.Builder
			fmt.Fprintf(&b, "[%6.1fs] %-10s conns %d", now.Sub(r.start).Seconds(), r.phase.Load(), open)
			if p := r.pub.Load(); p != nil {
				fmt.Fprintf(&b, "  published %d (%d failed)  delivered %d (%.0f/s)", p.accepted(), p.failed.Load(), del, float64(del-lastDel)/dt)
			}
			if r.cfg.APIKey != "" {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				st, err := fetchStats(ctx, r.hc, r.targets[0], r.cfg.APIKey)
				cancel()
				if err == nil {
					cores := 0.0
					if lastCPU > 0 {
						cores = (st.CPUSeconds - lastCPU) / dt
					}
					lastCPU = st.CPUSeconds
					fmt.Fprintf(&b, "  | server: conns %d rss %s cpu %.2f cores goroutines %d", st.Connections, mib(st.RSSBytes), cores, st.Goroutines)
				}
			}
			b.WriteString("\n")
			_, _ = fmt.Fprint(r.cfg.Progress, b.String())
			lastDel, lastT = del, now
		}
	}()
	return func() { close(done); wg.Wait() }
}

// loadAvg reads /proc/loadavg (zeros where it is missing).
func loadAvg() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}
