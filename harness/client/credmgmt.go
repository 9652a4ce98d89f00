package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
)

// CredMgmt runs authenticatorCredentialManagement with a token that has the cm permission.
// It uses command 0x0A, or the 0x41 preview when the key offers only that.
type CredMgmt struct {
	c   *Client
	tok *Token
}

// CredMgmt returns the credential management commands authorised by tok.
func (c *Client) CredMgmt(tok *Token) *CredMgmt { return &CredMgmt{c: c, tok: tok} }

// RPInfo is one relying party with discoverable credentials on the key.
type RPInfo struct {
	RP       ctap.RPEntity
	RPIDHash []byte
}

// CredentialInfo is one discoverable credential.
type CredentialInfo struct {
	User         ctap.UserEntity
	CredentialID ctap.CredentialDescriptor
	PublicKey    cose.Key
	CredProtect  uint64
	// HasLargeBlobKey reports a largeBlobKey; the key itself stays out of this struct (it is secret).
	HasLargeBlobKey bool
}

func (m *CredMgmt) command(ctx context.Context) (ctap.Command, error) {
	info, err := m.c.Info(ctx)
	if err != nil {
		return 0, err
	}
	if _, ok := info.Options["credMgmt"]; ok {
		return ctap.CmdCredentialManagement, nil
	}
	if _, ok := info.Options["credentialMgmtPreview"]; ok {
		return ctap.CmdCredentialManagementPre, nil
	}
	return 0, errors.New("client: key offers no credential management")
}

// do sends a subcommand; authed subcommands carry pinUvAuthParam over subCommand ‖ params.
func (m *CredMgmt) do(ctx context.Context, sub uint64, params *ctap.CredentialManagementParams, authed bool) (*ctap.CredentialManagementResponse, error) {
	cmd, err := m.command(ctx)
	if err != nil {
		return nil, err
	}
	req := &ctap.CredentialManagementRequest{SubCommand: ctap.Uint(sub)}
	if params != nil {
		if req.SubCommandParams, err = ctap.Marshal(params); err != nil {
			return nil, fmt.Errorf("client: encoding subCommandParams: %w", err)
		}
	}
	if authed {
		if m.tok == nil {
			return nil, errors.New("client: credential management needs a token")
		}
		msg := append([]byte{byte(sub)}, req.SubCommandParams...)
		req.PinUvAuthProtocol = m.tok.ProtocolParam()
		req.PinUvAuthParam = m.tok.Auth(msg)
	}
	var resp ctap.CredentialManagementResponse
	if err := m.c.call(ctx, cmd, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Metadata returns the number of discoverable credentials and how many more fit.
func (m *CredMgmt) Metadata(ctx context.Context) (existing, remaining uint64, err error) {
	resp, err := m.do(ctx, ctap.CMGetCredsMetadata, nil, true)
	if err != nil {
		return 0, 0, err
	}
	if resp.ExistingResidentCredentialsCount == nil || resp.MaxPossibleRemainingResidentCredentialsCount == nil {
		return 0, 0, fmt.Errorf("%w: getCredsMetadata: counts missing", ErrMalformedResponse)
	}
	return *resp.ExistingResidentCredentialsCount, *resp.MaxPossibleRemainingResidentCredentialsCount, nil
}

// RPs enumerates the relying parties that have discoverable credentials; none is an empty list.
func (m *CredMgmt) RPs(ctx context.Context) ([]RPInfo, error) {
	resp, err := m.do(ctx, ctap.CMEnumerateRPsBegin, nil, true)
	if errors.Is(err, ctap.ErrNoCredentials) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if resp.TotalRPs == nil {
		return nil, fmt.Errorf("%w: enumerateRPsBegin: totalRPs missing", ErrMalformedResponse)
	}
	total := *resp.TotalRPs
	var out []RPInfo
	for i := uint64(0); ; i++ {
		if resp.RP == nil || len(resp.RPIDHash) != 32 {
			return out, fmt.Errorf("%w: enumerateRPs: rp or rpIDHash missing", ErrMalformedResponse)
		}
		out = append(out, RPInfo{RP: *resp.RP, RPIDHash: resp.RPIDHash})
		if i+1 >= total {
			return out, nil
		}
		if resp, err = m.do(ctx, ctap.CMEnumerateRPsGetNextRP, nil, false); err != nil {
			return out, err
		}
	}
}

// Credentials enumerates the discoverable credentials of one relying party.
func (m *CredMgmt) Credentials(ctx context.Context, rpIDHash []byte) ([]CredentialInfo, error) {
	resp, err := m.do(ctx, ctap.CMEnumerateCredentialsBegin, &ctap.CredentialManagementParams{RPIDHash: rpIDHash}, true)
	if errors.Is(err, ctap.ErrNoCredentials) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if resp.TotalCredentials == nil {
		return nil, fmt.Errorf("%w: enumerateCredentialsBegin: totalCredentials missing", ErrMalformedResponse)
	}
	total := *resp.TotalCredentials
	var out []CredentialInfo
	for i := uint64(0); ; i++ {
		if resp.User == nil || resp.CredentialID == nil {
			return out, fmt.Errorf("%w: enumerateCredentials: user or credentialID missing", ErrMalformedResponse)
		}
		pk, err := cose.Unmarshal(resp.PublicKey)
		if err != nil {
			return out, fmt.Errorf("%w: enumerateCredentials: public key: %v", ErrMalformedResponse, err)
		}
		ci := CredentialInfo{User: *resp.User, CredentialID: *resp.CredentialID, PublicKey: pk, HasLargeBlobKey: len(resp.LargeBlobKey) > 0}
		if resp.CredProtect != nil {
			ci.CredProtect = *resp.CredProtect
		}
		out = append(out, ci)
		if i+1 >= total {
			return out, nil
		}
		if resp, err = m.do(ctx, ctap.CMEnumerateCredentialsGetNextCredential, nil, false); err != nil {
			return out, err
		}
	}
}

// DeleteCredential removes a discoverable credential.
func (m *CredMgmt) DeleteCredential(ctx context.Context, credentialID []byte) error {
	_, err := m.do(ctx, ctap.CMDeleteCredential, &ctap.CredentialManagementParams{
		CredentialID: &ctap.CredentialDescriptor{ID: credentialID, Type: ctap.CredentialTypePublicKey}}, true)
	return err
}

// UpdateUser replaces the name and displayName stored with a credential; user.ID must match.
func (m *CredMgmt) UpdateUser(ctx context.Context, credentialID []byte, user ctap.UserEntity) error {
	_, err := m.do(ctx, ctap.CMUpdateUserInformation, &ctap.CredentialManagementParams{
		CredentialID: &ctap.CredentialDescriptor{ID: credentialID, Type: ctap.CredentialTypePublicKey}, User: &user}, true)
	return err
}
