package host

// Action names (Action.Name). The model implements them; the catalog uses them.
const (
	// ActRegister registers Account's key in Entra "Security info" from a browser on this device
	// (sets PIN first if the key has none, as the browser's set-up flow does).
	ActRegister = "register"
	// ActSetPIN sets NewPIN on a key that has no PIN.
	ActSetPIN = "set-pin"
	// ActLockScreenSignIn signs in at the Windows lock screen with the key and PIN.
	ActLockScreenSignIn = "lock-screen-sign-in"
	// ActUnlock unlocks a device locked by the signed-in user, with the key and PIN.
	ActUnlock = "unlock"
	// ActWebAuthnSignIn is a browser sign-in to an Entra app; Pick is the account chosen in the picker.
	ActWebAuthnSignIn = "webauthn-sign-in"
	// ActGoOffline takes the device off the network.
	ActGoOffline = "go-offline"
	// ActGoOnline puts the device back on the network.
	ActGoOnline = "go-online"
	// ActSignOut signs the current user out.
	ActSignOut = "sign-out"
	// ActChangePIN is Settings › Accounts › Sign-in options › Security Key › Manage › change PIN (PIN, NewPIN).
	ActChangePIN = "change-pin"
	// ActEnrollFingerprint is the same Manage page's fingerprint enrolment (PIN, Args "name").
	ActEnrollFingerprint = "enroll-fingerprint"
	// ActResetKey is the same Manage page's reset.
	ActResetKey = "reset-key"
	// ActReplug unplugs and replugs the key (power-up).
	ActReplug = "replug"
	// ActWait lets Args "seconds" pass.
	ActWait = "wait"
	// ActRemoveKey deletes this key from Account's Security info on the Entra side.
	ActRemoveKey = "remove-key"
	// ActBlockAAGUID adds Args "aaguid" ("key" = this key's) to the tenant's key restriction block list.
	ActBlockAAGUID = "block-aaguid"
	// ActAllowAAGUID adds Args "aaguid" ("key" = this key's) to the tenant's key restriction allow list.
	ActAllowAAGUID = "allow-aaguid"
	// ActRegisterOtherSite registers a passkey for Account at another website (Args "rp", its
	// relying party ID) from a browser on this device: a credential of another relying party on
	// the same key.
	ActRegisterOtherSite = "register-other-site"
	// ActRegisterOtherTenant registers the key for Account of another organisation's Entra tenant
	// (Args "tenant", its name) from a browser on this device: a second Microsoft Entra account on
	// the key, for the same relying party login.microsoft.com, that this device's tenant does not know.
	ActRegisterOtherTenant = "register-other-tenant"
	// ActRemoteSignIn signs in to an Entra app inside a remote session (Args "via" rdp, vdi or
	// citrix; "redirection" true/false: WebAuthn or FIDO2 redirection to the local key; "at"
	// session (default) or logon: in the session, or at the remote logon screen).
	ActRemoteSignIn = "remote-sign-in"
	// ActRDPSignIn is ActRemoteSignIn via rdp (the catalog's older spelling).
	ActRDPSignIn = "rdp-sign-in"
	// ActRunAs is "Run as different user" with the key.
	ActRunAs = "run-as"
	// ActSMIMESign signs e-mail with S/MIME using the key.
	ActSMIMESign = "smime-sign"
	// ActServerSignIn signs in to Windows Server with the key.
	ActServerSignIn = "server-sign-in"
	// ActAuthenticatorPasskeySignIn uses a Microsoft Authenticator passkey at the lock screen.
	ActAuthenticatorPasskeySignIn = "authenticator-passkey-sign-in"
)

// Outcome kinds (result.Outcome.Kind).
const (
	// KindSignedIn means Account is signed in.
	KindSignedIn = "signed-in"
	// KindUnlocked means the device was unlocked for Account.
	KindUnlocked = "unlocked"
	// KindRegistered means Account's key was registered.
	KindRegistered = "registered"
	// KindDone means the action completed with nothing more to say.
	KindDone = "done"
	// KindError means the action failed; Code says why.
	KindError = "error"
	// KindNotOffered means the security-key option does not appear; Code says why.
	KindNotOffered = "not-offered"
)

