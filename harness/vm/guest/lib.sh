# Helpers for test scripts in fidolab's guest (harness/vm): /test.sh runs with these defined.

# die MSG...: print MSG and end the test with status 1.
die() { echo "FAIL: $*"; exit 1; }

# wait_for PATH [SECONDS]: wait until PATH exists (default 10, whole seconds); status 1 if it never does.
wait_for() {
	_n=$(( ${2:-10} * 20 ))
	while [ ! -e "$1" ]; do
		_n=$((_n - 1)); [ $_n -gt 0 ] || return 1
		sleep 0.05
	done
}

# wait_gone PATH [SECONDS]: wait until PATH no longer exists (default 10 s).
wait_gone() {
	_n=$(( ${2:-10} * 20 ))
	while [ -e "$1" ]; do
		_n=$((_n - 1)); [ $_n -gt 0 ] || return 1
		sleep 0.05
	done
}

# hidraw_of VID PID: print the /dev/hidrawN of the first HID device with those ids (hex, any case,
# e.g. 1209 f1d0); status 1 if there is none.
hidraw_of() {
	_want=$(printf '%08X:%08X' "0x$1" "0x$2")
	for _h in /sys/class/hidraw/hidraw*; do
		[ -e "$_h/device/uevent" ] || continue
		if grep -q "^HID_ID=....:$_want\$" "$_h/device/uevent"; then
			echo "/dev/${_h##*/}"; return 0
		fi
	done
	return 1
}

# wait_hidraw VID PID [SECONDS]: wait for hidraw_of VID PID to find a node and print it.
wait_hidraw() {
	_n=$(( ${3:-10} * 20 ))
	until hidraw_of "$1" "$2"; do
		_n=$((_n - 1)); [ $_n -gt 0 ] || return 1
		sleep 0.05
	done
}

# modprobe_all MODULE...: load modules, dying on the first that fails.
modprobe_all() {
	for _m in "$@"; do modprobe "$_m" || die "modprobe $_m"; done
}

# fido2_roundtrip DEVICE PIN: libfido2's command-line tools against the key at DEVICE: read
# getInfo, set PIN (unless the key has one), make a credential with it (fido2-cred -M), verify its
# attestation (fido2-cred -V), get an assertion with user verification (fido2-assert -G -v) and
# verify its signature with the credential's public key (fido2-assert -V -v). Files go to
# /tmp/fido2/. Status 0 only if every step succeeded.
fido2_roundtrip() {
	_dev=$1 _pin=$2 _d=/tmp/fido2
	mkdir -p $_d
	echo "fido2: getInfo of $_dev"
	fido2-token -I "$_dev" > $_d/info || { echo "fido2: fido2-token -I failed"; return 1; }
	cat $_d/info
	if grep -q 'noclientPin' $_d/info; then
		echo "fido2: setting a PIN"
		printf '%s\n%s\n' "$_pin" "$_pin" | fido2-token -S "$_dev" || { echo "fido2: fido2-token -S failed"; return 1; }
		fido2-token -I "$_dev" | grep -q 'clientPin' || { echo "fido2: no clientPin after -S"; return 1; }
	fi
	head -c 32 /dev/urandom | base64 > $_d/cred_param
	echo fidolab.example >> $_d/cred_param
	echo alice >> $_d/cred_param
	head -c 16 /dev/urandom | base64 >> $_d/cred_param
	echo "fido2: fido2-cred -M"
	echo "$_pin" | fido2-cred -M -i $_d/cred_param "$_dev" > $_d/cred || { echo "fido2: fido2-cred -M failed"; return 1; }
	fido2-cred -V -i $_d/cred -o $_d/cred_verified || { echo "fido2: fido2-cred -V failed"; return 1; }
	echo "fido2: credential $(head -1 $_d/cred_verified) made and its attestation verified"
	head -c 32 /dev/urandom | base64 > $_d/assert_param
	echo fidolab.example >> $_d/assert_param
	head -1 $_d/cred_verified >> $_d/assert_param
	sed 1d $_d/cred_verified > $_d/pubkey.pem
	echo "fido2: fido2-assert -G -v"
	echo "$_pin" | fido2-assert -G -v -i $_d/assert_param "$_dev" > $_d/assert || { echo "fido2: fido2-assert -G failed"; return 1; }
	fido2-assert -V -v -i $_d/assert $_d/pubkey.pem es256 || { echo "fido2: fido2-assert -V failed"; return 1; }
	echo "fido2: assertion with user verification verified"
}

# host_call NAME [SECONDS]: ask the host to run Config.HostCalls[NAME] and wait (default 60 s)
# for it to finish; the status is the handler's (0 ok, 1 error, 127 no such call).
host_call() {
	echo "fidolab-vm: host-call $FIDOLAB_VM_TOKEN $1"
	_t=${2:-60}
	while read -t "$_t" -r _l _k _n _rc < /dev/ttyS0; do
		[ "$_k" = host-reply ] && [ "$_n" = "$1" ] && return "$_rc"
	done
	echo "host_call $1: no reply"
	return 1
}
