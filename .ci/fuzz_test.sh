#!/usr/bin/env bash
# Self-test of .ci/fuzz against a fake `go` that plays the fuzzing engine: an engine deadline
# (golang/go#75804) must not fail the run, a finding must, and the retry must use a count budget.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/.ci" "$work/bin" "$work/pkg"
cp "$here/fuzz" "$work/.ci/fuzz"
printf 'package pkg\n\nfunc FuzzParse(f *testing.F) {}\n' >"$work/pkg/p_test.go"
cat >"$work/bin/go" <<'FAKE'
#!/usr/bin/env bash
# Fake go: `go list` names one package; `go test -fuzz` behaves as $FAKE_MODE says and logs its args.
case "$1" in
list) if [ "$2" = "-f" ]; then echo "$PWD/pkg"; else echo example.com/pkg; fi; exit 0 ;;
esac
echo "$*" >>"$FAKE_CALLS"
fuzztime=""
while [ $# -gt 0 ]; do [ "$1" = "-fuzztime" ] && fuzztime=$2; shift; done
case "$FAKE_MODE" in
deadline) # every duration-limited run ends in the engine's deadline; count-limited runs pass
  if [[ "$fuzztime" == *x ]]; then echo "fuzz: elapsed: 2s, execs: ${fuzztime%x} (1000/sec)"; echo PASS; exit 0; fi
  printf 'fuzz: elapsed: 3s, execs: 4321 (1440/sec), new interesting: 3 (total: 9)\n--- FAIL: FuzzParse (4.01s)\n    context deadline exceeded\nFAIL\n'
  exit 1 ;;
crasher)
  mkdir -p pkg/testdata/fuzz/FuzzParse && echo 'go test fuzz v1' >pkg/testdata/fuzz/FuzzParse/deadbeef
  printf -- '--- FAIL: FuzzParse (0.20s)\n    panic: boom\n    Failing input written to testdata/fuzz/FuzzParse/deadbeef\nFAIL\n'
  exit 1 ;;
deadline-and-crasher) # the deadline message, but a finding was written: a finding
  mkdir -p pkg/testdata/fuzz/FuzzParse && echo 'go test fuzz v1' >pkg/testdata/fuzz/FuzzParse/cafe
  printf -- '--- FAIL: FuzzParse (4.00s)\n    context deadline exceeded\nFAIL\n'
  exit 1 ;;
other) printf -- '--- FAIL: FuzzParse/seed#0\n    wrong answer\nFAIL\n'; exit 1 ;;
pass) echo "fuzz: elapsed: 4s, execs: 9000"; echo PASS; exit 0 ;;
esac
FAKE
chmod +x "$work/bin/go"
export PATH="$work/bin:$PATH" FAKE_CALLS="$work/calls"
check() { # MODE WANT_EXIT [grep pattern in the calls]
  rm -f "$FAKE_CALLS"; rm -rf "$work/pkg/testdata"
  local got=0
  FAKE_MODE=$1 bash "$work/.ci/fuzz" 4s >"$work/out" 2>&1 || got=$?
  if [ "$got" != "$2" ]; then echo "FAIL: mode $1: exit $got, want $2"; cat "$work/out"; exit 1; fi
  if [ $# -ge 3 ] && ! grep -qE -- "$3" "$FAKE_CALLS"; then echo "FAIL: mode $1: no call matching $3"; cat "$FAKE_CALLS"; exit 1; fi
  echo "ok: mode $1 exits $2"
}
check pass 0 '-fuzztime 4s -parallel 1'
check deadline 0 '-fuzztime 4321x'
check crasher 1
check deadline-and-crasher 1
check other 1
[ "$(wc -l <"$FAKE_CALLS")" = 1 ] || { echo "FAIL: a real failure was retried"; exit 1; }
echo "fuzz self-test passed"
