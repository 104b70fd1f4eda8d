// A Hyperledger Fabric Gateway application, written as Fabric's samples write one
// (fabric-samples asset-transfer-basic/application-gateway-javascript), run unmodified against
// a Medledger peer by network/cli/tests/it/fabric_gateway_node.rs. It needs
// @hyperledger/fabric-gateway and @grpc/grpc-js on NODE_PATH (or in ./node_modules).
//
// Inputs (environment):
//   GATEWAY_ENDPOINT   host:port of the peer's gateway, e.g. 127.0.0.1:7051
//   GATEWAY_HOST_ALIAS TLS name of that peer (optional), e.g. peer0.org1.test
//   TLS_ROOT_CERT      PEM file of the TLS root certificates
//   MSP_ID             e.g. Org1MSP
//   CERT_PATH          the identity's certificate (PEM)
//   KEY_PATH           its private key (PKCS#8 PEM)
//   CHANNEL_NAME       default "ehr"
//   CHAINCODE_NAME     default "kv" (a contract with put KEY VALUE, raising event "put" with
//                      payload KEY, and get KEY)
//
// Then reads the chain through Fabric's system chaincodes (qscc, cscc) with evaluate, decoding
// the answers with @hyperledger/fabric-protos, as block explorers and other tools do.
//
// Prints one "ok" line per check; exits 1 with "FAIL: ..." on the first mismatch.

'use strict';

const grpc = require('@grpc/grpc-js');
const { connect, hash, signers, GatewayError, StatusCode } = require('@hyperledger/fabric-gateway');
const { common, msp, peer } = require('@hyperledger/fabric-protos');
const crypto = require('node:crypto');
const fs = require('node:fs');

const utf8Decoder = new TextDecoder();
const EVENT_TIMEOUT_MS = 30_000;

function env(name, fallback) {
    const value = process.env[name] ?? fallback;
    if (value === undefined || value === '') {
        throw new Error(`environment variable ${name} is required`);
    }
    return value;
}

const config = {
    endpoint: env('GATEWAY_ENDPOINT'),
    hostAlias: process.env.GATEWAY_HOST_ALIAS,
    tlsRootCert: env('TLS_ROOT_CERT'),
    mspId: env('MSP_ID'),
    certPath: env('CERT_PATH'),
    keyPath: env('KEY_PATH'),
    channelName: env('CHANNEL_NAME', 'ehr'),
    chaincodeName: env('CHAINCODE_NAME', 'kv'),
};

function check(condition, what, detail) {
    if (!condition) {
        throw new Error(`${what}${detail === undefined ? '' : `: ${detail}`}`);
    }
    console.log(`ok - ${what}`);
}

function newGrpcConnection() {
    const tlsCredentials = grpc.credentials.createSsl(fs.readFileSync(config.tlsRootCert));
    const options = config.hostAlias ? { 'grpc.ssl_target_name_override': config.hostAlias } : {};
    return new grpc.Client(config.endpoint, tlsCredentials, options);
}

function newIdentity() {
    return { mspId: config.mspId, credentials: fs.readFileSync(config.certPath) };
}

function newSigner() {
    const privateKey = crypto.createPrivateKey(fs.readFileSync(config.keyPath));
    return signers.newPrivateKeySigner(privateKey);
}

/** The first item of `events` that `accept` takes, or a failure after EVENT_TIMEOUT_MS. */
async function firstMatching(events, what, accept) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => {
            events.close();
            reject(new Error(`no ${what} within ${EVENT_TIMEOUT_MS} ms`));
        }, EVENT_TIMEOUT_MS);
    });
    const search = (async () => {
        for await (const event of events) {
            if (accept(event)) {
                return event;
            }
        }
        throw new Error(`${what}: stream ended without a match`);
    })();
    try {
        return await Promise.race([search, timeout]);
    } finally {
        clearTimeout(timer);
        events.close();
    }
}

