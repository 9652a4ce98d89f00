package authenticator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
	"github.com/stretchr/testify/require"
)

// bio sends one bioEnrollment subcommand for the fingerprint modality, authenticated with token
// when token is non-nil.
func (k *testKey) bio(ctx context.Context, cmd ctap.Command, token []byte, sub uint64, params *ctap.BioEnrollmentParams) (ctap.Status, *ctap.BioEnrollmentResponse) {
	k.t.Helper()
	req := &ctap.BioEnrollmentRequest{Modality: ctap.Uint(ctap.ModalityFingerprint), SubCommand: ctap.Uint(sub)}
	if params != nil {
		raw, err := ctap.Marshal(params)
		require.NoError(k.t, err)
		req.SubCommandParams = raw
	}
	if token != nil {
		req.PinUvAuthProtocol = ctap.Uint(2)
		msg := append([]byte{ctap.ModalityFingerprint, byte(sub)}, req.SubCommandParams...)
		req.PinUvAuthParam = authParam(k.t, 2, token, msg)
	}
	st, body := k.callCtx(ctx, cmd, req)
	if st != ctap.StatusOK || len(body) == 0 {
		return st, nil
	}
	var resp ctap.BioEnrollmentResponse
	require.NoError(k.t, ctap.Unmarshal(body, &resp))
	return st, &resp
}

func (k *testKey) mustBio(cmd ctap.Command, token []byte, sub uint64, params *ctap.BioEnrollmentParams) *ctap.BioEnrollmentResponse {
	k.t.Helper()
	st, resp := k.bio(context.Background(), cmd, token, sub, params)
	require.Equal(k.t, ctap.StatusOK, st, "bio subcommand %d", sub)
	return resp
}

// bioEnrollAll enrolls one finger with a user who always touches, and returns its template ID.
func (k *testKey) bioEnrollAll(cmd ctap.Command, token []byte) []byte {
	k.t.Helper()
	begin := k.mustBio(cmd, token, ctap.BioEnrollBegin, nil)
	for r := *begin.RemainingSamples; r > 0; {
		next := k.mustBio(cmd, token, ctap.BioEnrollCaptureNextSample, &ctap.BioEnrollmentParams{TemplateID: begin.TemplateID})
		require.Equal(k.t, r-1, *next.RemainingSamples)
		r = *next.RemainingSamples
	}
	return begin.TemplateID
}

