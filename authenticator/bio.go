package authenticator

import (
	"bytes"
	"context"
	"errors"
	"io"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
)

const (
	// bioTemplateIDLen is the size of the random template IDs the emulated sensor assigns.
	bioTemplateIDLen = 16
	// bioMaxFriendlyName is maxTemplateFriendlyName: the longest name, in bytes, a template takes.
	bioMaxFriendlyName = 64
	// bioMaxTimeout caps timeoutMilliseconds so that a platform cannot park the key for hours.
	bioMaxTimeout = 5 * time.Minute
)

// bioEnrollment is the fingerprint enrollment in progress: the template ID handed out by
// enrollBegin and how many good samples it still needs. It is committed to the store only when
// the last sample arrives, as a sensor only keeps a finished template.
type bioEnrollment struct {
	templateID []byte
	remaining  int
}

// bioEnrollment handles authenticatorBioEnrollment (CTAP 2.1 §6.7) over the emulated sensor: a
// sample is a question to the simulated user, and a touch is a good capture.
func (a *Authenticator) bioEnrollment(ctx context.Context, r *request) (any, error) {
	req, params, err := ctap.DecodeBioEnrollment(r.params)
	if err != nil {
		return nil, err
	}
	if req.GetModality != nil && *req.GetModality {
		return &ctap.BioEnrollmentResponse{Modality: ctap.Uint(ctap.ModalityFingerprint)}, nil
	}
	if req.SubCommand == nil {
		return nil, ctap.Errorf(ctap.ErrMissingParameter, "bioEnrollment: neither getModality nor subCommand")
	}
	if req.Modality == nil {
		return nil, ctap.Errorf(ctap.ErrMissingParameter, "bioEnrollment: modality missing")
	}
	if *req.Modality != ctap.ModalityFingerprint {
		return nil, ctap.Errorf(ctap.ErrInvalidParameter, "bioEnrollment: modality %d not supported", *req.Modality)
	}
	sub := *req.SubCommand
	switch sub {
	case ctap.BioGetFingerprintSensorInfo:
		return a.bioSensorInfo(), nil
	case ctap.BioCancelCurrentEnrollment:
		a.mu.Lock()
		a.bioEnroll = nil
		a.mu.Unlock()
		return nil, nil
	case ctap.BioEnrollBegin, ctap.BioEnrollCaptureNextSample, ctap.BioEnumerateEnrollments,
		ctap.BioSetFriendlyName, ctap.BioRemoveEnrollment:
		if err := a.bioVerify(req, sub); err != nil {
			return nil, err
		}
	default:
		return nil, ctap.Errorf(ctap.ErrInvalidSubcommand, "bioEnrollment subcommand 0x%02x", sub)
	}
	switch sub {
	case ctap.BioEnrollBegin:
		return a.bioEnrollBegin(ctx, r, params)
	case ctap.BioEnrollCaptureNextSample:
		return a.bioCaptureNext(ctx, r, params)
	case ctap.BioEnumerateEnrollments:
		return a.bioEnumerate()
	case ctap.BioSetFriendlyName:
		return nil, a.bioRename(params)
	default: // ctap.BioRemoveEnrollment
		return nil, a.bioRemove(params)
	}
}

// bioVerify checks pinUvAuthParam = authenticate(token, modality ‖ subCommand ‖ subCommandParams)
// and the be permission.
func (a *Authenticator) bioVerify(req *ctap.BioEnrollmentRequest, sub uint64) error {
	if req.PinUvAuthParam == nil {
		return ctap.Errorf(ctap.ErrPUATRequired, "bioEnrollment needs pinUvAuthParam")
	}
	msg := make([]byte, 0, 2+len(req.SubCommandParams))
	msg = append(msg, byte(*req.Modality), byte(sub))
	msg = append(msg, req.SubCommandParams...)
	_, err := a.verifyPinUvAuth(req.PinUvAuthProtocol, req.PinUvAuthParam, msg, ctap.PermBioEnrollment, "")
	return err
}

func (a *Authenticator) bioSamplesNeeded() int { return max(a.p.EnrollSamples, 1) }

func (a *Authenticator) bioSensorInfo() *ctap.BioEnrollmentResponse {
	return &ctap.BioEnrollmentResponse{
		Modality:                           ctap.Uint(ctap.ModalityFingerprint),
		FingerprintKind:                    ctap.Uint(ctap.FingerprintTouch),
		MaxCaptureSamplesRequiredForEnroll: ctap.Uint(uint64(a.bioSamplesNeeded())),
		MaxTemplateFriendlyName:            ctap.Uint(bioMaxFriendlyName),
	}
}

// bioDatabaseFull reports whether another template would exceed the persona's sensor memory.
func (a *Authenticator) bioDatabaseFull() error {
	fps, err := a.st.Fingerprints()
	if err != nil {
		return mgmtStoreErr("listing fingerprints", err)
	}
	if len(fps) >= a.p.MaxFingerprints {
		return ctap.Errorf(ctap.ErrFPDatabaseFull, "%d fingerprints enrolled", len(fps))
	}
	return nil
}

func (a *Authenticator) bioEnrollBegin(ctx context.Context, r *request, params *ctap.BioEnrollmentParams) (any, error) {
	a.mu.Lock()
	a.bioEnroll = nil // a new Begin abandons any enrollment in progress
	a.mu.Unlock()
	if err := a.bioDatabaseFull(); err != nil {
		return nil, err
	}
	id := make([]byte, bioTemplateIDLen)
	if _, err := io.ReadFull(a.rand, id); err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "template id randomness: %v", err)
	}
	e := &bioEnrollment{templateID: id, remaining: a.bioSamplesNeeded()}
	a.mu.Lock()
	a.bioEnroll = e
	a.mu.Unlock()
	resp, err := a.bioSample(ctx, r, e, params.TimeoutMilliseconds)
	if err != nil {
		// Without a template ID the platform cannot continue this enrollment.
		a.mu.Lock()
		if a.bioEnroll == e {
			a.bioEnroll = nil
		}
		a.mu.Unlock()
		return nil, err
	}
	resp.TemplateID = id
	return resp, nil
}

