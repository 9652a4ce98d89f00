package ctap

// MakeCredentialRequest is authenticatorMakeCredential's parameter map.
type MakeCredentialRequest struct {
	ClientDataHash        Bytes                     `cbor:"1,keyasint,omitempty"`
	RP                    *RPEntity                 `cbor:"2,keyasint,omitempty"`
	User                  *UserEntity               `cbor:"3,keyasint,omitempty"`
	PubKeyCredParams      []CredentialParam         `cbor:"4,keyasint,omitempty"`
	ExcludeList           []CredentialDescriptor    `cbor:"5,keyasint,omitempty"`
	Extensions            *MakeCredentialExtensions `cbor:"6,keyasint,omitempty"`
	Options               *Options                  `cbor:"7,keyasint,omitempty"`
	PinUvAuthParam        Bytes                     `cbor:"8,keyasint,omitempty"`
	PinUvAuthProtocol     *uint64                   `cbor:"9,keyasint,omitempty"`
	EnterpriseAttestation *uint64                   `cbor:"10,keyasint,omitempty"`
}

// DecodeMakeCredential decodes and checks the mandatory parameters.
func DecodeMakeCredential(b []byte) (*MakeCredentialRequest, error) {
	var r MakeCredentialRequest
	if err := Unmarshal(b, &r); err != nil {
		return nil, err
	}
	switch {
	case r.ClientDataHash == nil:
		return nil, Errorf(ErrMissingParameter, "makeCredential: clientDataHash missing")
	case r.RP == nil || r.RP.ID == "":
		return nil, Errorf(ErrMissingParameter, "makeCredential: rp.id missing")
	case r.User == nil || r.User.ID == nil:
		return nil, Errorf(ErrMissingParameter, "makeCredential: user.id missing")
	case r.PubKeyCredParams == nil:
		return nil, Errorf(ErrMissingParameter, "makeCredential: pubKeyCredParams missing")
	}
	for _, p := range r.PubKeyCredParams {
		if p.Alg == nil || p.Type == "" {
			return nil, Errorf(ErrMissingParameter, "makeCredential: pubKeyCredParams entry lacks alg or type")
		}
	}
	for _, d := range r.ExcludeList {
		if d.ID == nil || d.Type == "" {
			return nil, Errorf(ErrMissingParameter, "makeCredential: excludeList entry lacks id or type")
		}
	}
	return &r, nil
}

// AttStmt is an attestation statement: packed (alg, sig, optional x5c) or none (empty map).
type AttStmt struct {
	Alg int64    `cbor:"alg,omitempty"`
	Sig []byte   `cbor:"sig,omitempty"`
	X5C [][]byte `cbor:"x5c,omitempty"`
}

// Attestation formats.
const (
	FormatPacked = "packed"
	FormatNone   = "none"
	FormatU2F    = "fido-u2f"
)

// MakeCredentialResponse is authenticatorMakeCredential's response map.
type MakeCredentialResponse struct {
	Fmt          string  `cbor:"1,keyasint"`
	AuthData     []byte  `cbor:"2,keyasint"`
	AttStmt      AttStmt `cbor:"3,keyasint"`
	EpAtt        *bool   `cbor:"4,keyasint,omitempty"`
	LargeBlobKey []byte  `cbor:"5,keyasint,omitempty"`
}