func TestBioEnrollFlow(t *testing.T) {
	t.Parallel()
	for _, cmd := range []ctap.Command{ctap.CmdBioEnrollment, ctap.CmdBioEnrollmentPre} {
		t.Run(cmd.String(), func(t *testing.T) {
			t.Parallel()
			k := newTestKey(t, "default")
			samples := uint64(k.Persona().EnrollSamples)

			var mod ctap.BioEnrollmentResponse
			k.must(cmd, &ctap.BioEnrollmentRequest{GetModality: ctap.Bool(true)}, &mod)
			require.Equal(t, uint64(ctap.ModalityFingerprint), *mod.Modality)

			info := k.mustBio(cmd, nil, ctap.BioGetFingerprintSensorInfo, nil)
			require.Equal(t, uint64(ctap.FingerprintTouch), *info.FingerprintKind)
			require.Equal(t, samples, *info.MaxCaptureSamplesRequiredForEnroll)
			require.Equal(t, uint64(bioMaxFriendlyName), *info.MaxTemplateFriendlyName)

			tok := k.mgmtToken(ctap.PermBioEnrollment, "")
			// Begin: good; then one refusal that must not count; then good samples.
			answers := []user.Answer{user.Yes, user.No}
			for range samples - 1 {
				answers = append(answers, user.Yes)
			}
			k.user.Set(user.NewScript(user.Fixed(user.No), answers...))
			asked := k.user.Asked()

			begin := k.mustBio(cmd, tok, ctap.BioEnrollBegin, &ctap.BioEnrollmentParams{TimeoutMilliseconds: ctap.Uint(5000)})
			require.Len(t, begin.TemplateID, bioTemplateIDLen)
			require.Equal(t, uint64(ctap.SampleGood), *begin.LastEnrollSampleStatus)
			require.Equal(t, samples-1, *begin.RemainingSamples)

			id := &ctap.BioEnrollmentParams{TemplateID: begin.TemplateID}
			miss := k.mustBio(cmd, tok, ctap.BioEnrollCaptureNextSample, id)
			require.Equal(t, uint64(ctap.SampleNoUserActivity), *miss.LastEnrollSampleStatus)
			require.Equal(t, samples-1, *miss.RemainingSamples, "a refused sample does not count")
			require.Nil(t, miss.TemplateID)

			for want := samples - 2; ; want-- {
				fps, err := k.Store().Fingerprints()
				require.NoError(t, err)
				require.Empty(t, fps, "nothing stored before the last sample")
				r := k.mustBio(cmd, tok, ctap.BioEnrollCaptureNextSample, id)
				require.Equal(t, uint64(ctap.SampleGood), *r.LastEnrollSampleStatus)
				require.Equal(t, want, *r.RemainingSamples)
				if want == 0 {
					break
				}
			}
			require.Equal(t, int(samples)+1, k.user.Asked()-asked, "one question per sample")
			fps, err := k.Store().Fingerprints()
			require.NoError(t, err)
			require.Equal(t, []store.Fingerprint{{TemplateID: begin.TemplateID}}, fps)

			// The enrollment is over: another sample for it is refused.
			st, _ := k.bio(context.Background(), cmd, tok, ctap.BioEnrollCaptureNextSample, id)
			require.Equal(t, ctap.ErrInvalidParameter, st)

			// Enumerate, rename, remove.
			k.user.Set(user.Always)
			second := k.bioEnrollAll(cmd, tok)
			list := k.mustBio(cmd, tok, ctap.BioEnumerateEnrollments, nil)
			require.Equal(t, []ctap.TemplateInfo{{ID: begin.TemplateID}, {ID: second}}, list.TemplateInfos)
			k.mustBio(cmd, tok, ctap.BioSetFriendlyName, &ctap.BioEnrollmentParams{TemplateID: second, TemplateFriendlyName: strPtr("right thumb")})
			list = k.mustBio(cmd, tok, ctap.BioEnumerateEnrollments, nil)
			require.Equal(t, []ctap.TemplateInfo{{ID: begin.TemplateID}, {ID: second, FriendlyName: "right thumb"}}, list.TemplateInfos)
			k.mustBio(cmd, tok, ctap.BioRemoveEnrollment, id)
			list = k.mustBio(cmd, tok, ctap.BioEnumerateEnrollments, nil)
			require.Equal(t, []ctap.TemplateInfo{{ID: second, FriendlyName: "right thumb"}}, list.TemplateInfos)
			st, _ = k.bio(context.Background(), cmd, tok, ctap.BioRemoveEnrollment, id)
			require.Equal(t, ctap.ErrInvalidOption, st, "removing an unknown template")
			k.mustBio(cmd, tok, ctap.BioRemoveEnrollment, &ctap.BioEnrollmentParams{TemplateID: second})
			st, _ = k.bio(context.Background(), cmd, tok, ctap.BioEnumerateEnrollments, nil)
			require.Equal(t, ctap.ErrInvalidOption, st, "no enrollments")
		})
	}
}

func strPtr(s string) *string { return &s }

func TestBioEnrollCancelAndTimeouts(t *testing.T) {
	t.Parallel()
	cmd := ctap.CmdBioEnrollment
	k := newTestKey(t, "default")
	tok := k.mgmtToken(ctap.PermBioEnrollment, "")

	begin := k.mustBio(cmd, tok, ctap.BioEnrollBegin, nil)
	k.mustBio(cmd, nil, ctap.BioCancelCurrentEnrollment, nil)
	st, _ := k.bio(context.Background(), cmd, tok, ctap.BioEnrollCaptureNextSample, &ctap.BioEnrollmentParams{TemplateID: begin.TemplateID})
	require.Equal(t, ctap.ErrInvalidParameter, st, "cancelled enrollment")

	// timeoutMilliseconds is honoured: a user who would answer after 10 s is not waited for.
	begin = k.mustBio(cmd, tok, ctap.BioEnrollBegin, nil)
	k.user.Set(user.Delayed{After: 10 * time.Second, Answer: user.Yes})
	start := k.clock.Now()
	st, _ = k.bio(context.Background(), cmd, tok, ctap.BioEnrollCaptureNextSample, &ctap.BioEnrollmentParams{TemplateID: begin.TemplateID, TimeoutMilliseconds: ctap.Uint(50)})
	require.Equal(t, ctap.ErrUserActionTimeout, st)
	require.Equal(t, 50*time.Millisecond, k.clock.Now().Sub(start), "the key waited 50 ms on its clock, not 10 s")

	// A user who never reacts.
	k.user.Set(user.Fixed(user.Timeout))
	st, _ = k.bio(context.Background(), cmd, tok, ctap.BioEnrollCaptureNextSample, &ctap.BioEnrollmentParams{TemplateID: begin.TemplateID})
	require.Equal(t, ctap.ErrUserActionTimeout, st)

	// CTAPHID_CANCEL while waiting.
	st, _ = k.bio(k.cancelWhenAsked(), cmd, tok, ctap.BioEnrollCaptureNextSample, &ctap.BioEnrollmentParams{TemplateID: begin.TemplateID})
	require.Equal(t, ctap.ErrKeepaliveCancel, st)

	// The enrollment survived the failed samples and still needs all of them.
	k.user.Set(user.Always)
	r := k.mustBio(cmd, tok, ctap.BioEnrollCaptureNextSample, &ctap.BioEnrollmentParams{TemplateID: begin.TemplateID})
	require.Equal(t, uint64(k.Persona().EnrollSamples-2), *r.RemainingSamples)

	// A timeout at Begin leaves no enrollment behind.
	k.user.Set(user.Fixed(user.Timeout))
	st, _ = k.bio(context.Background(), cmd, tok, ctap.BioEnrollBegin, nil)
	require.Equal(t, ctap.ErrUserActionTimeout, st)
	k.mu.Lock()
	require.Nil(t, k.bioEnroll)
	k.mu.Unlock()
}