// Outcome codes (result.Outcome.Code).
const (
	// CodeVersionUnsupported: the Windows version does not support this.
	CodeVersionUnsupported = "version-unsupported"
	// CodeJoinUnsupported: the join type does not support this.
	CodeJoinUnsupported = "join-unsupported"
	// CodeNotEnabled: no (or an ineffective) enabling policy.
	CodeNotEnabled = "not-enabled"
	// CodePolicyNotApplied: the Intune WHfB setting does not reach an already provisioned device.
	CodePolicyNotApplied = "policy-not-applied"
	// CodeSharedPCRequired: a provisioning package on 1903 also needs EnableSharedPCMode.
	CodeSharedPCRequired = "shared-pc-required"
	// CodeGPOHybridOnly: the group policy applies to hybrid joined devices only.
	CodeGPOHybridOnly = "gpo-hybrid-only"
	// CodeUnsupportedScenario: a scenario the document lists as unsupported.
	CodeUnsupportedScenario = "unsupported-scenario"
	// CodePINInvalid: wrong PIN.
	CodePINInvalid = "pin-invalid"
	// CodePINBlocked: no PIN retries left; the key must be reset.
	CodePINBlocked = "pin-blocked"
	// CodePINAuthBlocked: too many wrong PINs since power-up; replug the key.
	CodePINAuthBlocked = "pin-auth-blocked"
	// CodePINRequired: the key has no PIN, or none was typed.
	CodePINRequired = "pin-required"
	// CodePINPolicy: the new PIN breaks the key's PIN policy (length, complexity).
	CodePINPolicy = "pin-policy"
	// CodeNoCredentials: the key holds no credential for login.microsoft.com.
	CodeNoCredentials = "no-credentials"
	// CodeKeyStoreFull: the key has no room for another resident credential.
	CodeKeyStoreFull = "key-store-full"
	// CodeNoHMACSecret: the key lacks the hmac-secret extension.
	CodeNoHMACSecret = "no-hmac-secret"
	// CodeNoResidentKeys: the key cannot store resident (discoverable) credentials.
	CodeNoResidentKeys = "no-resident-keys"
	// CodeNoUserVerification: the key offers neither a PIN nor built-in user verification.
	CodeNoUserVerification = "no-user-verification"
	// CodeAttestationRejected: attestation enforcement refused the key's attestation.
	CodeAttestationRejected = "attestation-rejected"
	// CodeAAGUIDBlocked: the tenant's key restriction refuses the key's AAGUID.
	CodeAAGUIDBlocked = "aaguid-blocked"
	// CodeCredentialRevoked: the credential was removed from Security info.
	CodeCredentialRevoked = "credential-revoked"
	// CodeOnPremNotSetUp: a hybrid joined device whose organisation has not completed "Enable
	// FIDO2 authentication to on-premises resources" (no Microsoft Entra Kerberos server object, or
	// no patched writable domain controller): Windows gets no Active Directory TGT.
	CodeOnPremNotSetUp = "onprem-not-set-up"
	// CodeOfflineNoCachedSecret: offline, and no cached secret from an earlier online sign-in.
	CodeOfflineNoCachedSecret = "offline-no-cached-secret"
	// CodeOfflineSecretMismatch: offline, and the key's hmac-secret output differs from the cache.
	CodeOfflineSecretMismatch = "offline-secret-mismatch"
	// CodeResetNotAllowed: reset asked more than 10 s after power-up.
	CodeResetNotAllowed = "reset-not-allowed"
	// CodeResetFailed: Settings › Manage › Reset ended with Windows saying the key could not be
	// reset (the key refused authenticatorReset for another reason than the power-up window).
	CodeResetFailed = "reset-failed"
	// CodeUserCancelled: the user cancelled.
	CodeUserCancelled = "user-cancelled"
	// CodeTimeout: the key did not answer (or the user did not touch it) in time.
	CodeTimeout = "timeout"
	// CodeKeyError: anything else; Reason says what.
	CodeKeyError = "key-error"
)

// Field-report probes (Config.Probes): requests a public report says Windows sends besides the
// real one on some path (docs/scenarios.md, known field failures).
const (
	// ProbeBrowserPreflight: on a browser sign-in, the getAssertion is first sent with up=false
	// and the same PIN token, then for real (BryanJacobs/FIDO2Applet #34).
	ProbeBrowserPreflight = "browser-pre-flight"
	// ProbeSilentUP: at the lock screen, a getAssertion with up=false and no PIN before anything
	// else (inferred: mooltipass/minible PR #168 suggests it for Windows, unconfirmed).
	ProbeSilentUP = "silent-up0"
)

// Probes lists the field-report probe names.
var Probes = []string{ProbeBrowserPreflight, ProbeSilentUP}
