//! Unit tests for the policy parser and evaluator. The golden cases live in
//! `msp/msp/tests/data/policies.yaml`.

use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn signer(msp: &str, ou: Option<NodeOu>, label: u8) -> Signer {
    Signer::new(msp, ou, [label; 32])
}

fn peer(msp: &str, label: u8) -> Signer {
    signer(msp, Some(NodeOu::Peer), label)
}

fn sig(text: &str) -> Result<SignaturePolicy, PolicyError> {
    text.parse()
}

// ---------------------------------------------------------------- parser

#[test]
fn parses_gates_into_out_of() -> TestResult {
    let a = SignaturePolicy::signed_by("Org1MSP", MspRole::Peer);
    let b = SignaturePolicy::signed_by("Org2MSP", MspRole::Admin);
    assert_eq!(
        sig("AND('Org1MSP.peer', 'Org2MSP.admin')")?,
        SignaturePolicy::OutOf {
            n: 2,
            rules: vec![a.clone(), b.clone()]
        }
    );
    assert_eq!(
        sig("OR('Org1MSP.peer', 'Org2MSP.admin')")?,
        SignaturePolicy::OutOf {
            n: 1,
            rules: vec![a.clone(), b.clone()]
        }
    );
    assert_eq!(
        sig("OutOf(2, 'Org1MSP.peer', 'Org2MSP.admin', 'Org1MSP.peer')")?,
        SignaturePolicy::out_of(2, vec![a.clone(), b, a])
    );
    Ok(())
}

#[test]
fn keywords_are_case_insensitive_and_whitespace_is_free() -> TestResult {
    let canonical = sig("OutOf(1, 'A.member', AND('B.peer', 'C.client'))")?;
    for text in [
        "outof(1,'A.member',and('B.peer','C.client'))",
        "OUTOF ( 1 , \"A.member\" , And ( 'B.peer' ,\n\t\"C.client\" ) )",
        "  oUtOf(  '1', 'A.member', AND('B.peer', 'C.client'))  ",
    ] {
        assert_eq!(sig(text)?, canonical, "{text}");
    }
    assert_eq!(sig("or('A.member')")?, sig("OR('A.member')")?);
    Ok(())
}

#[test]
fn msp_ids_may_hold_dots_and_dashes() -> TestResult {
    // Fabric's policyparser_test: 'MSP.WITH.DOTS.member', 'MSP-WITH-DASHES.member'.
    let policy = sig("OR('MSP.WITH.DOTS.member', 'MSP-WITH-DASHES.peer', 'A.admin.orderer')")?;
    let principals: Vec<String> = policy.principals().map(ToString::to_string).collect();
    assert_eq!(
        principals,
        [
            "MSP.WITH.DOTS.member",
            "MSP-WITH-DASHES.peer",
            "A.admin.orderer"
        ]
    );
    let last: Principal = "A.admin.orderer".parse()?;
    assert_eq!(
        (last.msp_id.as_str(), last.role),
        ("A.admin", MspRole::Orderer)
    );
    Ok(())
}

#[test]
fn display_renders_fabric_syntax() -> TestResult {
    let cases = [
        ("and( 'A.peer',\"B.peer\" )", "AND('A.peer', 'B.peer')"),
        ("OutOf(2,'A.peer','B.peer')", "AND('A.peer', 'B.peer')"),
        ("OutOf(1,'A.peer','B.peer')", "OR('A.peer', 'B.peer')"),
        ("AND('A.peer')", "OR('A.peer')"),
        (
            "outof(2, 'A.member', 'B.member', 'C.member')",
            "OutOf(2, 'A.member', 'B.member', 'C.member')",
        ),
        ("'A.client'", "'A.client'"),
        ("majority   Endorsement", "MAJORITY Endorsement"),
        ("any Readers", "ANY Readers"),
        ("ALL Writers", "ALL Writers"),
    ];
    for (input, rendered) in cases {
        assert_eq!(input.parse::<Policy>()?.to_string(), rendered, "{input}");
    }
    Ok(())
}

