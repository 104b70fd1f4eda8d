#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh machine (Rust, gcc, Python and Node
# are assumed present). Idempotent; installs nothing that is already there.
set -euo pipefail

need_apt=()
# aws-lc-sys (aws-lc-rs) builds C with the cc crate; it needs a C compiler and, on some
# targets, cmake. gcc is on every machine; cmake is only needed if the cc build is unsupported.
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
# librocksdb-sys generates its bindings with bindgen, which loads libclang at build time.
if ! ldconfig -p 2>/dev/null | grep -q 'libclang\(-[0-9.]*\)\?\.so'; then
  need_apt+=(libclang-dev)
fi
# RocksDB's bundled build compiles C++.
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
# The proto compatibility test installs @hyperledger/fabric-protos with npm.
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# The FHIR process test (network/cli/tests/it/fhir_network.rs) makes a Python venv for the
# FHIR clients; Debian ships `venv` in its own package.
python3 -m venv --help >/dev/null 2>&1 || need_apt+=(python3-venv)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: missing ${need_apt[*]}; install them (apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
  echo "bootstrap: installing ${need_apt[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
