# What the app test scripts share (sourced, after `work` is set): section headers and the check that a command
# fails with a message a user can act on.
step() { echo; echo "=== $*"; }
expect_fail() {  # expect_fail "message fragment" command...: must exit non-zero and say the fragment
  local want=$1; shift
  if "$@" > "$work/out.txt" 2>&1; then echo "FAIL: expected an error from: $*"; cat "$work/out.txt"; exit 1; fi
  grep -qF -- "$want" "$work/out.txt" || { echo "FAIL: error from '$*' lacks '$want':"; cat "$work/out.txt"; exit 1; }
  echo "ok: '$*' -> $(head -c 300 "$work/out.txt" | tr '\n' ' ')"
}
