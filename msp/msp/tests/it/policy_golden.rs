//! Golden cases for policy parsing and evaluation, read from `tests/data/policies.yaml`.
//!
//! Each case names a policy string and either the verdict expected for a signer set
//! (`expect: true|false`) or a substring of the parse error (`error: …`). A signer's `id` label
//! is hashed with SHA-256 to get its 32-byte identity id, so equal labels are the same identity.
//! Implicit-meta cases list the channel's organizations (`orgs`, given Fabric's default
//! sub-policies) and may override sub-policies (`org_policies`). Every case runs; the test fails
//! once, naming all the cases that failed.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use medledger_msp::ou::NodeOu;
use medledger_msp::policy::{OrgPolicies, Policy, SignaturePolicy, Signer};
use sha2::{Digest as _, Sha256};

const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/policies.yaml");

/// One golden case.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    policy: String,
    /// The channel's organizations, each with Fabric's default sub-policies.
    #[serde(default)]
    orgs: Vec<String>,
    /// Sub-policies to set on top of the defaults: MSP id → name → signature policy string.
    #[serde(default)]
    org_policies: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    signers: Vec<SignerSpec>,
    expect: Option<bool>,
    error: Option<String>,
}

/// A signer as written in the YAML.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignerSpec {
    msp: String,
    #[serde(default)]
    ou: Option<NodeOu>,
    /// Identity label; its SHA-256 is the signer id.
    id: String,
}

impl SignerSpec {
    fn signer(&self) -> Signer {
        Signer::new(
            self.msp.clone(),
            self.ou,
            Sha256::digest(self.id.as_bytes()).into(),
        )
    }
}

impl Case {
    fn orgs(&self) -> Result<OrgPolicies, String> {
        let mut orgs = OrgPolicies::fabric_defaults(self.orgs.iter().cloned());
        for (msp_id, subs) in &self.org_policies {
            for (name, text) in subs {
                let policy: SignaturePolicy = text
                    .parse()
                    .map_err(|e| format!("org_policies {msp_id}/{name}: {e}"))?;
                orgs.set(msp_id.clone(), name.clone(), policy);
            }
        }
        Ok(orgs)
    }

    /// Runs the case; `Err` says how it failed.
    fn run(&self) -> Result<(), String> {
        let parsed = self.policy.parse::<Policy>();
        match (self.expect, &self.error, parsed) {
            (Some(expect), None, Ok(policy)) => {
                let rendered = policy.to_string();
                match rendered.parse::<Policy>() {
                    Ok(again) if again == policy => {}
                    Ok(again) => return Err(format!("{rendered:?} re-parsed as {again:?}")),
                    Err(e) => return Err(format!("{rendered:?} does not re-parse: {e}")),
                }
                let orgs = self.orgs()?;
                let signers: Vec<Signer> = self.signers.iter().map(SignerSpec::signer).collect();
                let got = policy.evaluate(&signers, &orgs);
                let explanation = policy.explain(&signers, &orgs);
                if explanation.satisfied != got {
                    return Err(format!("evaluate says {got}, explain says {explanation}"));
                }
                if got != expect {
                    return Err(format!("expected {expect}, got {got} ({explanation})"));
                }
                Ok(())
            }
            (Some(_), None, Err(e)) => Err(format!("unexpected parse error: {e}")),
            (None, Some(wanted), Err(e)) if e.to_string().contains(wanted.as_str()) => Ok(()),
            (None, Some(wanted), Err(e)) => Err(format!("error `{e}` does not contain {wanted:?}")),
            (None, Some(wanted), Ok(policy)) => Err(format!(
                "parsed as {policy}, expected an error containing {wanted:?}"
            )),
            _ => Err("needs exactly one of `expect` and `error`".to_owned()),
        }
    }
}

#[test]
fn golden_policies() -> anyhow::Result<()> {
    let text = std::fs::read_to_string(CASES).with_context(|| format!("reading {CASES}"))?;
    let cases: Vec<Case> =
        serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {CASES}"))?;
    assert!(cases.len() >= 30, "only {} golden cases", cases.len());

    let mut names = BTreeSet::new();
    let duplicates: Vec<&str> = cases
        .iter()
        .filter(|case| !names.insert(case.name.as_str()))
        .map(|case| case.name.as_str())
        .collect();
    assert!(
        duplicates.is_empty(),
        "duplicate case names: {duplicates:?}"
    );

    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            case.run()
                .err()
                .map(|why| format!("  {}: {why}", case.name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} golden policy cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    Ok(())
}
