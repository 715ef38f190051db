# What the app test scripts share (sourced first; expect_fail writes under $work): the loud skip without the shared
# data, section headers, and the check that a command fails with a message a user can act on.
step() { echo; echo "=== $*"; }
expect_fail() {  # expect_fail "message fragment" command...: must exit non-zero and say the fragment
  local want=$1; shift
  if "$@" > "$work/out.txt" 2>&1; then echo "FAIL: expected an error from: $*"; cat "$work/out.txt"; exit 1; fi
  grep -qF -- "$want" "$work/out.txt" || { echo "FAIL: error from '$*' lacks '$want':"; cat "$work/out.txt"; exit 1; }
  echo "ok: '$*' -> $(head -c 300 "$work/out.txt" | tr '\n' ' ')"
}
need_shared_data() {  # need_shared_data PATH...: a loud skip (exit 77, ctest's "skipped") when one is missing
  local p
  for p in "$@"; do
    [ -e "$p" ] || { echo "SKIPPED: shared data missing ($p)"; exit 77; }
  done
}