#[test]
fn display_and_from_str_round_trip() -> TestResult {
    for text in [
        "AND('Org1MSP.peer', 'Org2MSP.peer')",
        "OR('Org1MSP.admin', 'Org1MSP.peer', 'Org1MSP.client')",
        "OutOf(2, 'A.member', 'B.member', 'C.member')",
        "OR(AND('A.member', 'B.member'), OR('C.admin', 'D.member'))",
        "OutOf(3, 'A.orderer', OR('B.peer', AND('C.admin', 'D.client')), 'E.member', 'F.peer')",
        "'Org1MSP.member'",
        "MAJORITY Endorsement",
        "ANY Lifecycle_Endorsement-v2.0",
    ] {
        let policy: Policy = text.parse()?;
        assert_eq!(policy.to_string(), text);
        assert_eq!(policy.to_string().parse::<Policy>()?, policy);
    }
    Ok(())
}

#[test]
fn hand_built_policies_round_trip() -> TestResult {
    let policy = SignaturePolicy::and(vec![
        SignaturePolicy::or(vec![
            SignaturePolicy::signed_by("A", MspRole::Peer),
            SignaturePolicy::signed_by("B", MspRole::Peer),
        ]),
        SignaturePolicy::out_of(
            2,
            vec![
                SignaturePolicy::signed_by("C", MspRole::Admin),
                SignaturePolicy::signed_by("D", MspRole::Admin),
                SignaturePolicy::signed_by("E", MspRole::Admin),
            ],
        ),
    ]);
    assert_eq!(sig(&policy.to_string())?, policy);
    Ok(())
}

#[test]
fn quoted_numeric_threshold_is_accepted() -> TestResult {
    // Fabric's TestOutOfNumIsString.
    assert_eq!(
        sig("OutOf('1', 'A.member', 'B.member')")?,
        sig("OR('A.member', 'B.member')")?
    );
    Ok(())
}