func TestBioEnrollDatabaseFull(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	tok := k.mgmtToken(ctap.PermBioEnrollment, "")
	for i := range k.Persona().MaxFingerprints - 1 {
		require.NoError(t, k.Store().PutFingerprint(store.Fingerprint{TemplateID: []byte{byte(i + 1)}}))
	}
	k.bioEnrollAll(ctap.CmdBioEnrollment, tok) // the last free slot
	st, _ := k.bio(context.Background(), ctap.CmdBioEnrollment, tok, ctap.BioEnrollBegin, nil)
	require.Equal(t, ctap.ErrFPDatabaseFull, st)
	fps, err := k.Store().Fingerprints()
	require.NoError(t, err)
	require.Len(t, fps, k.Persona().MaxFingerprints)
}

func TestBioEnrollErrors(t *testing.T) {
	t.Parallel()
	cmd := ctap.CmdBioEnrollment
	bg := context.Background()
	tid := []byte("0123456789abcdef")
	tests := []struct {
		name string
		run  func(k *testKey, tok []byte) ctap.Status
		want ctap.Status
	}{
		{"malformed CBOR", func(k *testKey, _ []byte) ctap.Status { st, _ := k.call(cmd, []byte{0xff}); return st }, ctap.ErrInvalidCBOR},
		{"no subCommand", func(k *testKey, _ []byte) ctap.Status {
			st, _ := k.call(cmd, &ctap.BioEnrollmentRequest{Modality: ctap.Uint(1)})
			return st
		}, ctap.ErrMissingParameter},
		{"no modality", func(k *testKey, _ []byte) ctap.Status {
			st, _ := k.call(cmd, &ctap.BioEnrollmentRequest{SubCommand: ctap.Uint(ctap.BioGetFingerprintSensorInfo)})
			return st
		}, ctap.ErrMissingParameter},
		{"unknown modality", func(k *testKey, _ []byte) ctap.Status {
			st, _ := k.call(cmd, &ctap.BioEnrollmentRequest{Modality: ctap.Uint(2), SubCommand: ctap.Uint(ctap.BioGetFingerprintSensorInfo)})
			return st
		}, ctap.ErrInvalidParameter},
		{"unknown subCommand", func(k *testKey, tok []byte) ctap.Status { st, _ := k.bio(bg, cmd, tok, 0x30, nil); return st }, ctap.ErrInvalidSubcommand},
		{"no pinUvAuthParam", func(k *testKey, _ []byte) ctap.Status {
			st, _ := k.bio(bg, cmd, nil, ctap.BioEnrollBegin, nil)
			return st
		}, ctap.ErrPUATRequired},
		{"no pinUvAuthProtocol", func(k *testKey, tok []byte) ctap.Status {
			st, _ := k.call(cmd, &ctap.BioEnrollmentRequest{Modality: ctap.Uint(1), SubCommand: ctap.Uint(4), PinUvAuthParam: authParam(k.t, 2, tok, []byte{1, 4})})
			return st
		}, ctap.ErrMissingParameter},
		{"wrong pinUvAuthParam", func(k *testKey, tok []byte) ctap.Status {
			st, _ := k.call(cmd, &ctap.BioEnrollmentRequest{Modality: ctap.Uint(1), SubCommand: ctap.Uint(4), PinUvAuthProtocol: ctap.Uint(2), PinUvAuthParam: authParam(k.t, 2, tok, []byte{4})})
			return st
		}, ctap.ErrPINAuthInvalid},
		{"token without be", func(k *testKey, _ []byte) ctap.Status {
			st, _ := k.bio(bg, cmd, k.mgmtToken(ctap.PermCredentialManagement, ""), ctap.BioEnumerateEnrollments, nil)
			return st
		}, ctap.ErrPINAuthInvalid},
		{"capture: templateId missing", func(k *testKey, tok []byte) ctap.Status {
			st, _ := k.bio(bg, cmd, tok, ctap.BioEnrollCaptureNextSample, &ctap.BioEnrollmentParams{})
			return st
		}, ctap.ErrMissingParameter},
		{"capture: no enrollment", func(k *testKey, tok []byte) ctap.Status {
			st, _ := k.bio(bg, cmd, tok, ctap.BioEnrollCaptureNextSample, &ctap.BioEnrollmentParams{TemplateID: tid})
			return st
		}, ctap.ErrInvalidParameter},
		{"capture: other templateId", func(k *testKey, tok []byte) ctap.Status {
			k.mustBio(cmd, tok, ctap.BioEnrollBegin, nil)
			st, _ := k.bio(bg, cmd, tok, ctap.BioEnrollCaptureNextSample, &ctap.BioEnrollmentParams{TemplateID: tid})
			return st
		}, ctap.ErrInvalidParameter},
		{"rename: name missing", func(k *testKey, tok []byte) ctap.Status {
			st, _ := k.bio(bg, cmd, tok, ctap.BioSetFriendlyName, &ctap.BioEnrollmentParams{TemplateID: []byte{9}})
			return st
		}, ctap.ErrMissingParameter},
		{"rename: unknown template", func(k *testKey, tok []byte) ctap.Status {
			st, _ := k.bio(bg, cmd, tok, ctap.BioSetFriendlyName, &ctap.BioEnrollmentParams{TemplateID: tid, TemplateFriendlyName: strPtr("x")})
			return st
		}, ctap.ErrInvalidOption},
		{"rename: name too long", func(k *testKey, tok []byte) ctap.Status {
			st, _ := k.bio(bg, cmd, tok, ctap.BioSetFriendlyName, &ctap.BioEnrollmentParams{TemplateID: []byte{9}, TemplateFriendlyName: strPtr(strings.Repeat("n", bioMaxFriendlyName+1))})
			return st
		}, ctap.ErrInvalidLength},
		{"remove: templateId missing", func(k *testKey, tok []byte) ctap.Status {
			st, _ := k.bio(bg, cmd, tok, ctap.BioRemoveEnrollment, nil)
			return st
		}, ctap.ErrMissingParameter},
		{"begin: user refuses the first sample", func(k *testKey, tok []byte) ctap.Status {
			k.user.Set(user.Fixed(user.No))
			st, resp := k.bio(bg, cmd, tok, ctap.BioEnrollBegin, nil)
			require.Equal(k.t, uint64(ctap.SampleNoUserActivity), *resp.LastEnrollSampleStatus)
			require.Equal(k.t, uint64(k.Persona().EnrollSamples), *resp.RemainingSamples)
			return st
		}, ctap.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := newTestKey(t, "default")
			tok := k.mgmtToken(ctap.PermBioEnrollment, "")
			require.NoError(t, k.Store().PutFingerprint(store.Fingerprint{TemplateID: []byte{9}, FriendlyName: "index"}))
			require.Equal(t, tc.want, tc.run(k, tok))
			fps, err := k.Store().Fingerprints()
			require.NoError(t, err)
			require.Equal(t, []store.Fingerprint{{TemplateID: []byte{9}, FriendlyName: "index"}}, fps, "the store changed")
		})
	}
}

func TestBioEnrollNotOffered(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default", func(p *persona.Persona) { p.BuiltInUV, p.BioEnrollPre = false, false })
	for _, cmd := range []ctap.Command{ctap.CmdBioEnrollment, ctap.CmdBioEnrollmentPre} {
		st, _ := k.call(cmd, &ctap.BioEnrollmentRequest{GetModality: ctap.Bool(true)})
		require.Equal(t, ctap.ErrInvalidCommand, st)
	}
}
