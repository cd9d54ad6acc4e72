#!/usr/bin/env bash
# The simulator's long profile: more seeds and larger committees than the default suite
# (libs/beat-sim/tests/suite.rs runs every variant × adversary for n ∈ {4, 7, 10, 16}, and the
# BEAT3/BEAT4 storage profiles for n ∈ {4, 7}, on a few seeds). `--variant all` is every
# profile: beat0..beat4 with full delivery plus beat3/beat4 -encrypted and -commitments.
# Seeds here start where the suite's stop, so together they cover:
#
#   n = 4   seeds 1..26   every profile × every adversary
#   n = 7   seeds 1..10   every profile × every adversary
#   n = 10  seeds 1..4    every variant × every adversary (storage profiles: seeds 2..4)
#   n = 16  seeds 1..2    every variant × every adversary (storage profiles: seed 2)
#   n = 31  seed 1        every variant and beat4-commitments × {benign,
#                         equivocating-proposer, aba-equivocation, wrong-coin-shares,
#                         wrong-decryption-shares}
#
# plus the issue-59 attack on binary agreement for n = 4 and 7 over 200 seeds. Runs two
# `beat-sim check` processes at a time (one per core); any violation fails the script and the
# output names variant, n, adversary, seed and invariant. Reproduce one with
#   target/release/beat-sim check --variant V --nodes N --adversary A --seeds S..S
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p beat-sim --bin beat-sim
sim="${CARGO_TARGET_DIR:-target}/release/beat-sim"
jobs="${SIM_JOBS:-2}"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

runs=(
  "--variant all --adversary all --nodes 4 --seeds 7..16"
  "--variant all --adversary all --nodes 4 --seeds 17..26"
  "--variant all --adversary all --nodes 7 --seeds 3..6"
  "--variant all --adversary all --nodes 7 --seeds 7..10"
  "--variant all --adversary all --nodes 10 --seeds 2..4"
  "--variant all --adversary all --nodes 16 --seeds 2..2"
  "--adversary issue59 --nodes 4 --seeds 1..200"
  "--adversary issue59 --nodes 7 --seeds 1..200"
)
for a in benign equivocating-proposer aba-equivocation wrong-coin-shares wrong-decryption-shares; do
  for v in beat0 beat1 beat2 beat3 beat4 beat4-commitments; do
    runs+=("--variant $v --adversary $a --nodes 31 --seeds 1..1")
  done
done

start=$SECONDS
i=0
for r in "${runs[@]}"; do
  i=$((i + 1))
  printf '%s\n' "$i $r"
done | xargs -P "$jobs" -L 1 bash -c '
  id=$1; shift
  if "'"$sim"'" check "$@" > "'"$logs"'/$id.log" 2>&1; then
    echo "ok    beat-sim check $* ($(tail -n 1 "'"$logs"'/$id.log"))"
  else
    echo "FAIL  beat-sim check $*"; grep -E "^FAIL|Error" "'"$logs"'/$id.log" | head -20; exit 255
  fi' _
echo "long simulator profile passed in $((SECONDS - start)) s"