#[test]
fn errors_carry_positions() {
    let cases: &[(&str, PolicyError)] = &[
        ("", PolicyError::Empty),
        ("  \n ", PolicyError::Empty),
        ("AND('A.member'", PolicyError::UnclosedParen { open: 3 }),
        (
            "OR('A.member', AND('B.peer')",
            PolicyError::UnclosedParen { open: 2 },
        ),
        (
            "OR('A.member', AND('B.peer'",
            PolicyError::UnclosedParen { open: 18 },
        ),
        ("AND(", PolicyError::UnclosedParen { open: 3 }),
        (
            "AND('A.member'))",
            PolicyError::UnexpectedCloseParen { pos: 15 },
        ),
        (")", PolicyError::UnexpectedCloseParen { pos: 0 }),
        ("AND('A.member)", PolicyError::UnterminatedQuote { pos: 4 }),
        (
            "AND('A.boss')",
            PolicyError::UnknownRole {
                pos: 7,
                role: "boss".into(),
            },
        ),
        (
            "AND('A.Peer')",
            PolicyError::UnknownRole {
                pos: 7,
                role: "Peer".into(),
            },
        ),
        ("OR('.member')", PolicyError::EmptyMspId { pos: 4 }),
        (
            "OR('Org1MSP')",
            PolicyError::MalformedPrincipal {
                pos: 4,
                principal: "Org1MSP".into(),
            },
        ),
        (
            "OR('Org 1.peer')",
            PolicyError::InvalidMspId {
                pos: 7,
                msp_id: "Org 1".into(),
            },
        ),
        (
            "OutOf(0, 'A.member')",
            PolicyError::BadThreshold {
                pos: 6,
                n: 0,
                rules: 1,
            },
        ),
        (
            "OutOf(3, 'A.member', 'B.member')",
            PolicyError::BadThreshold {
                pos: 6,
                n: 3,
                rules: 2,
            },
        ),
        (
            "OutOf(-1, 'A.member')",
            PolicyError::InvalidThreshold {
                pos: 6,
                text: "-1".into(),
            },
        ),
        (
            "OutOf(99999999999999999999999, 'A.member')",
            PolicyError::InvalidThreshold {
                pos: 6,
                text: "99999999999999999999999".into(),
            },
        ),
        (
            "OutOf(1)",
            PolicyError::EmptyGate {
                pos: 0,
                gate: "OutOf",
            },
        ),
        (
            " AND()",
            PolicyError::EmptyGate {
                pos: 1,
                gate: "AND",
            },
        ),
        (
            "NOT('A.member')",
            PolicyError::UnknownKeyword {
                pos: 0,
                word: "NOT".into(),
            },
        ),
        (
            "AND('A.member') x",
            PolicyError::TrailingInput {
                pos: 16,
                found: "x".into(),
            },
        ),
        ("ANY", PolicyError::MissingSubPolicy { pos: 3 }),
        (
            "ANY Readers Writers",
            PolicyError::TrailingInput {
                pos: 12,
                found: "Writers".into(),
            },
        ),
        (
            "OR('A.member', ANY Readers)",
            PolicyError::ImplicitMetaNotAllowed { pos: 15 },
        ),
        (
            "AND('A.member',)",
            PolicyError::Unexpected {
                pos: 15,
                found: "')'".into(),
                expected: "a quoted principal such as 'Org1MSP.peer' or a gate",
            },
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(input.parse::<Policy>().as_ref(), Err(expected), "{input:?}");
        assert_eq!(
            expected.position().is_none(),
            matches!(expected, PolicyError::Empty)
        );
    }
}

#[test]
fn signature_policy_rejects_implicit_meta() {
    assert_eq!(
        sig("  MAJORITY Admins"),
        Err(PolicyError::ImplicitMetaNotAllowed { pos: 2 })
    );
}

#[test]
fn error_messages_name_the_problem() {
    let message = |text: &str| match text.parse::<Policy>() {
        Ok(policy) => format!("parsed: {policy}"),
        Err(err) => err.to_string(),
    };
    assert!(message("AND('A.member'").contains("unbalanced parentheses"));
    assert!(message("AND('A.member'))").contains("unbalanced parentheses"));
    assert!(message("OR('A.king')").contains("unknown role \"king\""));
    assert!(message("OutOf(5, 'A.peer')").contains("bad threshold"));
    assert!(message("OR('.peer')").contains("empty MSP id"));
    // Long input is cut in messages.
    let long = format!("OR('A.member') {}", "z".repeat(500));
    assert!(message(&long).len() < 120, "{}", message(&long));
}

#[test]
fn nesting_is_bounded_without_overflowing_the_stack() -> TestResult {
    let nested = |depth: usize| format!("{}'A.member'{}", "AND(".repeat(depth), ")".repeat(depth));
    let ok = sig(&nested(MAX_DEPTH))?;
    assert!(ok.evaluate(&[signer("A", None, 1)]));
    assert_eq!(
        sig(&nested(MAX_DEPTH + 1)),
        Err(PolicyError::TooDeep {
            pos: 4 * MAX_DEPTH,
            max: MAX_DEPTH
        })
    );
    // Far deeper than any stack would allow if the parser recursed without a bound.
    assert!(matches!(
        sig(&"OR(".repeat(1_000_000)),
        Err(PolicyError::TooDeep { .. })
    ));
    Ok(())
}

/// xorshift64*, so the "fuzz" loop is reproducible: set `SEED` to replay a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }
}

