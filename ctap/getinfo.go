package ctap

// Version strings of getInfo.
const (
	VersionU2F       = "U2F_V2"
	VersionFIDO20    = "FIDO_2_0"
	VersionFIDO21    = "FIDO_2_1"
	VersionFIDO21Pre = "FIDO_2_1_PRE"
)

// AlgorithmParam is one entry of getInfo's algorithms list.
type AlgorithmParam struct {
	Alg  int64  `cbor:"alg"`
	Type string `cbor:"type"`
}

// GetInfoResponse is authenticatorGetInfo's response map (CTAP 2.1 §6.4).
type GetInfoResponse struct {
	Versions                         []string         `cbor:"1,keyasint"`
	Extensions                       []string         `cbor:"2,keyasint,omitempty"`
	AAGUID                           []byte           `cbor:"3,keyasint"`
	Options                          map[string]bool  `cbor:"4,keyasint,omitempty"`
	MaxMsgSize                       uint64           `cbor:"5,keyasint,omitempty"`
	PinUvAuthProtocols               []uint64         `cbor:"6,keyasint,omitempty"`
	MaxCredentialCountInList         uint64           `cbor:"7,keyasint,omitempty"`
	MaxCredentialIDLength            uint64           `cbor:"8,keyasint,omitempty"`
	Transports                       []string         `cbor:"9,keyasint,omitempty"`
	Algorithms                       []AlgorithmParam `cbor:"10,keyasint,omitempty"`
	MaxSerializedLargeBlobArray      uint64           `cbor:"11,keyasint,omitempty"`
	ForcePINChange                   *bool            `cbor:"12,keyasint,omitempty"`
	MinPINLength                     uint64           `cbor:"13,keyasint,omitempty"`
	FirmwareVersion                  uint64           `cbor:"14,keyasint,omitempty"`
	MaxCredBlobLength                uint64           `cbor:"15,keyasint,omitempty"`
	MaxRPIDsForSetMinPINLength       uint64           `cbor:"16,keyasint,omitempty"`
	PreferredPlatformUVAttempts      uint64           `cbor:"17,keyasint,omitempty"`
	UVModality                       uint64           `cbor:"18,keyasint,omitempty"`
	Certifications                   map[string]int64 `cbor:"19,keyasint,omitempty"`
	RemainingDiscoverableCredentials *uint64          `cbor:"20,keyasint,omitempty"`
	VendorPrototypeConfigCommands    []uint64         `cbor:"21,keyasint,omitempty"`
	// CTAP 2.2 §6.4 members (0x16 attestationFormats, 0x17 uvCountSinceLastPinEntry and
	// 0x19 encIdentifier are not offered by any persona).
	LongTouchForReset      *bool    `cbor:"24,keyasint,omitempty"` // 0x18
	TransportsForReset     []string `cbor:"26,keyasint,omitempty"` // 0x1A
	PinComplexityPolicy    *bool    `cbor:"27,keyasint,omitempty"` // 0x1B
	PinComplexityPolicyURL []byte   `cbor:"28,keyasint,omitempty"` // 0x1C
}

// HasVersion reports whether v is among the advertised versions.
func (g *GetInfoResponse) HasVersion(v string) bool {
	for _, x := range g.Versions {
		if x == v {
			return true
		}
	}
	return false
}

// HasExtension reports whether the extension identifier e is advertised.
func (g *GetInfoResponse) HasExtension(e string) bool {
	for _, x := range g.Extensions {
		if x == e {
			return true
		}
	}
	return false
}

// Option returns the value of an option and whether the key advertised it at all.
func (g *GetInfoResponse) Option(name string) (value, present bool) {
	value, present = g.Options[name]
	return value, present
}
