#!/bin/sh
# The mh_* functions declared in the header and the mh_* symbols the library exports must be
# the same set: nothing declared but missing, nothing exported but undeclared.
#   check_symbols.sh include/multihead.h build/lib/libmultihead.so
set -eu
header=${1:?usage: check_symbols.sh HEADER LIBRARY}
library=${2:?usage: check_symbols.sh HEADER LIBRARY}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Declarations: preprocess (drops comments, which mention functions too), then take every
# mh_name followed by "(".
${CC:-cc} -E -P -x c "$header" | grep -oE '\bmh_[A-Za-z0-9_]+[[:space:]]*\(' | sed -E 's/[[:space:]]*\($//' \
    | sort -u > "$tmp/declared"
# Exports: defined, global text (T) or weak (W) dynamic symbols.
nm -D --defined-only "$library" | awk '$2 ~ /^[TtWiI]$/ && $3 ~ /^mh_/ { print $3 }' | sort -u > "$tmp/exported"

declared=$(wc -l < "$tmp/declared")
exported=$(wc -l < "$tmp/exported")
missing=$(comm -23 "$tmp/declared" "$tmp/exported")
extra=$(comm -13 "$tmp/declared" "$tmp/exported")
status=0
if [ "$declared" -eq 0 ]; then
    echo "check_symbols: no mh_* functions found in $header" >&2
    status=1
fi
if [ -n "$missing" ]; then
    echo "check_symbols: declared in $header but not exported by $library:" >&2
    echo "$missing" | sed 's/^/  /' >&2
    status=1
fi
if [ -n "$extra" ]; then
    echo "check_symbols: exported by $library but not declared in $header:" >&2
    echo "$extra" | sed 's/^/  /' >&2
    status=1
fi
if [ $status -eq 0 ]; then
    echo "check_symbols: $declared mh_* functions declared == $exported exported"
fi
exit $status