#[test]
fn parser_never_panics_on_mangled_input() -> TestResult {
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_u64);
    println!("SEED={seed}");
    let mut rng = Rng(seed | 1);
    let seeds = [
        "OR(AND('Org1MSP.member', 'Org2MSP.peer'), OutOf(2, \"A.admin\", 'B.client', 'C.orderer'))",
        "MAJORITY Endorsement",
        "OutOf('2', 'A.member', 'B.member')",
    ];
    let alphabet: Vec<char> = "()'\",. 0123456789ANDORoutfMAJYLmemberpcé\u{0}\n-_\\é漢"
        .chars()
        .collect();
    let check = |text: &str| -> TestResult {
        // Must not panic; when it parses, it must round-trip.
        if let Ok(policy) = text.parse::<Policy>() {
            assert_eq!(policy.to_string().parse::<Policy>()?, policy, "{text:?}");
        }
        Ok(())
    };
    for text in seeds {
        for cut in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
            check(&text[..cut])?;
            check(&text[cut..])?;
        }
    }
    for _ in 0..20_000 {
        let base = seeds[rng.below(seeds.len())];
        let mut chars: Vec<char> = base.chars().collect();
        for _ in 0..=rng.below(4) {
            let at = rng.below(chars.len() + 1);
            match rng.below(3) {
                0 if at < chars.len() => {
                    chars.remove(at);
                }
                1 if at < chars.len() => chars[at] = alphabet[rng.below(alphabet.len())],
                _ => chars.insert(at, alphabet[rng.below(alphabet.len())]),
            }
        }
        check(&chars.iter().collect::<String>())?;
        let soup: String = (0..rng.below(40))
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        check(&soup)?;
    }
    Ok(())
}

#[test]
fn serde_uses_policy_strings() -> TestResult {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Doc {
        endorsement: Policy,
        principal: Principal,
        role: MspRole,
        rule: MetaRule,
        orgs: OrgPolicies,
    }
    let yaml = r#"
endorsement: "OutOf(2, 'A.peer', 'B.peer', 'C.peer')"
principal: Org1MSP.admin
role: client
rule: MAJORITY
orgs:
  Org1MSP:
    Endorsement: "OR('Org1MSP.member')"
"#;
    let doc: Doc = serde_yaml_ng::from_str(yaml)?;
    assert_eq!(doc.principal, Principal::new("Org1MSP", MspRole::Admin));
    assert_eq!(
        doc.orgs.get("Org1MSP", OrgPolicies::ENDORSEMENT),
        Some(&SignaturePolicy::or(vec![SignaturePolicy::signed_by(
            "Org1MSP",
            MspRole::Member
        )]))
    );
    let again: Doc = serde_yaml_ng::from_str(&serde_yaml_ng::to_string(&doc)?)?;
    assert_eq!(again, doc);

    let bad: Result<Doc, _> = serde_yaml_ng::from_str(&yaml.replace("A.peer", "A.pear"));
    assert!(bad.is_err_and(|e| e.to_string().contains("unknown role")));
    Ok(())
}

#[test]
fn principals_and_msp_ids() -> TestResult {
    let policy = sig("OR(AND('B.peer', 'A.member'), 'B.admin', OutOf(1, 'C.client'))")?;
    let principals: Vec<String> = policy.principals().map(ToString::to_string).collect();
    assert_eq!(principals, ["B.peer", "A.member", "B.admin", "C.client"]);
    assert_eq!(
        policy.msp_ids().into_iter().collect::<Vec<_>>(),
        ["A", "B", "C"]
    );
    Ok(())
}

// ---------------------------------------------------------------- evaluator

#[test]
fn role_matching_follows_node_ous() {
    use MspRole::*;
    let table = [
        (Member, None, true),
        (Member, Some(NodeOu::Client), true),
        (Member, Some(NodeOu::Orderer), true),
        (Admin, Some(NodeOu::Admin), true),
        (Admin, Some(NodeOu::Peer), false),
        (Admin, None, false),
        (Peer, Some(NodeOu::Client), false),
        (Peer, Some(NodeOu::Peer), true),
        (Client, Some(NodeOu::Client), true),
        (Orderer, Some(NodeOu::Orderer), true),
        (Orderer, Some(NodeOu::Peer), false),
    ];
    for (role, ou, holds) in table {
        assert_eq!(role.is_held_by(ou), holds, "{role} / {ou:?}");
    }
    for ou in NodeOu::ALL {
        assert!(MspRole::from(ou).is_held_by(Some(ou)));
    }
}

