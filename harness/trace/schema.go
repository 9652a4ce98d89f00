package trace

import (
	"strconv"
	"strings"

	"github.com/fidolab/fidolab/ctap"
)

// A schema names the members of a CTAP map (CTAP 2.1 §6) and says which hold secrets.
type schema struct {
	fields map[any]*field // keys: int64 or string
	elem   *schema        // for an array: the schema of its elements
}

type field struct {
	name   string
	secret bool             // redacted unless secrets are kept
	child  *schema          // the value's own schema (a map, or an array via elem)
	values map[int64]string // names of integer values (subCommand)
	// authData marks authenticator data: its extension outputs are walked for secrets.
	authData bool
}

func (s *schema) lookup(k any) *field {
	if s == nil || k == nil {
		return nil
	}
	return s.fields[k]
}

func names(kv ...any) *schema {
	s := &schema{fields: map[any]*field{}}
	for i := 0; i+1 < len(kv); i += 2 {
		var key any
		switch k := kv[i].(type) {
		case int:
			key = int64(k)
		default:
			key = k
		}
		switch v := kv[i+1].(type) {
		case string:
			s.fields[key] = &field{name: v}
		case *field:
			s.fields[key] = v
		}
	}
	return s
}

func secret(name string) *field                   { return &field{name: name, secret: true} }
func nested(name string, s *schema) *field        { return &field{name: name, child: s} }
func enum(name string, v map[int64]string) *field { return &field{name: name, values: v} }

var (
	coseKey = names(1, "kty", 3, "alg", -1, "crv", -2, "x", -3, "y")
	// hmacSecretInput is the hmac-secret (and hmac-secret-mc) extension input: the salts travel
	// encrypted under the shared secret, but they are what the host derives its keys from.
	hmacSecretInput = names(1, nested("keyAgreement", coseKey), 2, secret("saltEnc"), 3, secret("saltAuth"),
		4, "pinUvAuthProtocol")
	extensionInputs = names("hmac-secret", nested("", hmacSecretInput), "hmac-secret-mc", nested("", hmacSecretInput))

	makeCredentialRequest = names(1, "clientDataHash", 2, "rp", 3, "user", 4, "pubKeyCredParams", 5, "excludeList",
		6, nested("extensions", extensionInputs), 7, "options", 8, secret("pinUvAuthParam"), 9, "pinUvAuthProtocol",
		10, "enterpriseAttestation", 11, "attestationFormatsPreference")
	makeCredentialResponse = names(1, "fmt", 2, &field{name: "authData", authData: true}, 3, "attStmt", 4, "epAtt",
		5, secret("largeBlobKey"), 6, "unsignedExtensionOutputs")
	getAssertionRequest = names(1, "rpId", 2, "clientDataHash", 3, "allowList", 4, nested("extensions", extensionInputs),
		5, "options", 6, secret("pinUvAuthParam"), 7, "pinUvAuthProtocol")
	getAssertionResponse = names(1, "credential", 2, &field{name: "authData", authData: true}, 3, "signature", 4, "user",
		5, "numberOfCredentials", 6, "userSelected", 7, secret("largeBlobKey"), 8, "unsignedExtensionOutputs")
	getInfoResponse = names(1, "versions", 2, "extensions", 3, "aaguid", 4, "options", 5, "maxMsgSize",
		6, "pinUvAuthProtocols", 7, "maxCredentialCountInList", 8, "maxCredentialIdLength", 9, "transports",
		10, "algorithms", 11, "maxSerializedLargeBlobArray", 12, "forcePINChange", 13, "minPINLength",
		14, "firmwareVersion", 15, "maxCredBlobLength", 16, "maxRPIDsForSetMinPINLength",
		17, "preferredPlatformUvAttempts", 18, "uvModality", 19, "certifications",
		20, "remainingDiscoverableCredentials", 21, "vendorPrototypeConfigCommands", 22, "attestationFormats",
		23, "uvCountSinceLastPinEntry", 24, "longTouchForReset")
	clientPINRequest = names(1, "pinUvAuthProtocol", 2, enum("subCommand", map[int64]string{
		1: "getPINRetries", 2: "getKeyAgreement", 3: "setPIN", 4: "changePIN", 5: "getPinToken",
		6: "getPinUvAuthTokenUsingUvWithPermissions", 7: "getUVRetries",
		9: "getPinUvAuthTokenUsingPinWithPermissions"}),
		3, nested("keyAgreement", coseKey), 4, secret("pinUvAuthParam"), 5, secret("newPinEnc"),
		6, secret("pinHashEnc"), 9, "permissions", 10, "rpId")
	clientPINResponse = names(1, nested("keyAgreement", coseKey), 2, secret("pinUvAuthToken"), 3, "pinRetries",
		4, "powerCycleState", 5, "uvRetries")
	credMgmtRequest = names(1, enum("subCommand", map[int64]string{
		1: "getCredsMetadata", 2: "enumerateRPsBegin", 3: "enumerateRPsGetNextRP", 4: "enumerateCredentialsBegin",
		5: "enumerateCredentialsGetNextCredential", 6: "deleteCredential", 7: "updateUserInformation"}),
		2, nested("subCommandParams", names(1, "rpIDHash", 2, "credentialID", 3, "user")),
		3, "pinUvAuthProtocol", 4, secret("pinUvAuthParam"))
	credMgmtResponse = names(1, "existingResidentCredentialsCount", 2, "maxPossibleRemainingResidentCredentialsCount",
		3, "rp", 4, "rpIDHash", 5, "totalRPs", 6, "user", 7, "credentialID", 8, nested("publicKey", coseKey),
		9, "totalCredentials", 10, "credProtect", 11, secret("largeBlobKey"), 12, "thirdPartyPayment")
	bioRequest = names(1, "modality", 2, enum("subCommand", map[int64]string{
		1: "enrollBegin", 2: "enrollCaptureNextSample", 3: "cancelCurrentEnrollment", 4: "enumerateEnrollments",
		5: "setFriendlyName", 6: "removeEnrollment", 7: "getFingerprintSensorInfo"}),
		3, nested("subCommandParams", names(1, "templateId", 2, "templateFriendlyName", 3, "timeoutMilliseconds")),
		4, "pinUvAuthProtocol", 5, secret("pinUvAuthParam"), 6, "getModality")
	bioResponse = names(1, "modality", 2, "fingerprintKind", 3, "maxCaptureSamplesRequiredForEnroll", 4, "templateId",
		5, "lastEnrollSampleStatus", 6, "remainingSamples", 7, "templateInfos", 8, "maxTemplateFriendlyName")
	largeBlobsRequest  = names(1, "get", 2, "set", 3, "offset", 4, "length", 5, secret("pinUvAuthParam"), 6, "pinUvAuthProtocol")
	largeBlobsResponse = names(1, "config")
	configRequest      = names(1, enum("subCommand", map[int64]string{
		1: "enableEnterpriseAttestation", 2: "toggleAlwaysUv", 3: "setMinPINLength", 0xff: "vendorPrototype"}),
		2, nested("subCommandParams", names(1, "newMinPINLength", 2, "minPinLengthRPIDs", 3, "forceChangePin")),
		3, "pinUvAuthProtocol", 4, secret("pinUvAuthParam"))

	// authDataExtensions are the extension outputs inside authData: hmac-secret's is the
	// encrypted output the host turns into keys (a byte string at getAssertion; true at
	// makeCredential, which is left alone).
	authDataExtensions = names("hmac-secret", secret(""), "hmac-secret-mc", secret(""))
)

