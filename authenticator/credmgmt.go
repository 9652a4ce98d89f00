package authenticator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"

	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap"
)

// credMgmtEnum is the enumeration in progress (CTAP 2.1 §6.8.3, §6.8.4). It keeps only what is
// still to be returned, and credentials by ID: a getNext re-reads the store, so a credential or
// RP deleted meanwhile is skipped rather than returned from a stale copy.
type credMgmtEnum struct {
	rps   []string // RP IDs not yet returned by enumerateRPsGetNextRP
	creds [][]byte // credential IDs not yet returned by enumerateCredentialsGetNextCredential
}

// credentialManagement handles authenticatorCredentialManagement (CTAP 2.1 §6.8).
//
// credProtect does not filter anything here: every subcommand that reveals or changes a
// credential needs a pinUvAuthToken with the cm permission, which only PIN or built-in UV
// grants, so even userVerificationRequired credentials are shown (§12.1, "credential
// management").
func (a *Authenticator) credentialManagement(_ context.Context, r *request) (any, error) {
	req, params, err := ctap.DecodeCredentialManagement(r.params)
	if err != nil {
		return nil, err
	}
	sub := *req.SubCommand

	// Any subcommand but the matching getNext ends an enumeration in progress.
	a.mu.Lock()
	switch sub {
	case ctap.CMEnumerateRPsGetNextRP:
		a.cmEnum.creds = nil
	case ctap.CMEnumerateCredentialsGetNextCredential:
		a.cmEnum.rps = nil
	default:
		a.cmEnum = credMgmtEnum{}
	}
	a.mu.Unlock()

	persistent := false // authorised by the persistent (read-only, RP-less) token: ctap22.go
	switch sub {
	case ctap.CMGetCredsMetadata, ctap.CMEnumerateRPsBegin, ctap.CMEnumerateCredentialsBegin,
		ctap.CMDeleteCredential, ctap.CMUpdateUserInformation:
		if persistent, err = a.cmVerify(req, sub); err != nil {
			return nil, err
		}
	case ctap.CMEnumerateRPsGetNextRP, ctap.CMEnumerateCredentialsGetNextCredential:
		// Authorised by the Begin that started the enumeration.
	default:
		return nil, ctap.Errorf(ctap.ErrInvalidSubcommand, "credentialManagement subcommand 0x%02x", sub)
	}

	switch sub {
	case ctap.CMGetCredsMetadata:
		return a.cmMetadata(persistent)
	case ctap.CMEnumerateRPsBegin:
		return a.cmEnumerateRPsBegin(persistent)
	case ctap.CMEnumerateRPsGetNextRP:
		return a.cmEnumerateRPsNext()
	case ctap.CMEnumerateCredentialsBegin:
		return a.cmEnumerateCredsBegin(params, persistent)
	case ctap.CMEnumerateCredentialsGetNextCredential:
		return a.cmEnumerateCredsNext()
	case ctap.CMDeleteCredential:
		return nil, a.cmDelete(params)
	default: // ctap.CMUpdateUserInformation
		return nil, a.cmUpdateUser(params)
	}
}

// cmVerify checks pinUvAuthParam = authenticate(token, subCommand ‖ subCommandParams) and the
// cm permission. The RP binding is checked per subcommand by the caller, because credential
// management never binds a token to an RP on use (only getPinUvAuthToken… does). On a persona
// with perCredMgmtRO the read-only subcommands also accept the persistent token (persistent
// true); update and delete never do (CTAP2_ERR_PIN_AUTH_INVALID).
func (a *Authenticator) cmVerify(req *ctap.CredentialManagementRequest, sub uint64) (persistent bool, err error) {
	if req.PinUvAuthParam == nil {
		return false, ctap.Errorf(ctap.ErrPUATRequired, "credentialManagement needs pinUvAuthParam")
	}
	msg := make([]byte, 0, 1+len(req.SubCommandParams))
	msg = append(msg, byte(sub))
	msg = append(msg, req.SubCommandParams...)
	_, err = a.verifyPinUvAuth(req.PinUvAuthProtocol, req.PinUvAuthParam, msg, ctap.PermCredentialManagement, "")
	if err != nil && a.p.PerCredMgmtRO && cmReadOnly(sub) && ctap.StatusOf(err) == ctap.ErrPINAuthInvalid &&
		a.verifyPersistent(req.PinUvAuthProtocol, req.PinUvAuthParam, msg) {
		return true, nil
	}
	return false, err
}

// cmRequireUnbound refuses a token bound to an RP for the subcommands that cover every RP (the
// persistent token is bound to none).
func (a *Authenticator) cmRequireUnbound(persistent bool) error {
	if !persistent && a.tokenBoundRP() != "" {
		return ctap.Errorf(ctap.ErrPINAuthInvalid, "token is bound to an RP; this subcommand spans all RPs")
	}
	return nil
}