#[test]
fn one_identity_counts_once() -> TestResult {
    let two_members = sig("AND('A.member', 'A.member')")?;
    let a1 = peer("A", 1);
    assert!(!two_members.evaluate(std::slice::from_ref(&a1)));
    assert!(!two_members.evaluate(&[a1.clone(), a1.clone()]));
    assert!(two_members.evaluate(&[a1.clone(), peer("A", 2)]));
    // Dedup keeps the first occurrence: the same id re-presented as admin stays a peer.
    let admin_and_peer = sig("AND('A.admin', 'A.peer')")?;
    assert!(!admin_and_peer.evaluate(&[a1.clone(), signer("A", Some(NodeOu::Admin), 1)]));
    assert!(admin_and_peer.evaluate(&[a1, signer("A", Some(NodeOu::Admin), 3)]));
    Ok(())
}

#[test]
fn failed_sub_rule_releases_its_signers() -> TestResult {
    // The first branch consumes A's signer and then fails; Fabric's copy-on-try discards that,
    // so the second branch can still use the signer.
    let policy = sig("OR(AND('A.member', 'B.member'), 'A.member')")?;
    assert!(policy.evaluate(&[peer("A", 1)]));
    // A branch that holds keeps its signers: the second 'A.member' needs another identity.
    let policy = sig("AND(OR('A.member', 'B.member'), 'A.member')")?;
    assert!(!policy.evaluate(&[peer("A", 1)]));
    assert!(policy.evaluate(&[peer("A", 1), peer("A", 2)]));
    Ok(())
}

#[test]
fn greedy_matching_depends_on_signer_order_like_fabric() -> TestResult {
    let policy = sig("AND('A.member', 'A.peer')")?;
    let peer_a = peer("A", 1);
    let client_a = signer("A", Some(NodeOu::Client), 2);
    assert!(!policy.evaluate(&[peer_a.clone(), client_a.clone()]));
    assert!(policy.evaluate(&[client_a, peer_a]));
    Ok(())
}

#[test]
fn hand_built_degenerate_thresholds() {
    let a = SignaturePolicy::signed_by("A", MspRole::Member);
    assert!(SignaturePolicy::out_of(0, vec![a.clone()]).evaluate(&[]));
    assert!(SignaturePolicy::and(vec![]).evaluate(&[]));
    assert!(!SignaturePolicy::or(vec![]).evaluate(&[peer("A", 1)]));
    assert!(!SignaturePolicy::out_of(2, vec![a]).evaluate(&[peer("A", 1), peer("A", 2)]));
    // Such trees render to strings the parser rejects.
    assert!(sig(&SignaturePolicy::out_of(0, vec![]).to_string()).is_err());
}

#[test]
fn meta_rule_thresholds_match_fabric() {
    let expected = [
        // orgs, ANY, ALL, MAJORITY
        (0, 0, 0, 0),
        (1, 1, 1, 1),
        (2, 1, 2, 2),
        (3, 1, 3, 2),
        (4, 1, 4, 3),
        (5, 1, 5, 3),
    ];
    for (orgs, any, all, majority) in expected {
        assert_eq!(MetaRule::Any.threshold(orgs), any);
        assert_eq!(MetaRule::All.threshold(orgs), all);
        assert_eq!(MetaRule::Majority.threshold(orgs), majority);
    }
}

