#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/fuzz_targets), each for the given number of seconds, starting
# from the committed seeds (fuzz/seeds/<target>) and the corpus kept in fuzz/corpus/<target>.
#
#   bash scripts/fuzz.sh                 # 60 s per target
#   bash scripts/fuzz.sh 600 path_normalize token_signed
#
# cargo-fuzz uses nightly-only compiler flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain take
# them. A crash leaves its input in fuzz/artifacts/<target>/ and fails the script; replay it with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>` in fuzz/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(token_raw token_signed jwks path_normalize gateway_config http1_request)
fi

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz from crates.io" >&2
  cargo install cargo-fuzz --locked --version 0.13.2 -q
fi
cargo fuzz build -O

dict_for() {
  case "$1" in
    token_raw | token_signed) echo "-dict=token.dict" ;;
    gateway_config) echo "-dict=gateway_config.dict" ;;
    http1_request) echo "-dict=http1.dict" ;;
    *) echo "" ;;
  esac
}

for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log=$(mktemp)
  # shellcheck disable=SC2046
  if ! cargo fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$seconds" -timeout=10 -print_final_stats=1 $(dict_for "$t") >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $t FAILED (input kept in fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  corpus=$(find "corpus/$t" -type f | wc -l)
  echo "fuzz: $t: ${runs} runs in ${seconds} s, no failure (coverage ${cov} edges, corpus ${corpus} inputs)"
  rm -f "$log"
done