// cmRequireRP refuses a token bound to an RP other than rpID.
func (a *Authenticator) cmRequireRP(rpID string) error {
	if b := a.tokenBoundRP(); b != "" && b != rpID {
		return ctap.Errorf(ctap.ErrPINAuthInvalid, "token is bound to another RP")
	}
	return nil
}

func mgmtStoreErr(what string, err error) error {
	return ctap.Errorf(ctap.ErrOther, "%s: %v", what, err)
}

func (a *Authenticator) cmMetadata(persistent bool) (any, error) {
	if err := a.cmRequireUnbound(persistent); err != nil {
		return nil, err
	}
	n, err := a.st.CountResident()
	if err != nil {
		return nil, mgmtStoreErr("counting credentials", err)
	}
	remaining := max(a.p.ResidentCapacity-n, 0)
	return &ctap.CredentialManagementResponse{
		ExistingResidentCredentialsCount:             ctap.Uint(uint64(n)),
		MaxPossibleRemainingResidentCredentialsCount: ctap.Uint(uint64(remaining)),
	}, nil
}

func (a *Authenticator) cmEnumerateRPsBegin(persistent bool) (any, error) {
	if err := a.cmRequireUnbound(persistent); err != nil {
		return nil, err
	}
	rps, err := a.st.ResidentRPs()
	if err != nil {
		return nil, mgmtStoreErr("listing RPs", err)
	}
	if len(rps) == 0 {
		return nil, ctap.Errorf(ctap.ErrNoCredentials, "no resident credentials")
	}
	rest := make([]string, 0, len(rps)-1)
	for _, rp := range rps[1:] {
		rest = append(rest, rp.ID)
	}
	a.mu.Lock()
	a.cmEnum.rps = rest
	a.mu.Unlock()
	resp := cmRPResponse(rps[0])
	resp.TotalRPs = ctap.Uint(uint64(len(rps)))
	return resp, nil
}

func (a *Authenticator) cmEnumerateRPsNext() (any, error) {
	for {
		a.mu.Lock()
		if len(a.cmEnum.rps) == 0 {
			a.cmEnum.rps = nil
			a.mu.Unlock()
			return nil, ctap.Errorf(ctap.ErrNotAllowed, "no RP enumeration in progress")
		}
		id := a.cmEnum.rps[0]
		a.cmEnum.rps = a.cmEnum.rps[1:]
		a.mu.Unlock()
		rp, ok, err := a.cmResidentRP(id)
		if err != nil {
			return nil, err
		}
		if ok {
			return cmRPResponse(rp), nil
		}
		// Its last credential went away since the Begin: skip it.
	}
}

// cmResidentRP looks up the current summary of one RP.
func (a *Authenticator) cmResidentRP(id string) (store.RP, bool, error) {
	rps, err := a.st.ResidentRPs()
	if err != nil {
		return store.RP{}, false, mgmtStoreErr("listing RPs", err)
	}
	for _, rp := range rps {
		if rp.ID == id {
			return rp, true, nil
		}
	}
	return store.RP{}, false, nil
}

func cmRPResponse(rp store.RP) *ctap.CredentialManagementResponse {
	h := sha256.Sum256([]byte(rp.ID))
	return &ctap.CredentialManagementResponse{RP: &ctap.RPEntity{ID: rp.ID, Name: rp.Name}, RPIDHash: h[:]}
}

func (a *Authenticator) cmEnumerateCredsBegin(params *ctap.CredentialManagementParams, persistent bool) (any, error) {
	if params.RPIDHash == nil {
		return nil, ctap.Errorf(ctap.ErrMissingParameter, "enumerateCredentialsBegin: rpIDHash missing")
	}
	if b := a.tokenBoundRP(); b != "" && !persistent {
		h := sha256.Sum256([]byte(b))
		if !bytes.Equal(h[:], params.RPIDHash) {
			return nil, ctap.Errorf(ctap.ErrPINAuthInvalid, "token is bound to another RP")
		}
	}
	rps, err := a.st.ResidentRPs()
	if err != nil {
		return nil, mgmtStoreErr("listing RPs", err)
	}
	var creds []*store.Credential
	for _, rp := range rps {
		h := sha256.Sum256([]byte(rp.ID))
		if bytes.Equal(h[:], params.RPIDHash) {
			if creds, err = a.st.Resident(rp.ID); err != nil {
				return nil, mgmtStoreErr("listing credentials", err)
			}
			break
		}
	}
	if len(creds) == 0 {
		return nil, ctap.Errorf(ctap.ErrNoCredentials, "no credentials for this rpIDHash")
	}
	resp, err := a.cmCredResponse(creds[0])
	if err != nil {
		return nil, err
	}
	resp.TotalCredentials = ctap.Uint(uint64(len(creds)))
	rest := make([][]byte, 0, len(creds)-1)
	for _, c := range creds[1:] {
		rest = append(rest, c.ID)
	}
	a.mu.Lock()
	a.cmEnum.creds = rest
	a.mu.Unlock()
	return resp, nil
}