#[test]
fn implicit_meta_over_orgs() -> TestResult {
    let orgs = OrgPolicies::fabric_defaults(["Org1MSP", "Org2MSP", "Org3MSP", "Org1MSP"]);
    assert_eq!(orgs.len(), 3);
    let majority: Policy = "MAJORITY Endorsement".parse()?;
    let peers = [peer("Org1MSP", 1), peer("Org2MSP", 2), peer("Org3MSP", 3)];
    assert!(majority.evaluate(&peers[..2], &orgs));
    assert!(!majority.evaluate(&peers[..1], &orgs));
    // A missing sub-policy still counts in the total but never holds.
    let mut custom = orgs.clone();
    assert!(custom.insert_org("Org4MSP"));
    assert!(!custom.insert_org("Org4MSP"));
    assert!(!majority.evaluate(&peers[..2], &custom));
    assert!(majority.evaluate(&peers, &custom));
    assert!(
        !"ALL Endorsement"
            .parse::<Policy>()?
            .evaluate(&peers, &custom)
    );
    // Custom sub-policies replace the defaults.
    custom.set(
        "Org4MSP",
        OrgPolicies::ENDORSEMENT,
        sig("OR('Org4MSP.member')")?,
    );
    assert!("ALL Endorsement".parse::<Policy>()?.evaluate(
        &[&peers[..], &[signer("Org4MSP", None, 4)]].concat(),
        &custom
    ));
    // Zero orgs: Fabric's threshold 0, every rule holds even with no signers.
    for rule in ["ANY Readers", "ALL Readers", "MAJORITY Readers"] {
        assert!(rule.parse::<Policy>()?.evaluate(&[], &OrgPolicies::new()));
    }
    // A signature policy ignores the orgs.
    assert!(
        "'Org9MSP.member'"
            .parse::<Policy>()?
            .evaluate(&[signer("Org9MSP", None, 9)], &OrgPolicies::new())
    );
    Ok(())
}

#[test]
fn fabric_default_sub_policies() -> TestResult {
    let orgs = OrgPolicies::fabric_defaults(["Org1MSP"]);
    let rendered = |name: &str| orgs.get("Org1MSP", name).map(ToString::to_string);
    assert_eq!(
        rendered(OrgPolicies::READERS).as_deref(),
        Some("OR('Org1MSP.admin', 'Org1MSP.peer', 'Org1MSP.client')")
    );
    assert_eq!(
        rendered(OrgPolicies::WRITERS).as_deref(),
        Some("OR('Org1MSP.admin', 'Org1MSP.client')")
    );
    assert_eq!(
        rendered(OrgPolicies::ADMINS).as_deref(),
        Some("OR('Org1MSP.admin')")
    );
    assert_eq!(
        rendered(OrgPolicies::ENDORSEMENT).as_deref(),
        Some("OR('Org1MSP.peer')")
    );
    assert_eq!(orgs.msp_ids().collect::<Vec<_>>(), ["Org1MSP"]);
    let mut orgs = orgs;
    assert!(orgs.remove_org("Org1MSP"));
    assert!(orgs.is_empty());
    Ok(())
}

#[test]
fn explanations_name_unmet_principals() -> TestResult {
    let policy =
        sig("AND(OR('A.peer', 'B.peer'), 'C.admin', OutOf(2, 'D.peer', 'E.peer', 'F.peer'))")?;
    let signers = [peer("B", 1), peer("E", 2)];
    let explanation = policy.explain(&signers);
    assert!(!explanation.satisfied);
    let unmet: Vec<String> = explanation
        .unmet_principals
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(unmet, ["C.admin", "D.peer", "F.peer"]);
    assert_eq!(
        explanation.to_string(),
        "not satisfied: unmet principals: 'C.admin', 'D.peer', 'F.peer'"
    );

    let ok = policy.explain(&[
        peer("A", 1),
        signer("C", Some(NodeOu::Admin), 2),
        peer("D", 3),
        peer("F", 4),
    ]);
    assert!(ok.satisfied && ok.unmet_principals.is_empty());
    assert_eq!(ok.to_string(), "satisfied");

    let orgs = OrgPolicies::fabric_defaults(["Org1MSP", "Org2MSP", "Org3MSP"]);
    let meta: Policy = "MAJORITY Endorsement".parse()?;
    let explanation = meta.explain(&[peer("Org1MSP", 1)], &orgs);
    assert_eq!(
        explanation.satisfied,
        meta.evaluate(&[peer("Org1MSP", 1)], &orgs)
    );
    assert_eq!(explanation.unmet_orgs, ["Org2MSP", "Org3MSP"]);
    assert_eq!(
        explanation.to_string(),
        "not satisfied: 1 of 2 required 'Endorsement' sub-policies held (3 orgs); \
         unmet orgs: Org2MSP, Org3MSP; unmet principals: 'Org2MSP.peer', 'Org3MSP.peer'"
    );
    Ok(())
}
