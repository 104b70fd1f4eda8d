//! Setup shared by the FHIR API's tests: a served harness (Org1 and Org2, ADR 0037) set up as
//! `network up` does a dev network, the FHIR server's state over Org1's gateway, a wallet of
//! delegates, and the captured `tracing` output (as `chaincode/ehr/client/tests/it/scenario.rs`
//! captures it: a second copy, for the same shared test-utils module).
//!
//! COPIED (≈40 lines, marked): the governance and pseudonym-key setup of
//! `chaincode/ehr/client/tests/it/common.rs::dev_network`, without its import (the FHIR tests
//! import through the API). To move into a shared harness test-utils module (a harness change,
//! asked for in the F16 report).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response};
use ehr_chaincode::ids::PseudonymKey;
use ehr_client::EhrClient;
use ehr_fhir::AppState;
use ehr_fhir::auth::tokens::TokenService;
use ehr_fhir::backend::{AuthMethod, Caller, GatewayBackend, Wallet};
use ehr_fhir::config::FhirConfig;
use medledger_harness::{Harness, Served};
use medledger_msp::identity::SigningIdentity;
use tower::ServiceExt as _;

/// The channel and chaincode the harness runs the EHR chaincode as.
pub(crate) const CHANNEL: &str = "ehr";

/// The API's base URL in the tests' configuration.
pub(crate) const BASE: &str = "https://localhost/fhir";

pub(crate) use medledger_harness::captured_log;

/// The exact bytes of `bundle`'s Patient resource.
pub(crate) fn patient_bytes(bundle: &ehr_client::bundle::PatientBundle) -> &[u8] {
    &bundle
        .resources
        .iter()
        .find(|r| r.resource_type == "Patient")
        .unwrap()
        .bytes
}

/// The served network and the FHIR server's state.
pub(crate) struct Setup {
    pub(crate) net: Served,
    pub(crate) state: AppState,
    pub(crate) wallet: Wallet,
    _wallet_dir: tempfile::TempDir,
}

impl Setup {
    /// `org1-admin` (NodeOU admin, `ehr.role=admin`, `medledger.tls=true`): its enrollment,
    /// as the wallet holds it (the tests use the identity itself as its delegate).
    pub(crate) fn admin(&self) -> SigningIdentity {
        self.wallet.load("org1-admin").unwrap()
    }

    /// A caller injected as the accept loop would after mutual TLS.
    pub(crate) fn caller(&self, enrollment_id: &str) -> Caller {
        Caller {
            msp_id: "Org1MSP".into(),
            enrollment_id: enrollment_id.into(),
            method: AuthMethod::MutualTls,
            purpose: None,
        }
    }

    /// Org1's block height (peer 0).
    pub(crate) fn height(&self) -> u64 {
        self.net.with(|h| h.ledger(0, 0).unwrap().height()).unwrap()
    }

    /// One request through the router (`oneshot`), as `caller` if given; status, headers and
    /// body.
    pub(crate) async fn call(
        &self,
        caller: Option<&str>,
        method: &str,
        uri: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (Response<()>, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = req.body(Body::from(body)).unwrap();
        if let Some(c) = caller {
            req.extensions_mut().insert(self.caller(c));
        }
        let resp = ehr_fhir::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (Response::from_parts(parts, ()), bytes.to_vec())
    }
}

/// Sets the network up and the FHIR server of Org1 over it.
pub(crate) async fn setup() -> Setup {
    let net = Harness::builder().orgs(2).build().unwrap().serve().unwrap();
    // --- COPIED from chaincode/ehr/client/tests/it/common.rs::dev_network (see module doc).
    let admin_id = net
        .admin(
            0,
            "org1-admin",
            &[("ehr.role", "admin"), ("medledger.tls", "true")],
        )
        .unwrap();
    let wallet_dir = tempfile::tempdir().unwrap();
    let wallet = Wallet::new(wallet_dir.path(), "Org1MSP");
    wallet.store(&admin_id).unwrap();
    let admin = EhrClient::new(net.gateway(0, admin_id).network(CHANNEL).contract("ehr"));
    let org2_admin = EhrClient::new(
        net.gateway(
            1,
            net.admin(1, "org2-admin", &[("ehr.role", "admin")])
                .unwrap(),
        )
        .network(CHANNEL)
        .contract("ehr"),
    );
    let seeded = ehr_client::seed_governance(&[admin.clone(), org2_admin])
        .await
        .unwrap();
    assert_eq!(seeded, ehr_client::Seeded::Founded);
    let key = PseudonymKey::from_bytes(&[0x51; 32]).unwrap();
    assert!(admin.set_pseudonym_key(&key).await.unwrap().set);
    // --- end of the copy.
    let msp = net
        .with(|h| h.network().sim.ch.orgs[0].ca.msp())
        .unwrap()
        .unwrap();
    let config = FhirConfig {
        base_url: BASE.into(),
        msp_id: "Org1MSP".into(),
        wallet_dir: wallet_dir.path().to_owned(),
        ..FhirConfig::default()
    };
    config.validate().unwrap();
    let tokens = TokenService::new(msp, config.token_url(), config.tokens.clone());
    let backend = GatewayBackend::new(net.channel(0), wallet.clone(), CHANNEL, "ehr");
    let state = AppState::new(config, Arc::new(backend), tokens);
    Setup {
        net,
        state,
        wallet,
        _wallet_dir: wallet_dir,
    }
}
