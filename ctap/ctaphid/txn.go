package ctaphid

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// txn is a request handed to the Handler (CBOR, MSG or WINK). It owns the busy slot from dispatch until
// its response is queued, or until it is aborted (INIT resync, PowerCycle, port close).
type txn struct {
	cid    uint32
	cmd    byte
	port   *Port
	ctx    jobCtx        // what the handler gets: cancelled by CANCEL, carries the channel
	status atomic.Uint32 // keepalive status byte

	// mu orders keepalives before the response: both are queued under it, and no keepalive is
	// queued once finished or aborted is set.
	mu       sync.Mutex
	finished bool
	aborted  bool
	kaEvery  time.Duration // 0: no keepalives for this request
	kaDue    time.Time     // the next keepalive, on the device's clock; guarded by Device.mu

	// ended is set, and done (if a later job asked for it) closed, when the job's handler has
	// returned and its response is out: the next job's handler starts only then. done is made
	// only for a job that is still running when the next one starts (an aborted handler still
	// finishing), so a request costs no channel. Both are guarded by Device.mu.
	ended bool
	done  chan struct{}
}

// endedChan returns a channel closed when t's job has ended (nil if it has). Called with
// Device.mu held.
func (t *txn) endedChan() <-chan struct{} {
	if t == nil || t.ended {
		return nil
	}
	if t.done == nil {
		t.done = make(chan struct{})
	}
	return t.done
}

// jobEnded marks t's job as ended and wakes the job waiting for it, if any.
func (d *Device) jobEnded(t *txn) {
	d.mu.Lock()
	t.ended = true
	if t.done != nil {
		close(t.done)
	}
	d.mu.Unlock()
}

// startJob hands msg to the handler on a new goroutine. Jobs run one after another: each waits for
// the previous one's handler to return, so an aborted handler still finishing never overlaps the next.
func (d *Device) startJob(p *Port, msg Message) {
	t := &txn{cid: msg.CID, cmd: msg.Cmd, port: p, ctx: jobCtx{cid: msg.CID},
		kaEvery: d.timing.KeepaliveInterval}
	t.status.Store(uint32(StatusProcessing))
	if t.cmd == CmdCBOR && !d.timing.NoKeepalive {
		// Keepalives only while a CBOR request is being processed: Windows rejects a key that sends
		// them at other times. The period starts now, even if an aborted handler is still finishing.
		t.kaDue = d.clock.Now().Add(t.kaEvery)
		if !d.kaArmed || d.kaTimerDue.After(t.kaDue) {
			d.armKeepalive(t.kaEvery, t.kaDue)
		}
	} else {
		t.kaEvery = 0
	}
	prev := d.lastJob.endedChan()
	d.lastJob = t
	d.txn = t
	j := job{t: t, prev: prev, req: msg.Payload}
	if p.pulls && t.cmd == CmdCBOR {
		// The host runs its requests itself while it waits for the answer (RunPending). If it
		// does not come for this one soon, a worker takes it, so the request runs either way.
		if d.pull.t != nil {
			d.launch(d.pull) // an aborted job its host never took: a worker lets it end in order
		}
		d.pull = j
		if !d.pullArmed {
			if d.pullTimer == nil {
				d.pullTimer = time.AfterFunc(d.pullGrace, d.pullExpired)
			} else {
				d.pullTimer.Reset(d.pullGrace)
			}
			d.pullArmed = true
		}
		return
	}
	d.launch(j)
}

// launch hands j to a worker goroutine: one that just finished a job and waits for the next, or
// a new one.
func (d *Device) launch(j job) {
	select {
	case d.idle <- j:
	default:
		go d.worker(j)
	}
}

// DefaultPullGrace is how long a CBOR request waits for its host to run it (Port.RunPending)
// before a worker takes it. A host that pulls does so right after writing the request's last
// report, so this only matters when it was descheduled in between, or does not pull that
// request after all. Like workerIdle it is wall time: it manages goroutines, not the key's
// behaviour.
const DefaultPullGrace = 2 * time.Millisecond

