package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fidolab/fidolab/ctap"
)

// maxEnrollSamples bounds the captureNextSample loop so a key that never reports completion
// cannot keep a host busy forever.
const maxEnrollSamples = 64

// cancelTimeout bounds the best-effort cancelCurrentEnrollment after a failed enrollment.
const cancelTimeout = 2 * time.Second

// Bio runs authenticatorBioEnrollment (fingerprints) with a token that has the be permission.
// It uses command 0x09, or the 0x40 preview when the key offers only that.
type Bio struct {
	c   *Client
	tok *Token
}

// Bio returns the bio enrollment commands authorised by tok (SensorInfo needs none).
func (c *Client) Bio(tok *Token) *Bio { return &Bio{c: c, tok: tok} }

// SensorInfo describes the fingerprint sensor.
type SensorInfo struct {
	FingerprintKind         uint64 // ctap.FingerprintTouch or ctap.FingerprintSwipe
	MaxCaptureSamples       uint64
	MaxTemplateFriendlyName uint64
}

// Template is one enrolled fingerprint.
type Template = ctap.TemplateInfo

func (b *Bio) command(ctx context.Context) (ctap.Command, error) {
	info, err := b.c.Info(ctx)
	if err != nil {
		return 0, err
	}
	if _, ok := info.Options["bioEnroll"]; ok {
		return ctap.CmdBioEnrollment, nil
	}
	if _, ok := info.Options["userVerificationMgmtPreview"]; ok {
		return ctap.CmdBioEnrollmentPre, nil
	}
	return 0, errors.New("client: key offers no bio enrollment")
}

// do sends a fingerprint subcommand; authed ones carry pinUvAuthParam over
// modality ‖ subCommand ‖ subCommandParams.
func (b *Bio) do(ctx context.Context, sub uint64, params *ctap.BioEnrollmentParams, authed bool) (*ctap.BioEnrollmentResponse, error) {
	cmd, err := b.command(ctx)
	if err != nil {
		return nil, err
	}
	req := &ctap.BioEnrollmentRequest{Modality: ctap.Uint(ctap.ModalityFingerprint), SubCommand: ctap.Uint(sub)}
	if params != nil {
		if req.SubCommandParams, err = ctap.Marshal(params); err != nil {
			return nil, fmt.Errorf("client: encoding subCommandParams: %w", err)
		}
	}
	if authed {
		if b.tok == nil {
			return nil, errors.New("client: bio enrollment needs a token")
		}
		msg := append([]byte{ctap.ModalityFingerprint, byte(sub)}, req.SubCommandParams...)
		req.PinUvAuthProtocol = b.tok.ProtocolParam()
		req.PinUvAuthParam = b.tok.Auth(msg)
	}
	var resp ctap.BioEnrollmentResponse
	if err := b.c.call(ctx, cmd, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// SensorInfo asks for the fingerprint sensor's properties.
func (b *Bio) SensorInfo(ctx context.Context) (*SensorInfo, error) {
	resp, err := b.do(ctx, ctap.BioGetFingerprintSensorInfo, nil, false)
	if err != nil {
		return nil, err
	}
	si := &SensorInfo{}
	if resp.FingerprintKind != nil {
		si.FingerprintKind = *resp.FingerprintKind
	}
	if resp.MaxCaptureSamplesRequiredForEnroll != nil {
		si.MaxCaptureSamples = *resp.MaxCaptureSamplesRequiredForEnroll
	}
	if resp.MaxTemplateFriendlyName != nil {
		si.MaxTemplateFriendlyName = *resp.MaxTemplateFriendlyName
	}
	return si, nil
}

// Enroll enrolls a new fingerprint: enrollBegin, then captureNextSample until no samples
// remain, then names it when name is not empty. On failure it cancels the enrollment.
// It returns the template ID and the lastEnrollSampleStatus of every sample.
func (b *Bio) Enroll(ctx context.Context, name string) (templateID []byte, samples []uint64, err error) {
	resp, err := b.do(ctx, ctap.BioEnrollBegin, nil, true)
	if err != nil {
		return nil, nil, err
	}
	if len(resp.TemplateID) == 0 || resp.RemainingSamples == nil {
		return nil, nil, fmt.Errorf("%w: enrollBegin: templateId or remainingSamples missing", ErrMalformedResponse)
	}
	templateID = resp.TemplateID
	for {
		if resp.LastEnrollSampleStatus != nil {
			samples = append(samples, *resp.LastEnrollSampleStatus)
		}
		if resp.RemainingSamples == nil {
			b.cancel()
			return nil, samples, fmt.Errorf("%w: captureNextSample: remainingSamples missing", ErrMalformedResponse)
		}
		if *resp.RemainingSamples == 0 {
			break
		}
		if len(samples) >= maxEnrollSamples {
			b.cancel()
			return nil, samples, fmt.Errorf("%w: enrollment still wants samples after %d", ErrMalformedResponse, len(samples))
		}
		resp, err = b.do(ctx, ctap.BioEnrollCaptureNextSample, &ctap.BioEnrollmentParams{TemplateID: templateID}, true)
		if err != nil {
			b.cancel()
			return nil, samples, err
		}
	}
	if name != "" {
		if err := b.Rename(ctx, templateID, name); err != nil {
			return templateID, samples, err
		}
	}
	return templateID, samples, nil
}

// cancel abandons an enrollment, best effort: the error that led here is the one that matters.
func (b *Bio) cancel() {
	ctx, stop := context.WithTimeout(context.Background(), cancelTimeout)
	defer stop()
	_, _ = b.do(ctx, ctap.BioCancelCurrentEnrollment, nil, false)
}

// Enrollments lists the enrolled fingerprints; none is an empty list.
func (b *Bio) Enrollments(ctx context.Context) ([]Template, error) {
	resp, err := b.do(ctx, ctap.BioEnumerateEnrollments, nil, true)
	// A key with no enrollments answers CTAP2_ERR_INVALID_OPTION (CTAP 2.1 §6.7.6).
	if errors.Is(err, ctap.ErrInvalidOption) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return resp.TemplateInfos, nil
}

// Rename sets a template's friendly name.
func (b *Bio) Rename(ctx context.Context, templateID []byte, name string) error {
	_, err := b.do(ctx, ctap.BioSetFriendlyName, &ctap.BioEnrollmentParams{TemplateID: templateID, TemplateFriendlyName: &name}, true)
	return err
}

// Remove deletes an enrolled fingerprint.
func (b *Bio) Remove(ctx context.Context, templateID []byte) error {
	_, err := b.do(ctx, ctap.BioRemoveEnrollment, &ctap.BioEnrollmentParams{TemplateID: templateID}, true)
	return err
}