func (a *Authenticator) cmEnumerateCredsNext() (any, error) {
	for {
		a.mu.Lock()
		if len(a.cmEnum.creds) == 0 {
			a.cmEnum.creds = nil
			a.mu.Unlock()
			return nil, ctap.Errorf(ctap.ErrNotAllowed, "no credential enumeration in progress")
		}
		id := a.cmEnum.creds[0]
		a.cmEnum.creds = a.cmEnum.creds[1:]
		a.mu.Unlock()
		c, err := a.st.ResidentByID(id)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted since the Begin
		}
		if err != nil {
			return nil, mgmtStoreErr("reading credential", err)
		}
		return a.cmCredResponse(c)
	}
}

// cmCredResponse describes one credential. A credential made without credProtect reports level 1,
// the policy it is treated with, as hardware keys do.
func (a *Authenticator) cmCredResponse(c *store.Credential) (*ctap.CredentialManagementResponse, error) {
	pub, err := publicCOSE(c.Alg, c.PrivateKey)
	if err != nil {
		return nil, err
	}
	cp := uint64(c.CredProtect)
	if cp == 0 {
		cp = ctap.CredProtectUVOptional
	}
	resp := &ctap.CredentialManagementResponse{
		User:         &ctap.UserEntity{ID: c.UserID, Name: c.UserName, DisplayName: c.UserDisplayName},
		CredentialID: &ctap.CredentialDescriptor{ID: c.ID, Type: ctap.CredentialTypePublicKey},
		PublicKey:    pub,
		CredProtect:  &cp,
	}
	if len(c.LargeBlobKey) > 0 {
		resp.LargeBlobKey = c.LargeBlobKey
	}
	if a.p.HasExtension(extThirdPartyPayment) { // CTAP 2.2 §6.8: 0x0C, for every credential
		resp.ThirdPartyPayment = ctap.Bool(isThirdPartyPayment(c.ID))
	}
	return resp, nil
}

// cmCredential finds the credential a delete or update names and checks the token may touch it.
func (a *Authenticator) cmCredential(params *ctap.CredentialManagementParams, what string) (*store.Credential, error) {
	if params.CredentialID == nil || params.CredentialID.ID == nil {
		return nil, ctap.Errorf(ctap.ErrMissingParameter, "%s: credentialId missing", what)
	}
	c, err := a.st.ResidentByID(params.CredentialID.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ctap.Errorf(ctap.ErrNoCredentials, "%s: no such credential", what)
	}
	if err != nil {
		return nil, mgmtStoreErr("reading credential", err)
	}
	if err := a.cmRequireRP(c.RPID); err != nil {
		return nil, err
	}
	return c, nil
}

func (a *Authenticator) cmDelete(params *ctap.CredentialManagementParams) error {
	c, err := a.cmCredential(params, "deleteCredential")
	if err != nil {
		return err
	}
	if err := a.st.DeleteResident(c.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return ctap.Errorf(ctap.ErrNoCredentials, "deleteCredential: no such credential")
		}
		return mgmtStoreErr("deleting credential", err)
	}
	return nil
}

// cmUpdateUser replaces name and displayName; a field absent or empty in the request is removed
// from the credential (§6.8.6).
func (a *Authenticator) cmUpdateUser(params *ctap.CredentialManagementParams) error {
	if params.CredentialID == nil || params.CredentialID.ID == nil || params.User == nil {
		return ctap.Errorf(ctap.ErrMissingParameter, "updateUserInformation: credentialId or user missing")
	}
	c, err := a.cmCredential(params, "updateUserInformation")
	if err != nil {
		return err
	}
	if !bytes.Equal(c.UserID, params.User.ID) {
		return ctap.Errorf(ctap.ErrInvalidParameter, "updateUserInformation: user.id does not match the credential")
	}
	switch err := a.st.UpdateUser(c.ID, params.User.Name, params.User.DisplayName, params.User.ID); {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrUserMismatch):
		return ctap.Errorf(ctap.ErrInvalidParameter, "updateUserInformation: user.id does not match the credential")
	case errors.Is(err, store.ErrNotFound):
		return ctap.Errorf(ctap.ErrNoCredentials, "updateUserInformation: no such credential")
	default:
		return mgmtStoreErr("updating user", err)
	}
}