/** Transaction ids of a block's envelopes. */
function blockTransactionIds(block) {
    return block.getData().getDataList().map((bytes) => {
        const envelope = common.Envelope.deserializeBinary(bytes);
        const payload = common.Payload.deserializeBinary(envelope.getPayload_asU8());
        const channelHeader = common.ChannelHeader.deserializeBinary(payload.getHeader().getChannelHeader_asU8());
        return channelHeader.getTxId();
    });
}

async function run(gateway) {
    const network = gateway.getNetwork(config.channelName);
    const contract = network.getContract(config.chaincodeName);
    const suffix = `${Date.now()}-${crypto.randomBytes(4).toString('hex')}`;
    const key1 = `node-compat-a-${suffix}`;
    const key2 = `node-compat-b-${suffix}`;

    // submitTransaction: endorse, submit, wait for a VALID commit.
    await contract.submitTransaction('put', key1, 'value-1');
    check(true, `submitTransaction('put', '${key1}', 'value-1') committed`);

    const value1 = utf8Decoder.decode(await contract.evaluateTransaction('get', key1));
    check(value1 === 'value-1', `evaluateTransaction('get') returns the submitted value`, `got '${value1}'`);

    // A failing evaluation is a GatewayError with a gRPC status code and details.
    try {
        await contract.evaluateTransaction('get', `missing-${suffix}`);
        check(false, 'evaluateTransaction of a missing key fails');
    } catch (err) {
        check(err instanceof GatewayError, 'evaluateTransaction of a missing key throws a GatewayError', String(err));
        // Fabric's gateway: a chaincode error is UNKNOWN, "evaluate call to endorser returned
        // error: chaincode response <status>, <message>", with one detail per peer asked.
        check(err.code === grpc.status.UNKNOWN, 'its gRPC status code is UNKNOWN', `got ${err.code}: ${err.message}`);
        check(/evaluate call to endorser returned error: chaincode response 4\d\d, /.test(err.message),
            'its message carries the chaincode response', err.message);
        check(Array.isArray(err.details) && err.details.length > 0, `it carries error details (${err.details.length})`, err.message);
        check(err.details.every((d) => d.mspId && d.address && d.message.startsWith('chaincode response')),
            'each detail names the peer, its MSP and the chaincode response', JSON.stringify(err.details));
    }

    // The fine-grained flow: proposal, endorsement, submission, commit status.
    const proposal = contract.newProposal('put', { arguments: [key2, 'value-2'] });
    const transactionId = proposal.getTransactionId();
    check(/^[0-9a-f]{64}$/.test(transactionId), `newProposal has a transaction id (${transactionId})`);
    const transaction = await proposal.endorse();
    check(transaction.getTransactionId() === transactionId, 'endorse() keeps the transaction id');
    check(transaction.getResult().length === 0, 'endorse() result is the chaincode response payload (empty for put)');
    const commit = await transaction.submit();
    check(commit.getTransactionId() === transactionId, 'submit() returns the commit of that transaction');
    const status = await commit.getStatus();
    check(status.code === StatusCode.VALID, `getStatus() code is VALID`, `got ${status.code}`);
    check(status.successful === true, 'getStatus() is successful');
    check(status.transactionId === transactionId, 'getStatus() names the transaction');
    check(typeof status.blockNumber === 'bigint' && status.blockNumber > 0n, `getStatus() block number ${status.blockNumber}`);
    const blockNumber = status.blockNumber;

    const value2 = utf8Decoder.decode(await contract.evaluateTransaction('get', key2));
    check(value2 === 'value-2', `evaluateTransaction('get') reads the fine-grained submission`, `got '${value2}'`);

    // Chaincode events from the transaction's block.
    const chaincodeEvents = await network.getChaincodeEvents(config.chaincodeName, { startBlock: blockNumber });
    const event = await firstMatching(chaincodeEvents, 'chaincode event', (e) => e.transactionId === transactionId);
    check(event.chaincodeName === config.chaincodeName, `chaincode event from ${event.chaincodeName}`);
    check(event.eventName === 'put', `chaincode event name is 'put'`, `got '${event.eventName}'`);
    check(utf8Decoder.decode(event.payload) === key2, 'chaincode event payload is the key', utf8Decoder.decode(event.payload));
    check(event.blockNumber === blockNumber, `chaincode event block number is ${blockNumber}`, `got ${event.blockNumber}`);

    // Block events (protos.Deliver) from the transaction's block.
    const blocks = await network.getBlockEvents({ startBlock: blockNumber });
    const block = await firstMatching(blocks, 'block', () => true);
    const number = BigInt(block.getHeader().getNumber());
    check(number === blockNumber, `block event number is ${blockNumber}`, `got ${number}`);
    const txIds = blockTransactionIds(block);
    const index = txIds.indexOf(transactionId);
    check(index >= 0, 'block event contains the transaction', txIds.join(','));
    const filter = block.getMetadata().getMetadataList_asU8()[common.BlockMetadataIndex.TRANSACTIONS_FILTER];
    check(filter !== undefined && filter[index] === peer.TxValidationCode.VALID, 'block metadata marks the transaction VALID');

    // Filtered block events (protos.Deliver/DeliverFiltered).
    const filteredBlocks = await network.getFilteredBlockEvents({ startBlock: blockNumber });
    const filtered = await firstMatching(filteredBlocks, 'filtered block', () => true);
    check(BigInt(filtered.getNumber()) === blockNumber, `filtered block event number is ${blockNumber}`);
    check(filtered.getChannelId() === config.channelName, `filtered block channel is ${config.channelName}`);
    const filteredTx = filtered.getFilteredTransactionsList().find((t) => t.getTxid() === transactionId);
    check(filteredTx !== undefined, 'filtered block lists the transaction');
    check(filteredTx.getTxValidationCode() === peer.TxValidationCode.VALID, 'filtered transaction is VALID');
    const actions = filteredTx.getTransactionActions()?.getChaincodeActionsList() ?? [];
    const filteredEvent = actions[0]?.getChaincodeEvent();
    check(filteredEvent?.getEventName() === 'put', `filtered transaction carries the 'put' chaincode event`);

    await systemChaincodes(network, blockNumber, transactionId);
}

