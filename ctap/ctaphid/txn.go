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
	ctx    context.Context
	cancel context.CancelFunc
	status atomic.Uint32 // keepalive status byte

	// mu orders keepalives before the response: both are queued under it, and no keepalive is
	// queued once finished or aborted is set.
	mu        sync.Mutex
	finished  bool
	aborted   bool
	ka        *time.Timer
	kaEvery   time.Duration
	done      chan struct{}
	setStatus func(byte)
}

// startJob hands msg to the handler on a new goroutine. Jobs run one after another: each waits for
// the previous one's handler to return, so an aborted handler still finishing never overlaps the next.
func (d *Device) startJob(p *Port, msg Message) {
	ctx, cancel := context.WithCancel(context.Background())
	t := &txn{cid: msg.CID, cmd: msg.Cmd, port: p, ctx: ctx, cancel: cancel,
		kaEvery: d.cfg.keepalive, done: make(chan struct{})}
	t.status.Store(uint32(StatusProcessing))
	t.setStatus = func(s byte) { t.status.Store(uint32(s)) }
	if t.cmd == CmdCBOR && !d.cfg.noKeepalive {
		// Keepalives only while a CBOR request is being processed: Windows rejects a key that sends
		// them at other times. The period starts now, even if an aborted handler is still finishing.
		t.ka = time.AfterFunc(t.kaEvery, t.keepalive)
	}
	prev := d.lastDone
	d.lastDone = t.done
	d.txn = t
	go d.run(t, prev, msg.Payload)
}

func (d *Device) run(t *txn, prev <-chan struct{}, req []byte) {
	defer close(t.done)
	defer t.cancel()
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
	switch t.cmd {
	case CmdCBOR:
		resp = d.h.HandleCBOR(t.ctx, req, t.setStatus)
	case CmdMsg:
		resp = d.h.HandleMSG(t.ctx, req)
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
	t.finished = true
	if t.ka != nil {
		t.ka.Stop()
	}
	if !t.aborted {
		t.port.send(t.cid, t.cmd, resp)
	}
	t.mu.Unlock()
}

func (t *txn) keepalive() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.finished || t.aborted {
		return
	}
	t.port.send(t.cid, CmdKeepalive, oneByte(byte(t.status.Load())))
	t.ka.Reset(t.kaEvery)
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
	if t.ka != nil {
		t.ka.Stop()
	}
	t.mu.Unlock()
	t.cancel()
}
