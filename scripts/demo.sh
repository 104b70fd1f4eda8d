#!/usr/bin/env bash
# The main job: a Medledger network on this machine — 4 BFT orderers, Org1 (hospital) and Org2
# (lab) with one peer each, TLS everywhere, the EHR chaincode in each peer's sandbox — the 60
# Synthea patients of the sample data imported as FHIR records, then a short tour: an audited
# read by the custodian, a refused read by the lab, the patient's consent, the lab's read, the
# revocation, the audit trail, an erasure with purge.
#
# The network keeps running afterwards (`medledger network status`, `medledger network down`);
# it lives in $MEDLEDGER_HOME (default ./medledger-net). Run again: the network restarts with its
# ledgers and the import skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/medledger/target}"
export MEDLEDGER_HOME="${MEDLEDGER_HOME:-$PWD/medledger-net}"
bundles="${MEDLEDGER_EHR_BUNDLES:-$PWD/../shared/data/ehr/bundles}"
export MEDLEDGER_EHR_BUNDLES="$bundles"
if [ ! -d "$bundles" ]; then
  echo "demo.sh: no sample data at $bundles (set MEDLEDGER_EHR_BUNDLES to a folder of FHIR R4 bundles; README.md, \"Sample data\")" >&2
  exit 1
fi
scripts/bootstrap.sh
cargo build --release --workspace --bins
ml="$CARGO_TARGET_DIR/release/medledger"

step() { printf '\n== %s\n' "$*"; }

step "network up (generates CAs, identities, genesis block on first run; starts every node)"
"$ml" network up
"$ml" network status

step "import the sample patients through the gateway (FHIR R4 bundles → private records)"
"$ml" ehr import "$bundles"

patient=$("$ml" identities | awk '/^patient:/ { sub("patient:", "", $1); print $1; exit }')
step "the shared ledger names the patient by a keyed hash only its custodian can compute (ADR 0031)"
ledger=$("$ml" ehr ledger-id "$patient" --as org1-admin | python3 -c 'import json,sys; print(json.load(sys.stdin)["patient"])')
record=$("$ml" chaincode query -n ehr --as org1-doctor --args "[\"ListRecords\",\"$ledger\",\"200\"]" |
  python3 -c 'import json,sys; print(next(r["record_id"] for r in json.load(sys.stdin)["records"] if r["resource_type"]=="Observation"))')
echo "Patient.id $patient is $ledger on the ledger; record $record"

step "the custodian's doctor reads it (audited two-step read); its SHA-256 equals the on-chain hash"
record_json=$("$ml" ehr record get "$ledger" "$record" --as org1-doctor); echo "${record_json:0:200} …"
"$ml" chaincode query -n ehr --as org1-doctor --args "[\"ReadRecordMetadata\",\"$ledger\",\"$record\"]" |
  python3 -c 'import json,sys; m=json.load(sys.stdin); print("on-chain sha256", m["sha256"], "version", m["version"])'

step "the lab's doctor (Org2) is refused: no consent"
"$ml" ehr record get "$ledger" "$record" --as org2-doctor || echo "(refused, and audited)"

step "the patient grants Org2 treatment access; the lab reads; the patient revokes"
consent=$("$ml" ehr consent grant "$patient" --grantee org:Org2MSP --purpose treatment --as "patient:$patient" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["consent_id"])')
record_json=$("$ml" ehr record get "$ledger" "$record" --as org2-doctor); echo "${record_json:0:200} …"
"$ml" ehr consent revoke "$ledger" "$consent" --as "patient:$patient"
"$ml" ehr record get "$ledger" "$record" --as org2-doctor || echo "(refused again)"

step "the patient's audit trail: every access, granted or denied"
"$ml" ehr audit "$ledger" --as "patient:$patient" |
  python3 -c 'import json,sys; [print(e["requester_msp"], e["requester_role"], e.get("purpose"), e["decision"]) for e in json.load(sys.stdin)["entries"][-6:]]'

step "erasure: the patient asks, the custodian's admin purges the PHI (the hash stays on the ledger)"
"$ml" ehr erasure "$ledger" "$record" --as "patient:$patient"
"$ml" ehr purge "$ledger" "$record" --as org1-admin
"$ml" ehr record get "$ledger" "$record" --as org1-doctor || echo "(gone: 410)"

step "done; the network keeps running"
"$ml" network status
echo "stop it with: $ml network down   (add --purge to delete $MEDLEDGER_HOME)"