/** qscc and cscc through evaluate, answers decoded with @hyperledger/fabric-protos. */
async function systemChaincodes(network, blockNumber, transactionId) {
    const channel = config.channelName;
    const qscc = network.getContract('qscc');

    const info = common.BlockchainInfo.deserializeBinary(await qscc.evaluateTransaction('GetChainInfo', channel));
    const height = BigInt(info.getHeight());
    check(height > blockNumber, `qscc GetChainInfo: height ${height} is past block ${blockNumber}`);
    check(info.getCurrentblockhash_asU8().length === 32 && info.getPreviousblockhash_asU8().length === 32,
        'qscc GetChainInfo: current and previous block hashes');

    const block = common.Block.deserializeBinary(
        await qscc.evaluateTransaction('GetBlockByNumber', channel, String(blockNumber)));
    check(BigInt(block.getHeader().getNumber()) === blockNumber, `qscc GetBlockByNumber: block ${blockNumber}`);
    check(blockTransactionIds(block).includes(transactionId), 'qscc GetBlockByNumber: the block holds the transaction');

    // The hash argument is raw bytes: the last block's header hash from GetChainInfo.
    const last = common.Block.deserializeBinary(
        await qscc.evaluateTransaction('GetBlockByHash', channel, info.getCurrentblockhash_asU8()));
    check(BigInt(last.getHeader().getNumber()) === height - 1n, `qscc GetBlockByHash: the last block (${height - 1n})`);
    check(Buffer.from(last.getHeader().getPreviousHash_asU8()).equals(Buffer.from(info.getPreviousblockhash_asU8())),
        'qscc GetBlockByHash: its previous hash is GetChainInfo\'s');

    const processed = peer.ProcessedTransaction.deserializeBinary(
        await qscc.evaluateTransaction('GetTransactionByID', channel, transactionId));
    check(processed.getValidationcode() === peer.TxValidationCode.VALID, 'qscc GetTransactionByID: validation code VALID',
        `got ${processed.getValidationcode()}`);
    const payload = common.Payload.deserializeBinary(processed.getTransactionenvelope().getPayload_asU8());
    const channelHeader = common.ChannelHeader.deserializeBinary(payload.getHeader().getChannelHeader_asU8());
    check(channelHeader.getTxId() === transactionId && channelHeader.getChannelId() === channel,
        'qscc GetTransactionByID: the envelope of that transaction');

    const byTx = common.Block.deserializeBinary(await qscc.evaluateTransaction('GetBlockByTxID', channel, transactionId));
    check(BigInt(byTx.getHeader().getNumber()) === blockNumber, `qscc GetBlockByTxID: block ${blockNumber}`);

    const channelConfig = common.Config.deserializeBinary(
        await network.getContract('cscc').evaluateTransaction('GetChannelConfig', channel));
    const application = channelConfig.getChannelGroup().getGroupsMap().get('Application');
    const orgs = application.getGroupsMap().getEntryList().map(([name]) => name).sort();
    check(JSON.stringify(orgs) === JSON.stringify(['Org1MSP', 'Org2MSP']), `cscc GetChannelConfig: organizations ${orgs}`);
    for (const name of orgs) {
        const mspValue = application.getGroupsMap().get(name).getValuesMap().get('MSP');
        const fabricMsp = msp.FabricMSPConfig.deserializeBinary(
            msp.MSPConfig.deserializeBinary(mspValue.getValue_asU8()).getConfig_asU8());
        check(fabricMsp.getName() === name && fabricMsp.getRootCertsList().length > 0,
            `cscc GetChannelConfig: ${name}'s MSP with its root certificates`);
    }
    check(application.getPoliciesMap().get('Readers') !== undefined, 'cscc GetChannelConfig: the Readers policy');

    // Bad arguments: Fabric's message; query-only: no submit.
    try {
        await qscc.evaluateTransaction('GetBlockByNumber', channel, 'not-a-number');
        check(false, 'qscc GetBlockByNumber of a non-number fails');
    } catch (err) {
        check(err instanceof GatewayError && /Failed to parse block number/.test(err.message),
            'qscc GetBlockByNumber of a non-number fails with Fabric\'s message', String(err));
    }
    try {
        await qscc.submitTransaction('GetChainInfo', channel);
        check(false, 'qscc cannot be submitted');
    } catch (err) {
        check(err instanceof GatewayError && err.code === grpc.status.FAILED_PRECONDITION,
            'qscc submitTransaction is refused with FAILED_PRECONDITION, as Fabric', `${err.code}: ${err.message}`);
    }
}

async function main() {
    const client = newGrpcConnection();
    const gateway = connect({
        client,
        identity: newIdentity(),
        signer: newSigner(),
        hash: hash.sha256,
        evaluateOptions: () => ({ deadline: Date.now() + 5_000 }),
        endorseOptions: () => ({ deadline: Date.now() + 15_000 }),
        submitOptions: () => ({ deadline: Date.now() + 5_000 }),
        commitStatusOptions: () => ({ deadline: Date.now() + 60_000 }),
    });
    try {
        await run(gateway);
        console.log('all Fabric Gateway client checks passed');
    } finally {
        gateway.close();
        client.close();
    }
}

main().catch((err) => {
    console.error(`FAIL: ${err instanceof Error ? err.message : String(err)}`);
    if (err?.details) {
        console.error(`details: ${JSON.stringify(err.details)}`);
    }
    process.exitCode = 1;
});
