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
