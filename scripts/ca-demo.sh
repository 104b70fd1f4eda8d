#!/usr/bin/env bash
# Certificate authority demo: an organization's CA end to end on loopback.
# Builds the `medledger` binary, creates Org1's CA, serves it over TLS on loopback, enrolls the
# bootstrap admin, registers and enrolls a doctor with EHR attributes, validates the doctor's
# MSP folder, revokes the doctor and shows that validation now fails. Everything is written
# under ./medledger-demo (or $1) and the CA server is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/medledger/target}"
scripts/bootstrap.sh
cargo build --release --workspace --bins
ml="$CARGO_TARGET_DIR/release/medledger"
demo="${1:-./medledger-demo}"
rm -rf "$demo"; mkdir -p "$demo"

step() { printf '\n== %s\n' "$*"; }

step "init Org1's CA (root CA + TLS CA, bootstrap registrar admin)"
"$ml" ca init --dir "$demo/ca" --name ca-org1 --msp-id Org1MSP --organization org1.example.com -b admin:adminpw

step "serve it over TLS on 127.0.0.1 (free port)"
"$ml" ca serve --dir "$demo/ca" --listen 127.0.0.1:0 > "$demo/ca.out" 2> "$demo/ca.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q 'listening on' "$demo/ca.out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/^listening on //p' "$demo/ca.out")
url="https://$addr"; tls="$demo/ca/tls/ca.crt"
echo "CA at $url"

step "enroll the bootstrap admin (key generated locally, CSR sent)"
"$ml" ca enroll -u "https://admin:adminpw@$addr" --tls-certfiles "$tls" --home "$demo/admin"

step "register doctor1 with ehr.role=doctor, one enrollment"
"$ml" ca register -u "$url" --tls-certfiles "$tls" -M "$demo/admin/msp" \
  --id-name doctor1 --id-secret doctorpw --id-type client \
  --id-attrs 'ehr.role=doctor:ecert,ehr.emergency=true:ecert' --id-maxenrollments 1

step "enroll doctor1 and validate the identity under Org1's MSP"
"$ml" ca enroll -u "$url" --tls-certfiles "$tls" --id doctor1 --secret doctorpw --home "$demo/doctor1"
"$ml" msp show -M "$demo/doctor1/msp" --mspid Org1MSP

step "a second enrollment is refused (max enrollments = 1)"
"$ml" ca enroll -u "$url" --tls-certfiles "$tls" --id doctor1 --secret doctorpw --home "$demo/again" || true

step "revoke doctor1, generate the CRL into the MSP folder, validate again"
mkdir -p "$demo/doctor1/msp/crls"
"$ml" ca revoke -u "$url" --tls-certfiles "$tls" -M "$demo/admin/msp" \
  --revoke-name doctor1 --revoke-reason keyCompromise --gencrl "$demo/doctor1/msp/crls/crl.pem"
"$ml" msp show -M "$demo/doctor1/msp" --mspid Org1MSP || echo "(refused, as it should be)"