func (a *Authenticator) bioCaptureNext(ctx context.Context, r *request, params *ctap.BioEnrollmentParams) (any, error) {
	if params.TemplateID == nil {
		return nil, ctap.Errorf(ctap.ErrMissingParameter, "enrollCaptureNextSample: templateId missing")
	}
	a.mu.Lock()
	e := a.bioEnroll
	a.mu.Unlock()
	if e == nil || !bytes.Equal(e.templateID, params.TemplateID) {
		return nil, ctap.Errorf(ctap.ErrInvalidParameter, "enrollCaptureNextSample: no enrollment for this templateId")
	}
	return a.bioSample(ctx, r, e, params.TimeoutMilliseconds)
}

// bioSample captures one sample for e: the simulated user's touch is a good sample, a refusal
// one with no finger on the sensor (it does not count), no reaction before the platform's
// timeout CTAP2_ERR_USER_ACTION_TIMEOUT. The last good sample commits the template.
func (a *Authenticator) bioSample(ctx context.Context, r *request, e *bioEnrollment, timeoutMs *uint64) (*ctap.BioEnrollmentResponse, error) {
	askCtx := ctx
	if timeoutMs != nil && *timeoutMs > 0 {
		d := bioMaxTimeout
		if *timeoutMs < uint64(bioMaxTimeout/time.Millisecond) {
			d = time.Duration(*timeoutMs) * time.Millisecond
		}
		var cancel context.CancelFunc
		askCtx, cancel = clock.WithTimeout(ctx, a.clock, d)
		defer cancel()
	}
	status := uint64(ctap.SampleGood)
	err := a.askUser(askCtx, r, user.Presence, "")
	switch {
	case err == nil:
	case ctap.StatusOf(err) == ctap.ErrOperationDenied:
		status = ctap.SampleNoUserActivity
	case ctx.Err() == nil && askCtx.Err() != nil:
		return nil, ctap.Errorf(ctap.ErrUserActionTimeout, "no finger within timeoutMilliseconds")
	default:
		return nil, err
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bioEnroll != e {
		// Power was cycled or the enrollment cancelled while the user was asked.
		return nil, ctap.Errorf(ctap.ErrKeepaliveCancel, "enrollment ended while capturing")
	}
	if status == ctap.SampleGood {
		e.remaining--
	}
	if e.remaining == 0 {
		a.bioEnroll = nil
		if err := a.bioDatabaseFull(); err != nil {
			return nil, err
		}
		if err := a.st.PutFingerprint(store.Fingerprint{TemplateID: e.templateID}); err != nil {
			return nil, mgmtStoreErr("storing fingerprint", err)
		}
	}
	return &ctap.BioEnrollmentResponse{
		LastEnrollSampleStatus: ctap.Uint(status),
		RemainingSamples:       ctap.Uint(uint64(e.remaining)),
	}, nil
}

func (a *Authenticator) bioEnumerate() (any, error) {
	fps, err := a.st.Fingerprints()
	if err != nil {
		return nil, mgmtStoreErr("listing fingerprints", err)
	}
	if len(fps) == 0 {
		return nil, ctap.Errorf(ctap.ErrInvalidOption, "no fingerprints enrolled")
	}
	infos := make([]ctap.TemplateInfo, 0, len(fps))
	for _, f := range fps {
		infos = append(infos, ctap.TemplateInfo{ID: f.TemplateID, FriendlyName: f.FriendlyName})
	}
	return &ctap.BioEnrollmentResponse{TemplateInfos: infos}, nil
}

// bioFind returns the enrolled template with this ID; an unknown one is CTAP2_ERR_INVALID_OPTION.
func (a *Authenticator) bioFind(id []byte) (store.Fingerprint, error) {
	fps, err := a.st.Fingerprints()
	if err != nil {
		return store.Fingerprint{}, mgmtStoreErr("listing fingerprints", err)
	}
	for _, f := range fps {
		if bytes.Equal(f.TemplateID, id) {
			return f, nil
		}
	}
	return store.Fingerprint{}, ctap.Errorf(ctap.ErrInvalidOption, "no fingerprint with this templateId")
}

func (a *Authenticator) bioRename(params *ctap.BioEnrollmentParams) error {
	if params.TemplateID == nil || params.TemplateFriendlyName == nil {
		return ctap.Errorf(ctap.ErrMissingParameter, "setFriendlyName: templateId or templateFriendlyName missing")
	}
	if len(*params.TemplateFriendlyName) > bioMaxFriendlyName {
		return ctap.Errorf(ctap.ErrInvalidLength, "setFriendlyName: name longer than %d bytes", bioMaxFriendlyName)
	}
	f, err := a.bioFind(params.TemplateID)
	if err != nil {
		return err
	}
	f.FriendlyName = *params.TemplateFriendlyName
	if err := a.st.PutFingerprint(f); err != nil {
		return mgmtStoreErr("renaming fingerprint", err)
	}
	return nil
}

func (a *Authenticator) bioRemove(params *ctap.BioEnrollmentParams) error {
	if params.TemplateID == nil {
		return ctap.Errorf(ctap.ErrMissingParameter, "removeEnrollment: templateId missing")
	}
	err := a.st.DeleteFingerprint(params.TemplateID)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return ctap.Errorf(ctap.ErrInvalidOption, "no fingerprint with this templateId")
	default:
		return mgmtStoreErr("removing fingerprint", err)
	}
}