// pullExpired runs on the pull timer, every pull grace while requests wait for their hosts. A
// request still waiting that was already waiting at the previous tick goes to a worker; so one
// waits between one and two grace periods, and a request pulled in time costs no timer operation.
func (d *Device) pullExpired() {
	d.mu.Lock()
	j := d.pull
	switch {
	case j.t == nil:
		d.pullArmed, d.pullSeen = false, nil
		d.mu.Unlock()
		return
	case j.t != d.pullSeen:
		d.pullSeen = j.t
		d.pullTimer.Reset(d.pullGrace)
		d.mu.Unlock()
		return
	}
	d.pull = job{}
	d.pullArmed, d.pullSeen = false, nil
	d.mu.Unlock()
	d.launch(j)
}

// RunPending runs, on the calling goroutine, the CBOR request this port's host sent last, if no
// worker has taken it yet, and reports whether it did. The first call marks the port's host as
// one that pulls: from then on its CBOR requests wait up to the pull grace (WithPullGrace) for it
// before a worker runs them, so a host that does not pull a request after all is only slower. A host in the same process calls it right after writing a request, before reading the
// answer (transport/inproc's Conn, through ctaphid.Client): the request then costs no hand-off
// between goroutines, as a key's firmware runs a request in its main loop. Everything else is as
// when a worker runs it: keepalives go out on their timer, CANCEL and INIT from any goroutine
// reach the handler through its context, other channels are BUSY meanwhile, and the response is
// sent before RunPending returns. The caller is the handler's goroutine until it returns, so a
// host that wants to give up early must send CANCEL from elsewhere (ctaphid.Client does when its
// context ends); the Handler contract (return soon after cancellation) bounds the wait.
func (p *Port) RunPending() bool {
	d := p.d
	d.mu.Lock()
	p.pulls = true
	j := d.pull
	if j.t == nil || j.t.port != p {
		d.mu.Unlock()
		return false
	}
	d.pull = job{}
	d.mu.Unlock()
	d.run(j.t, j.prev, j.req)
	return true
}

// job is one startJob hand-off to a worker goroutine.
type job struct {
	t    *txn
	prev <-chan struct{}
	req  []byte
}

// workerIdle is how long a worker waits for the next job before exiting. Reusing the goroutine
// matters for speed: a fresh goroutine starts with a small stack and the CBOR decoder's deep frames
// made every request pay for growing (copying) it, about a tenth of a getAssertion's CPU. Back-to-back
// requests from a host or a test suite come well within this window; an idle key keeps no goroutine.
// It is wall time whatever the device's clock: it manages goroutines, not the key's behaviour, and
// a virtual clock that nobody moves would keep every worker forever.
const workerIdle = 250 * time.Millisecond

// worker runs j and then any job startJob hands it while idle. Handing a job only to a worker
// already waiting in select (never queueing) keeps startJob non-blocking and leaves the ordering of
// jobs to the prev chain, exactly as with one goroutine per job.
func (d *Device) worker(j job) {
	var idle *time.Timer
	for {
		d.run(j.t, j.prev, j.req)
		j = job{}
		if idle == nil {
			idle = time.NewTimer(workerIdle)
		} else {
			idle.Reset(workerIdle)
		}
		select {
		case j = <-d.idle:
		case <-idle.C:
			return
		}
	}
}

func (d *Device) run(t *txn, prev <-chan struct{}, req []byte) {
	defer d.jobEnded(t)
	defer t.ctx.cancel()
	if prev != nil {
		<-prev
	}
	t.mu.Lock()
	skip := t.aborted
	t.mu.Unlock()
	if skip {
		return
	}
	var resp []byte
	d.running.Store(t) // for setStatus: handlers never overlap, so it is this one's
	defer d.running.Store(nil)
	switch t.cmd {
	case CmdCBOR:
		resp = d.h.HandleCBOR(&t.ctx, req, d.setStatus)
	case CmdMsg:
		resp = d.h.HandleMSG(&t.ctx, req)
	case CmdWink:
		d.h.Wink()
	}
	// Free the busy slot before the response leaves, so a host that answers at once is not told BUSY.
	d.mu.Lock()
	if d.txn == t {
		d.txn = nil
	}
	d.mu.Unlock()
	t.mu.Lock()
	t.finished = true // from here on no keepalive is queued
	deliver := !t.aborted
	t.mu.Unlock()
	if deliver {
		// Written from this goroutine when the port is idle: one hand-off fewer per request. A
		// keepalive queued before finished was set still goes out first (sendNow queues behind it).
		t.port.sendNow(t.cid, t.cmd, resp)
	}
}

