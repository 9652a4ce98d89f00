package ctap

// GetAssertionRequest is authenticatorGetAssertion's parameter map.
type GetAssertionRequest struct {
	RPID              string                  `cbor:"1,keyasint,omitempty"`
	ClientDataHash    Bytes                   `cbor:"2,keyasint,omitempty"`
	AllowList         []CredentialDescriptor  `cbor:"3,keyasint,omitempty"`
	Extensions        *GetAssertionExtensions `cbor:"4,keyasint,omitempty"`
	Options           *Options                `cbor:"5,keyasint,omitempty"`
	PinUvAuthParam    Bytes                   `cbor:"6,keyasint,omitempty"`
	PinUvAuthProtocol *uint64                 `cbor:"7,keyasint,omitempty"`
}

// DecodeGetAssertion decodes and checks the mandatory parameters. Common, well-formed requests
// take a hand-written decoder; everything else, and every error, the generic one.
func DecodeGetAssertion(b []byte) (*GetAssertionRequest, error) {
	if r, ok := decodeGetAssertionFast(b); ok {
		return checkGetAssertion(r)
	}
	return decodeGetAssertionGeneric(b)
}

// decodeGetAssertionGeneric is DecodeGetAssertion with the generic decoder only.
func decodeGetAssertionGeneric(b []byte) (*GetAssertionRequest, error) {
	var r GetAssertionRequest
	if err := Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return checkGetAssertion(&r)
}

// checkGetAssertion checks the mandatory parameters of a decoded request.
func checkGetAssertion(r *GetAssertionRequest) (*GetAssertionRequest, error) {
	switch {
	case r.RPID == "":
		return nil, Errorf(ErrMissingParameter, "getAssertion: rpId missing")
	case r.ClientDataHash == nil:
		return nil, Errorf(ErrMissingParameter, "getAssertion: clientDataHash missing")
	}
	for _, d := range r.AllowList {
		if d.ID == nil || d.Type == "" {
			return nil, Errorf(ErrMissingParameter, "getAssertion: allowList entry lacks id or type")
		}
	}
	return r, nil
}

// GetAssertionResponse is the response map of getAssertion and getNextAssertion.
type GetAssertionResponse struct {
	Credential          *CredentialDescriptor `cbor:"1,keyasint,omitempty"`
	AuthData            []byte                `cbor:"2,keyasint"`
	Signature           []byte                `cbor:"3,keyasint"`
	User                *UserEntity           `cbor:"4,keyasint,omitempty"`
	NumberOfCredentials int                   `cbor:"5,keyasint,omitempty"`
	UserSelected        *bool                 `cbor:"6,keyasint,omitempty"`
	LargeBlobKey        []byte                `cbor:"7,keyasint,omitempty"`
}
