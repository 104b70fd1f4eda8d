"""Python FHIR clients against Medledger's FHIR R4 API (network/cli/tests/it/fhir_network.rs).

Runs in a venv with `fhir.resources==6.4.0` (FHIR 4.0.1 models, pydantic 1) and
`fhirclient==4.3.1` (SMART on FHIR's client). Every resource a server returns is validated
with fhir.resources' R4 models. Prints one JSON object (what the Rust test checks) on stdout.

    clients.py capability BASE_URL CA_PEM CERT_PEM KEY_PEM   fhirclient over mutual TLS
    clients.py validate FILE                                   validate a JSON list of resources
"""

import json
import sys

from fhir.resources import construct_fhir_element


def validate(resource):
    """Parses `resource` (a dict) with its R4 model; raises on any deviation."""
    model = construct_fhir_element(resource["resourceType"], resource)
    return model.resource_type


def capability(base_url, ca, cert, key):
    from fhirclient import server as fhir_server

    server = fhir_server.FHIRServer(None, base_uri=base_url)
    # Mutual TLS: the identity's TLS client certificate, the organization's TLS root.
    server.session.cert = (cert, key)
    server.session.verify = ca
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override `verify`: trust this root only.
    server.session.trust_env = False
    statement = server.capabilityStatement
    raw = server.request_json("metadata")
    return {
        "fhirVersion": statement.fhirVersion,
        "kind": statement.kind,
        "validated": [validate(raw)],
        "resources": sorted(r.type for r in statement.rest[0].resource or []),
    }


def main(argv):
    if argv[1] == "capability":
        out = capability(*argv[2:6])
    elif argv[1] == "validate":
        with open(argv[2], encoding="utf-8") as f:
            out = {"validated": [validate(r) for r in json.load(f)]}
    else:
        raise SystemExit(f"unknown command {argv[1]!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
