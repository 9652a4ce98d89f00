package authenticator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"

	"github.com/fidolab/fidolab/ctap"
)

// largeBlobHashLen is the truncated SHA-256 that ends every serialized large-blob array.
const largeBlobHashLen = 16

// largeBlobMinLength is the shortest serialized array: an empty CBOR array and its hash.
const largeBlobMinLength = 1 + largeBlobHashLen

// largeBlobWrite is a serialized large-blob array being written in fragments. It lives in RAM
// until its last fragment arrives and verifies; only then does it replace the stored array, so
// an interrupted or corrupt write leaves the previous array intact.
type largeBlobWrite struct {
	buf            []byte
	expectedLength uint64
}

// nextOffset is expectedNextOffset of §6.10.2: how much has been received.
func (w *largeBlobWrite) nextOffset() uint64 {
	if w == nil {
		return 0
	}
	return uint64(len(w.buf))
}

// maxLargeBlobFragment is maxFragmentLength: maxMsgSize minus room for the command's framing.
func (a *Authenticator) maxLargeBlobFragment() uint64 {
	return uint64(max(a.p.MaxMsgSize-64, 0))
}

// largeBlobs handles authenticatorLargeBlobs (CTAP 2.1 §6.10), with its checks in the
// spec's order.
func (a *Authenticator) largeBlobs(_ context.Context, r *request) (any, error) {
	// Decoded here rather than with ctap.DecodeLargeBlobs: §6.10.2 step 1 answers a missing
	// offset with CTAP1_ERR_INVALID_PARAMETER, not MISSING_PARAMETER.
	var req ctap.LargeBlobsRequest
	if err := ctap.Unmarshal(r.params, &req); err != nil {
		return nil, err
	}
	switch {
	case req.Offset == nil:
		return nil, ctap.Errorf(ctap.ErrInvalidParameter, "largeBlobs: offset missing")
	case req.Get == nil && req.Set == nil:
		return nil, ctap.Errorf(ctap.ErrInvalidParameter, "largeBlobs: neither get nor set")
	case req.Get != nil && req.Set != nil:
		return nil, ctap.Errorf(ctap.ErrInvalidParameter, "largeBlobs: both get and set")
	case req.Get != nil:
		return a.largeBlobGet(&req)
	default:
		return nil, a.largeBlobSet(&req)
	}
}

func (a *Authenticator) largeBlobGet(req *ctap.LargeBlobsRequest) (any, error) {
	if req.Length != nil {
		return nil, ctap.Errorf(ctap.ErrInvalidParameter, "largeBlobs get: length present")
	}
	if req.PinUvAuthParam != nil || req.PinUvAuthProtocol != nil {
		return nil, ctap.Errorf(ctap.ErrInvalidParameter, "largeBlobs get: pinUvAuth parameters present")
	}
	if *req.Get > a.maxLargeBlobFragment() {
		return nil, ctap.Errorf(ctap.ErrInvalidLength, "largeBlobs get: %d bytes exceeds maxFragmentLength", *req.Get)
	}
	blobs, err := a.st.LargeBlobs()
	if err != nil {
		return nil, mgmtStoreErr("reading large blobs", err)
	}
	off := *req.Offset
	if off > uint64(len(blobs)) {
		return nil, ctap.Errorf(ctap.ErrInvalidParameter, "largeBlobs get: offset beyond the array")
	}
	end := uint64(len(blobs))
	if *req.Get < end-off {
		end = off + *req.Get
	}
	return &ctap.LargeBlobsResponse{Config: blobs[off:end]}, nil
}

