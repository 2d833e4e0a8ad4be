#!/usr/bin/env bash
# Builds the bare Pingora floor (examples/pingora_floor.rs) once per patch in this directory,
# each against Pingora 0.9.1 with only that patch (plus "base": no patch, "all": every patch),
# in a scratch crate outside the repository with apigate's Pingora features (proxy, lb, rustls),
# mimalloc and release profile (lto fat, codegen-units 1). Then measures each binary:
#   - user-space instructions per request with callgrind (loadtest/instructions.py --floor), and
#   - req/s in alternating rounds with nginx and the unpatched floor (loadtest/compare.py --floor).
# Loopback only; every load run is bounded. apigate itself is not touched or rebuilt.
#
#   bash loadtest/pingora-patches/measure.sh [VARIANT...]     (default: base p1 p2 p3 p4 p5 all)
#   env: SCRATCH (default /tmp/apigate-pingora-floor), ROUNDS (5), DURATION (5), SKIP_BUILD=1, BUILD_ONLY=1
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SCRATCH=${SCRATCH:-/tmp/apigate-pingora-floor}
VARIANTS=("$@")
[ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=(base p1 p2 p3 p4 p5 all)
REG=$(ls -d "$HOME"/.cargo/registry/src/*/pingora-core-0.9.1 2>/dev/null | head -1 || true)
[ -n "$REG" ] || { (mkdir -p "$SCRATCH" && cd "$SCRATCH" && cargo fetch) >/dev/null; REG=$(ls -d "$HOME"/.cargo/registry/src/*/pingora-core-0.9.1 | head -1); }
REG=$(dirname "$REG")

mkdir -p "$SCRATCH/src" "$SCRATCH/bin"
cp "$ROOT/examples/pingora_floor.rs" "$SCRATCH/src/main.rs"
cp "$ROOT/Cargo.lock" "$SCRATCH/Cargo.lock"   # the same versions as apigate's build
header='[package]
name = "floor"
version = "0.1.0"
edition = "2021"

[dependencies]
pingora = { version = "0.9", features = ["proxy", "lb", "rustls"] }
pingora-core = { version = "0.9", features = ["rustls"] }
pingora-proxy = "0.9"
pingora-http = "0.9"
async-trait = "0.1"
mimalloc = { version = "0.1", default-features = false }

[profile.release]
lto = "fat"
codegen-units = 1
panic = "unwind"
'

patches_of() {
  case "$1" in
    base) ;;
    p1) echo p1-box-request-future-in-place.diff ;;
    p2) echo p2-thread-local-pool-EXPERIMENT.diff ;;
    p3) echo p3-header-reserve.diff ;;
    p4) echo p4-no-getpeername-on-reuse.diff ;;
    p5) echo p5-hop-by-hop-one-pass.diff ;;
    p6) echo p6-box-tls-connect.diff ;;
    all) echo p1-box-request-future-in-place.diff p3-header-reserve.diff \
              p4-no-getpeername-on-reuse.diff p2-thread-local-pool-EXPERIMENT.diff \
              p5-hop-by-hop-one-pass.diff ;;
    *) echo "unknown variant $1" >&2; exit 1 ;;
  esac
}

build() {
  local v=$1 dir="$SCRATCH/v/$1"
  rm -rf "$dir" && mkdir -p "$dir"
  for c in pingora-core pingora-proxy pingora-http; do cp -r "$REG/$c-0.9.1" "$dir/$c"; done
  for p in $(patches_of "$v"); do
    (cd "$dir" && patch -p1 -s -F3 < "$HERE/$p")
  done
  if [ "$v" = all ]; then  # p2's pool checks the peer like p4 does once both are in
    sed -i 's/^            if peer\.matches_fd(stream\.id())$/            if peer_still_matches(peer, \&stream)/' \
      "$dir/pingora-core/src/connectors/mod.rs"
  fi
  { printf '%s\n[patch.crates-io]\n' "$header"
    for c in pingora-core pingora-proxy pingora-http; do echo "$c = { path = \"$dir/$c\" }"; done
  } > "$SCRATCH/Cargo.toml"
  (cd "$SCRATCH" && cargo build --release --offline 2>&1 || cargo build --release 2>&1) | tail -2
  cp "$SCRATCH/target/release/floor" "$SCRATCH/bin/floor-$v.tmp" && mv -f "$SCRATCH/bin/floor-$v.tmp" "$SCRATCH/bin/floor-$v"
}

if [ "${SKIP_BUILD:-}" != 1 ]; then
  for v in "${VARIANTS[@]}"; do echo "== build $v"; build "$v"; done
fi

[ "${BUILD_ONLY:-}" != 1 ] || exit 0
args=()
for v in "${VARIANTS[@]}"; do args+=(--floor "floor-$v=$SCRATCH/bin/floor-$v"); done
echo "== instructions per request (callgrind)"
python3 "$ROOT/loadtest/instructions.py" --duration "${DURATION:-5}" "${args[@]}"
echo "== req/s, alternating rounds"
python3 "$ROOT/loadtest/compare.py" --rounds "${ROUNDS:-5}" --duration "${DURATION:-5}" "${args[@]}"
