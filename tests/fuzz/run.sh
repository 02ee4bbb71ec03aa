#!/usr/bin/env bash
# Builds the libFuzzer harnesses (AddressSanitizer + libFuzzer, release) and runs each for a fixed
# time, starting from the committed corpus.
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]      (default: 60 s; fuzz-safetensors fuzz-forward)
#
# Work files live in tests/fuzz/.work (ignored): the growing corpus of each target and any crash,
# leak or timeout input (artifacts/). A finding makes the script exit 1 and names the input;
# reproduce it with  tests/fuzz/.build/release/TARGET INPUT_FILE.
# FUZZ_MERGE=1 merges what a run found back into the committed corpus (minimised by libFuzzer).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(fuzz-safetensors fuzz-forward)

# The main package's sources can change between runs; a stale build plan would miss new files.
rm -f .build/*/release/description.json
swift build -c release --scratch-path .build \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library \
    -Xcc -fsanitize=address -Xcc -fsanitize=fuzzer-no-link

# Swift's own crash backtracer would run inside the sanitizer and muddle its report.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
mkdir -p .work/artifacts
status=0
for target in "${targets[@]}"; do
    name="${target#fuzz-}"
    mkdir -p ".work/corpus/$name"
    extra=()
    [ -f "$name.dict" ] && extra+=("-dict=$name.dict")
    log=".work/$target.log"
    echo "== $target: ${seconds}s (log: tests/fuzz/$log)"
    if ! ".build/release/$target" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
            -artifact_prefix=.work/artifacts/ "${extra[@]}" ".work/corpus/$name" "corpus/$name" >"$log" 2>&1; then
        status=1
        echo "!! $target found a problem:"
        grep -E "ERROR|fuzz-$name:|Test unit written" "$log" | head -20
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$log" | sed "s/^/   /"
    grep -E "^#[0-9]+ +DONE" "$log" | tail -1 | sed "s/^/   /" || true
    if [ "${FUZZ_MERGE:-0}" = 1 ] && [ $status = 0 ]; then
        ".build/release/$target" -set_cover_merge=1 "${extra[@]}" "corpus/$name" ".work/corpus/$name" >>"$log" 2>&1
        echo "   merged into tests/fuzz/corpus/$name: $(ls "corpus/$name" | wc -l) files"
    fi
done
exit $status
