"""Python FHIR clients against Medledger's FHIR R4 API (network/cli/tests/it/fhir_network.rs).

Runs in a venv with `fhir.resources==6.4.0` (FHIR 4.0.1 models, pydantic 1) and
`fhirclient==4.3.1` (SMART on FHIR's client). Every resource a server returns is validated
with fhir.resources' R4 models. Prints one JSON object (what the Rust test checks) on stdout.

    clients.py capability BASE_URL CA_PEM CERT_PEM KEY_PEM   fhirclient over mutual TLS
    clients.py write BASE_URL CA_PEM CERT_PEM KEY_PEM BUNDLE   create, read, transaction
    clients.py refusals BASE_URL CA_PEM CERT_PEM KEY_PEM       bad input, no credential
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
    server = session(base_url, ca, cert, key)
    statement = server.capabilityStatement
    raw = server.request_json("metadata")
    return {
        "fhirVersion": statement.fhirVersion,
        "kind": statement.kind,
        "validated": [validate(raw)],
        "resources": sorted(r.type for r in statement.rest[0].resource or []),
    }


FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def session(base_url, ca, cert, key):
    """fhirclient's server with mutual TLS (the identity's TLS client certificate)."""
    from fhirclient import server as fhir_server

    server = fhir_server.FHIRServer(None, base_uri=base_url)
    if cert:
        server.session.cert = (cert, key)
    server.session.verify = ca
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override `verify`: trust this root only.
    server.session.trust_env = False
    return server


def post(server, path, body):
    """POSTs `body` (bytes) to `path`; status and parsed JSON answer."""
    # The base itself (a transaction) has no trailing slash: `[base]`, not `[base]/`.
    url = server.base_uri + path if path else server.base_uri.rstrip("/")
    res = server.session.post(url, headers=FHIR_JSON, data=body)
    return res.status_code, res.json()


def write(base_url, ca, cert, key, bundle):
    """Create a Patient and an Observation, read the Patient back, post a transaction."""
    from fhirclient.models.patient import Patient

    server = session(base_url, ca, cert, key)
    out = {"validated": []}
    patient = {
        "resourceType": "Patient",
        "name": [{"family": "Fhirtest", "given": ["Pat"]}],
        "gender": "female",
        "birthDate": "1970-01-01",
    }
    status, created = post(server, "Patient", json.dumps(patient).encode())
    assert status == 201, (status, created)
    out["validated"].append(validate(created))
    pid = created["id"]
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": {"value": 170, "unit": "cm"},
    }
    status, obs = post(server, "Observation", json.dumps(observation).encode())
    assert status == 201, (status, obs)
    out["validated"].append(validate(obs))
    read = Patient.read(pid, server)
    assert read.id == pid and read.name[0].family == "Fhirtest", read.as_json()
    out["validated"].append(validate(server.request_json(f"Patient/{pid}")))
    with open(bundle, "rb") as f:
        status, answer = post(server, "", f.read())
    assert status == 200 and answer["type"] == "transaction-response", (status, answer)
    out["validated"].append(validate(answer))
    out["transaction_entries"] = len(answer["entry"])
    return out


def refusals(base_url, ca, cert, key):
    """Bad input and a missing credential: statuses and OperationOutcomes."""
    server = session(base_url, ca, cert, key)
    out = {"validated": []}
    status, outcome = post(server, "Patient", b'{"resourceType":')
    out["malformed"] = [status, outcome["issue"][0]["code"]]
    out["validated"].append(validate(outcome))
    status, outcome = post(server, "Patient", b'{"resourceType":"Observation","status":"final"}')
    out["wrong_type"] = [status, outcome["issue"][0]["code"]]
    out["validated"].append(validate(outcome))
    anonymous = session(base_url, ca, None, None)
    res = anonymous.session.get(anonymous.base_uri + "Patient/x", headers=FHIR_JSON)
    out["no_credential"] = [res.status_code, res.json()["issue"][0]["code"]]
    out["validated"].append(validate(res.json()))
    return out


def main(argv):
    if argv[1] == "capability":
        out = capability(*argv[2:6])
    elif argv[1] == "write":
        out = write(*argv[2:7])
    elif argv[1] == "refusals":
        out = refusals(*argv[2:6])
    elif argv[1] == "validate":
        with open(argv[2], encoding="utf-8") as f:
            out = {"validated": [validate(r) for r in json.load(f)]}
    else:
        raise SystemExit(f"unknown command {argv[1]!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