func (a *Authenticator) largeBlobSet(req *ctap.LargeBlobsRequest) error {
	frag := req.Set
	if uint64(len(frag)) > a.maxLargeBlobFragment() {
		return ctap.Errorf(ctap.ErrInvalidLength, "largeBlobs set: fragment exceeds maxFragmentLength")
	}
	off := *req.Offset
	if off == 0 {
		switch {
		case req.Length == nil:
			return ctap.Errorf(ctap.ErrInvalidParameter, "largeBlobs set: length missing at offset 0")
		case *req.Length > uint64(max(a.p.MaxSerializedLargeBlobArray, 0)):
			return ctap.Errorf(ctap.ErrLargeBlobStorageFull, "largeBlobs set: %d bytes exceed maxSerializedLargeBlobArray", *req.Length)
		case *req.Length < largeBlobMinLength:
			return ctap.Errorf(ctap.ErrInvalidParameter, "largeBlobs set: length below %d", largeBlobMinLength)
		}
		// A new write at offset 0 abandons any unfinished one, whatever happens next.
		a.mu.Lock()
		a.largeBlobWrite = &largeBlobWrite{expectedLength: *req.Length}
		a.mu.Unlock()
	} else if req.Length != nil {
		return ctap.Errorf(ctap.ErrInvalidParameter, "largeBlobs set: length present at a non-zero offset")
	}

	a.mu.Lock()
	w := a.largeBlobWrite
	a.mu.Unlock()
	if off != w.nextOffset() {
		return ctap.Errorf(ctap.ErrInvalidSeq, "largeBlobs set: offset %d, expected %d", off, w.nextOffset())
	}
	if err := a.largeBlobAuthorize(req, off, frag); err != nil {
		return err
	}
	// w is non-nil here: offset 0 created it, and any other offset matched a write in progress.
	if off+uint64(len(frag)) > w.expectedLength {
		return ctap.Errorf(ctap.ErrInvalidParameter, "largeBlobs set: fragment runs past the announced length")
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.largeBlobWrite != w {
		return ctap.Errorf(ctap.ErrInvalidSeq, "largeBlobs set: write abandoned meanwhile")
	}
	w.buf = append(w.buf, frag...)
	if uint64(len(w.buf)) < w.expectedLength {
		return nil
	}
	a.largeBlobWrite = nil
	body, sum := w.buf[:len(w.buf)-largeBlobHashLen], w.buf[len(w.buf)-largeBlobHashLen:]
	h := sha256.Sum256(body)
	if !bytes.Equal(h[:largeBlobHashLen], sum) {
		return ctap.Errorf(ctap.ErrIntegrityFailure, "largeBlobs set: array hash does not match")
	}
	if err := a.st.PutLargeBlobs(w.buf); err != nil {
		return mgmtStoreErr("storing large blobs", err)
	}
	return nil
}

// largeBlobAuthorize applies §6.10.2 step 5: a key protected by a PIN or by enrolled
// fingerprints, or with alwaysUv on, wants pinUvAuthParam = authenticate(token,
// 32×0xff ‖ 0x0c 0x00 ‖ uint32LE(offset) ‖ SHA-256(fragment)) from a token with lbw.
func (a *Authenticator) largeBlobAuthorize(req *ctap.LargeBlobsRequest, off uint64, frag []byte) error {
	protected, err := a.lbUVProtected()
	if err != nil {
		return err
	}
	if !protected {
		return nil
	}
	if req.PinUvAuthParam == nil {
		return ctap.Errorf(ctap.ErrPUATRequired, "largeBlobs set needs pinUvAuthParam")
	}
	if req.PinUvAuthProtocol == nil {
		return ctap.Errorf(ctap.ErrMissingParameter, "largeBlobs set: pinUvAuthProtocol missing")
	}
	msg := make([]byte, 0, 32+2+4+sha256.Size)
	msg = append(msg, bytes.Repeat([]byte{0xff}, 32)...)
	msg = append(msg, byte(ctap.CmdLargeBlobs), 0x00)
	msg = binary.LittleEndian.AppendUint32(msg, uint32(off)) // off ≤ maxSerializedLargeBlobArray
	h := sha256.Sum256(frag)
	msg = append(msg, h[:]...)
	_, err = a.verifyPinUvAuth(req.PinUvAuthProtocol, req.PinUvAuthParam, msg, ctap.PermLargeBlobWrite, "")
	return err
}

// lbUVProtected reports whether the key is "protected by some form of user verification" or has
// alwaysUv on: a PIN is set or a fingerprint is enrolled.
func (a *Authenticator) lbUVProtected() (bool, error) {
	pin, err := a.st.PIN()
	if err != nil {
		return false, mgmtStoreErr("reading PIN state", err)
	}
	if pin.Set {
		return true, nil
	}
	s, err := a.st.Settings()
	if err != nil {
		return false, mgmtStoreErr("reading settings", err)
	}
	if s.AlwaysUV {
		return true, nil
	}
	if a.p.BuiltInUV {
		fps, err := a.st.Fingerprints()
		if err != nil {
			return false, mgmtStoreErr("listing fingerprints", err)
		}
		return len(fps) > 0, nil
	}
	return false, nil
}
