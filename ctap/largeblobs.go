package ctap

// LargeBlobsRequest is authenticatorLargeBlobs' parameter map.
type LargeBlobsRequest struct {
	Get               *uint64 `cbor:"1,keyasint,omitempty"`
	Set               Bytes   `cbor:"2,keyasint,omitempty"`
	Offset            *uint64 `cbor:"3,keyasint,omitempty"`
	Length            *uint64 `cbor:"4,keyasint,omitempty"`
	PinUvAuthParam    Bytes   `cbor:"5,keyasint,omitempty"`
	PinUvAuthProtocol *uint64 `cbor:"6,keyasint,omitempty"`
}

// DecodeLargeBlobs decodes the request.
func DecodeLargeBlobs(b []byte) (*LargeBlobsRequest, error) {
	var r LargeBlobsRequest
	if err := Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if r.Offset == nil {
		return nil, Errorf(ErrMissingParameter, "largeBlobs: offset missing")
	}
	return &r, nil
}

// LargeBlobsResponse is authenticatorLargeBlobs' response map.
type LargeBlobsResponse struct {
	Config []byte `cbor:"1,keyasint"`
}
