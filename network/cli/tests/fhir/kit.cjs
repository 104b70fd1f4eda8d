// fhir-kit-client (Node) against Medledger's FHIR R4 API (network/cli/tests/it/fhir_network.rs),
// with a bearer token from the server's token endpoint (SMART Backend Services). Trust: the
// organization's TLS root through NODE_EXTRA_CA_CERTS. Prints one JSON object on stdout: the
// resources returned, which the test validates with clients.py.
//
//     node kit.cjs BASE_URL TOKEN
'use strict';

const path = require('node:path');
const { pathToFileURL } = require('node:url');

async function main() {
  // fhir-kit-client 2 is an ES module (its package exports `import` only), and ES module
  // resolution ignores NODE_PATH: import its entry point by path.
  const entry = path.join(process.env.NODE_PATH, 'fhir-kit-client', 'dist', 'index.js');
  const { Client } = await import(pathToFileURL(entry).href);
  const [baseUrl, token] = process.argv.slice(2);
  const client = new Client({ baseUrl, bearerToken: token });
  const capability = await client.capabilityStatement();
  console.log(JSON.stringify({ resources: [capability] }));
}

main().catch((e) => {
  console.error(e && e.response ? JSON.stringify(e.response.data) : e);
  process.exit(1);
});