func (d *Device) armKeepalive(in time.Duration, due time.Time) {
	if d.kaTimer == nil {
		d.kaTimer = d.clock.AfterFunc(in, d.keepalive)
	} else {
		d.kaTimer.Reset(in)
	}
	d.kaArmed, d.kaTimerDue = true, due
}

// keepalive runs on the keepalive timer: it sends the running CBOR request's keepalive when it is
// due, and re-arms for the next one. Armed for an earlier request (the timer is never stopped), it
// finds the current one's keepalive still ahead and re-arms for it; with no request running it
// stays quiet until the next one arms it.
func (d *Device) keepalive() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.kaArmed = false
	t := d.txn
	if t == nil || t.kaEvery == 0 {
		return
	}
	now := d.clock.Now()
	if left := t.kaDue.Sub(now); left > 0 {
		d.armKeepalive(left, t.kaDue)
		return
	}
	t.mu.Lock()
	if !t.finished && !t.aborted {
		t.port.send(t.cid, CmdKeepalive, oneByte(byte(t.status.Load())))
	}
	t.mu.Unlock()
	t.kaDue = now.Add(t.kaEvery)
	d.armKeepalive(t.kaEvery, t.kaDue)
}

// abortTxn drops the current request without a response. Called with d.mu held.
func (d *Device) abortTxn() {
	t := d.txn
	if t == nil {
		return
	}
	d.txn = nil
	t.mu.Lock()
	t.aborted = true
	t.mu.Unlock()
	t.ctx.cancel()
}

// jobCtx is a request's context: cancelled by CANCEL, INIT on its channel, a power cycle or the
// port closing, and carrying the channel it came on (Channel). It lives inside the txn and makes
// its Done channel only when someone waits on it, so a request that never waits (most: the user
// answers at once) costs no allocation for its context; context.WithCancel cost two and a
// cancellation's bookkeeping. Contexts derived from it register through AfterFunc, as from a
// context of the standard library.
type jobCtx struct {
	cid uint32

	mu     sync.Mutex
	done   chan struct{} // made by the first Done
	err    error
	afters []*afterFn
}

type afterFn struct{ f func() }

var _ context.Context = (*jobCtx)(nil)

// Deadline: a request has none; the host's CANCEL ends it.
func (c *jobCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done returns a channel closed when the request is cancelled.
func (c *jobCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		}
	}
	return c.done
}

// Err is context.Canceled once the request is cancelled.
func (c *jobCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

type channelKey struct{}

// Value answers Channel's key with the channel.
func (c *jobCtx) Value(key any) any {
	if key == (channelKey{}) {
		return c.cid
	}
	return nil
}

// AfterFunc calls f in its own goroutine once the request is cancelled (at once if it is), as
// context.AfterFunc does; stop unregisters f and reports whether it did so before f was started.
// context.WithCancel and friends use it to follow a jobCtx without a goroutine of their own.
func (c *jobCtx) AfterFunc(f func()) (stop func() bool) {
	a := &afterFn{f: f}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	c.afters = append(c.afters, a)
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.afters {
			if x == a {
				c.afters = append(c.afters[:i], c.afters[i+1:]...)
				return true
			}
		}
		return false
	}
}

func (c *jobCtx) cancel() {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = context.Canceled
	if c.done != nil {
		close(c.done)
	}
	afters := c.afters
	c.afters = nil
	c.mu.Unlock()
	for _, a := range afters {
		go a.f()
	}
}

// Channel returns the CTAPHID channel of the request whose context ctx is (or derives from), as a
// Device passes it to its Handler: state that must stay with the host that created it, such as
// a getAssertion's remaining credentials for getNextAssertion, is tied to it. ok is false for a
// context that did not come from a Device.
func Channel(ctx context.Context) (cid uint32, ok bool) {
	cid, ok = ctx.Value(channelKey{}).(uint32)
	return cid, ok
}