// schemas gives each CTAP2 command's request and response schema.
var schemas = map[ctap.Command][2]*schema{
	ctap.CmdMakeCredential:          {makeCredentialRequest, makeCredentialResponse},
	ctap.CmdGetAssertion:            {getAssertionRequest, getAssertionResponse},
	ctap.CmdGetNextAssertion:        {nil, getAssertionResponse},
	ctap.CmdGetInfo:                 {nil, getInfoResponse},
	ctap.CmdClientPIN:               {clientPINRequest, clientPINResponse},
	ctap.CmdCredentialManagement:    {credMgmtRequest, credMgmtResponse},
	ctap.CmdCredentialManagementPre: {credMgmtRequest, credMgmtResponse},
	ctap.CmdBioEnrollment:           {bioRequest, bioResponse},
	ctap.CmdBioEnrollmentPre:        {bioRequest, bioResponse},
	ctap.CmdLargeBlobs:              {largeBlobsRequest, largeBlobsResponse},
	ctap.CmdConfig:                  {configRequest, nil},
}

// hasSecrets reports whether s or anything below it holds a secret.
func (s *schema) hasSecrets() bool {
	if s == nil {
		return false
	}
	if s.elem.hasSecrets() {
		return true
	}
	for _, f := range s.fields {
		if f.secret || f.authData || f.child.hasSecrets() {
			return true
		}
	}
	return false
}

// MemberName names a member of a CTAP2 request (response false) or answer by its path of map
// keys ("4", "clientPin" → "options.clientPin"; "2", "aaguid" → "authData.aaguid"). Keys the
// schema does not name, and array indices, are kept as they are.
func MemberName(cmd ctap.Command, response bool, path []string) string {
	s := schemas[cmd][0]
	if response {
		s = schemas[cmd][1]
	}
	out := make([]string, 0, len(path))
	for _, seg := range path {
		var key any = seg
		if n, err := strconv.ParseInt(seg, 10, 64); err == nil {
			key = n
			if s != nil && s.elem != nil {
				out = append(out, seg)
				s = s.elem
				continue
			}
		}
		f := s.lookup(key)
		if f == nil || f.name == "" {
			out = append(out, seg)
			s = nil
			if f != nil {
				s = f.child
			}
			continue
		}
		out = append(out, f.name)
		s = f.child
	}
	return strings.Join(out, ".")
}
