//! Which organizations hold break-glass and auditor authority on the channel (ADR 0029).
//!
//! Any organization's CA can put `ehr.emergency=true` or `ehr.role=auditor` into a certificate,
//! so those attributes count only for an organization that a majority of the channel's
//! organizations approved for that authority. A chaincode cannot read the channel
//! configuration, so the decision lives in chaincode state, as Fabric's `_lifecycle` keeps
//! chaincode definitions. Membership itself needs consent:
//!
//! - **founding**: governance exists once every organization of one founding set (at least
//!   [`MIN_FOUNDERS`]) confirmed that same set: an MSP admin (NodeOU `admin`) of each calls
//!   `JoinGovernance ORG1,ORG2,…`. An organization has one confirmation, the set it named last
//!   (`WithdrawFounding` takes it back); the confirmation that makes every founder's current
//!   one the same set makes the founders the members and records each founder's approval of
//!   each founder's break-glass and auditor authority — what every founder confirmed. Before
//!   that nothing counts: no organization holds anything, and one organization alone never
//!   founds (`network up` has every founding organization confirm). Member entries of the
//!   first design (no `admitted_by`, or fewer than [`MIN_FOUNDERS`]) are not a founded
//!   governance: they grant nothing, and a founding replaces them;
//! - **joining later**: `JoinGovernance` without arguments asks the members to admit the
//!   caller's organization; `AdmitMember ORG` records one member's consent, and the consent
//!   that makes a majority of the members makes `ORG` a member. Joining approves nothing;
//! - `ApproveRoleAuthority ORG ROLE` (`ORG` a member) records the approval of the caller's
//!   organization, one key per (role, organization, approver); `WithdrawRoleAuthority`
//!   removes it. An organization that asked to join may record its approvals before it is
//!   admitted: they count from its admission, so admitting it need not end an authority;
//! - `ORG` holds `ROLE` while it is a member and approvals of current members number more than
//!   half of the members. It is computed at every use from state every peer holds, so it is
//!   the same on every endorser, and it follows approvals and withdrawals at once.

use medledger_chaincode::ChaincodeStub;
use serde_json::json;

use crate::caller::Caller;
use crate::error::{EhrError, Result};
use crate::events;
use crate::ids::{
    all_role_approvals_range, check_msp_id, gov_admission_key, gov_admission_range,
    gov_founding_key, gov_founding_range, gov_member_key, gov_member_range, gov_request_key,
    gov_request_range, role_approval_key, role_approval_range,
};
use crate::model::{
    Admission, AdmitOutcome, Authority, AuthorityRole, FoundingConfirmation, GovernanceMember,
    JoinOutcome, JoinRequest, JoinStatus, MAX_FOUNDERS, MIN_FOUNDERS, RoleApproval,
    founding_set_id,
};
use crate::tx::{Events, all, get_json, now_ms, param, put_json, to_json};

/// Every member entry in state, founded or not.
fn stored_members(stub: &dyn ChaincodeStub) -> Result<Vec<GovernanceMember>> {
    all(stub, gov_member_range()?, "governance member")
}

/// Whether stored members are governance of the first design (8c73202: organizations that
/// joined alone, each approving itself): a member without `admitted_by`, or fewer members
/// than [`MIN_FOUNDERS`]. Such governance is not founded: it grants nothing, and a founding
/// set replaces it.
fn is_legacy(stored: &[GovernanceMember]) -> bool {
    !stored.is_empty()
        && (stored.len() < MIN_FOUNDERS || stored.iter().any(|m| m.admitted_by.is_empty()))
}

/// Every organization taking part in a founded governance; none while governance is not
/// founded, or is governance of the first design ([`is_legacy`]).
pub(crate) fn members(stub: &dyn ChaincodeStub) -> Result<Vec<GovernanceMember>> {
    let stored = stored_members(stub)?;
    Ok(if is_legacy(&stored) {
        Vec::new()
    } else {
        stored
    })
}

fn authority_of(
    members: &[GovernanceMember],
    approvals: &[RoleApproval],
    org: &str,
    role: AuthorityRole,
) -> Authority {
    let approvals: Vec<String> = approvals
        .iter()
        .filter(|a| a.org == org && a.role == role)
        .filter(|a| members.iter().any(|m| m.msp_id == a.approver_msp))
        .map(|a| a.approver_msp.clone())
        .collect();
    let needed = members.len() / 2 + 1;
    let member = members.iter().any(|m| m.msp_id == org);
    Authority {
        org: org.to_owned(),
        role,
        in_force: member && approvals.len() >= needed,
        approvals,
        members: members.len(),
        needed,
    }
}

/// Whether `org` holds `role` now.
///
/// # Errors
/// Stub failures, undecodable entries.
pub(crate) fn authority(
    stub: &dyn ChaincodeStub,
    org: &str,
    role: AuthorityRole,
) -> Result<Authority> {
    let members = members(stub)?;
    let approvals: Vec<RoleApproval> = all(
        stub,
        role_approval_range(role.as_str(), org)?,
        "role approval",
    )?;
    Ok(authority_of(&members, &approvals, org, role))
}

fn not_held(a: &Authority) -> EhrError {
    EhrError::forbidden(not_held_message(a))
}

/// Why `a` is not in force: the organization, the authority, approvals and members (ids and
/// counts only).
pub(crate) fn not_held_message(a: &Authority) -> String {
    format!(
        "organization {} holds no {} authority on this channel: {} of {} governing organizations \
         approved it, {} needed (ApproveRoleAuthority {} {})",
        a.org,
        a.role.describe(),
        a.approvals.len(),
        a.members,
        a.needed,
        a.org,
        a.role.as_str()
    )
}

/// Refuses (403) unless `org` holds `role`.
///
/// # Errors
/// [`EhrError::Forbidden`] naming the organization, the authority and the approvals; stub
/// failures.
pub(crate) fn require_authority(
    stub: &dyn ChaincodeStub,
    org: &str,
    role: AuthorityRole,
) -> Result<()> {
    let a = authority(stub, org, role)?;
    if a.in_force {
        Ok(())
    } else {
        Err(not_held(&a))
    }
}

fn require_msp_admin(caller: &Caller) -> Result<()> {
    if caller.msp_admin {
        Ok(())
    } else {
        Err(EhrError::forbidden(
            "only an admin of an organization's MSP (NodeOU admin) acts in EHR governance",
        ))
    }
}

fn is_member(stub: &dyn ChaincodeStub, msp_id: &str) -> Result<bool> {
    Ok(members(stub)?.iter().any(|m| m.msp_id == msp_id))
}

fn require_member(stub: &dyn ChaincodeStub, caller: &Caller) -> Result<()> {
    require_msp_admin(caller)?;
    if is_member(stub, &caller.msp_id)? {
        Ok(())
    } else {
        Err(EhrError::forbidden(format!(
            "organization {} does not take part in EHR governance: JoinGovernance first",
            caller.msp_id
        )))
    }
}

/// A member, or an organization that asked to join (its approvals count once admitted).
fn require_member_or_candidate(stub: &dyn ChaincodeStub, caller: &Caller) -> Result<()> {
    require_msp_admin(caller)?;
    if is_member(stub, &caller.msp_id)?
        || stub.get_state(&gov_request_key(&caller.msp_id)?)?.is_some()
    {
        Ok(())
    } else {
        Err(EhrError::forbidden(format!(
            "organization {} does not take part in EHR governance: JoinGovernance first",
            caller.msp_id
        )))
    }
}

fn role_args(args: &[String], usage: &str) -> Result<(String, AuthorityRole)> {
    let org = param(args, 0, usage)?;
    check_msp_id(org)?;
    let role = AuthorityRole::parse(param(args, 1, usage)?)
        .ok_or_else(|| EhrError::invalid("role must be emergency or auditor"))?;
    if args.len() > 2 {
        return Err(EhrError::invalid(format!(
            "too many arguments; usage: {usage}"
        )));
    }
    Ok((org.to_owned(), role))
}

/// Parses a founding set: MSP ids separated by `,`, the caller's among them, at least
/// [`MIN_FOUNDERS`] and at most [`MAX_FOUNDERS`] distinct ones. Returns them sorted.
fn founding_set(list: &str, caller_msp: &str) -> Result<Vec<String>> {
    let mut founders = Vec::new();
    for msp in list.split(',') {
        check_msp_id(msp)?;
        founders.push(msp.to_owned());
    }
    founders.sort_unstable();
    founders.dedup();
    if !(MIN_FOUNDERS..=MAX_FOUNDERS).contains(&founders.len()) {
        return Err(EhrError::invalid(format!(
            "a founding set names {MIN_FOUNDERS} to {MAX_FOUNDERS} organizations \
             (one organization alone never founds EHR governance)"
        )));
    }
    if !founders.iter().any(|f| f == caller_msp) {
        return Err(EhrError::invalid(format!(
            "the founding set must name the caller's organization {caller_msp}"
        )));
    }
    Ok(founders)
}

/// `JoinGovernance [FOUNDERS]` (submitted; an MSP admin of any channel organization).
///
/// - With `FOUNDERS` (`ORG1,ORG2,…`, the caller's organization among 2 to 64), before
///   governance exists: records the caller's organization's confirmation of that founding set,
///   replacing the one it made before (an organization confirms one set at a time;
///   `WithdrawFounding` takes it back). The confirmation that makes every founder's current
///   confirmation this set founds governance: every founder becomes a member and approves
///   every founder's break-glass and auditor authority; governance of the first design
///   ([`is_legacy`]) is replaced, its members and approvals removed. Confirming the same set
///   again writes nothing and founds if the set is complete (a seeding retried after a
///   failure).
/// - Without arguments, once governance exists: asks the members to admit the caller's
///   organization (`AdmitMember`). Joining approves nothing.
///
/// Returns a [`JoinOutcome`]. Errors: 403 not an MSP admin; 400 a malformed founding set;
/// 409 already a member, already asked, a founding set once governance exists, or a request
/// before it exists.
pub(crate) fn join_governance(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "JoinGovernance [ORG1,ORG2,…]";
    let caller = Caller::of(stub)?;
    require_msp_admin(&caller)?;
    if args.len() > 1 {
        return Err(EhrError::invalid(format!(
            "too many arguments; usage: {USAGE}"
        )));
    }
    let founders = args
        .first()
        .map(|list| founding_set(list, &caller.msp_id))
        .transpose()?;
    let stored = stored_members(stub)?;
    let members = if is_legacy(&stored) {
        Vec::new()
    } else {
        stored.clone()
    };
    if members.iter().any(|m| m.msp_id == caller.msp_id) {
        return Err(EhrError::conflict(format!(
            "organization {} already takes part in EHR governance",
            caller.msp_id
        )));
    }
    match founders {
        Some(founders) if members.is_empty() => confirm_founding(stub, &caller, founders, &stored),
        Some(_) => Err(EhrError::conflict(format!(
            "EHR governance is founded ({} members); JoinGovernance without a founding set asks \
             them to admit {}",
            members.len(),
            caller.msp_id
        ))),
        None if members.is_empty() => Err(EhrError::conflict(
            "EHR governance is not founded: each founding organization's admin confirms the \
             same founding set (JoinGovernance ORG1,ORG2,…)",
        )),
        None => request_to_join(stub, &caller),
    }
}

/// Records `caller`'s confirmation of `founders` (replacing its earlier one) and founds
/// governance if every founder's current confirmation is this set. `stored` are the member
/// entries in state: none, or governance of the first design that the founding replaces.
fn confirm_founding(
    stub: &dyn ChaincodeStub,
    caller: &Caller,
    founders: Vec<String>,
    stored: &[GovernanceMember],
) -> Result<Vec<u8>> {
    let set_id = founding_set_id(&founders);
    let now = now_ms(stub)?;
    let own_key = gov_founding_key(&caller.msp_id)?;
    let previous: Option<FoundingConfirmation> = get_json(stub, &own_key, "founding confirmation")?;
    let confirms_this = |c: &FoundingConfirmation, msp: &str| {
        c.msp_id == msp && c.founding_set_id == set_id && c.founders == founders
    };
    let own = match &previous {
        Some(p) if confirms_this(p, &caller.msp_id) => None,
        _ => Some(FoundingConfirmation {
            founding_set_id: set_id.clone(),
            founders: founders.clone(),
            msp_id: caller.msp_id.clone(),
            confirmed_by: caller.id.clone(),
            confirmed_at_ms: now,
        }),
    };
    // Every founder's current confirmation, each key read: a founder that confirms another
    // set or withdraws before this commits makes it an MVCC conflict.
    let mut by: Vec<(String, String)> = Vec::new();
    let mut missing = Vec::new();
    for founder in &founders {
        let current: Option<FoundingConfirmation> = if *founder == caller.msp_id {
            own.clone().or_else(|| previous.clone())
        } else {
            get_json(stub, &gov_founding_key(founder)?, "founding confirmation")?
        };
        match current.filter(|c| confirms_this(c, founder)) {
            Some(c) => by.push((founder.clone(), c.confirmed_by)),
            None => missing.push(founder.clone()),
        }
    }
    let confirmed: Vec<String> = by.iter().map(|(f, _)| f.clone()).collect();
    let mut events = Events::default();
    if let Some(own) = &own {
        put_json(stub, &own_key, own)?;
        events.push(
            events::GOVERNANCE_FOUNDING_CONFIRMED,
            json!({"msp_id": caller.msp_id, "founding_set_id": set_id, "founders": founders,
                   "missing": missing,
                   "replaced": previous.as_ref().map(|p| p.founding_set_id.clone())}),
        );
    }
    let status = if missing.is_empty() {
        let replaced = replace_legacy(stub, stored, &founders)?;
        for (founder, confirmed_by) in &by {
            let member = GovernanceMember {
                msp_id: founder.clone(),
                joined_by: confirmed_by.clone(),
                joined_at_ms: now,
                admitted_by: founders.clone(),
            };
            put_json(stub, &gov_member_key(founder)?, &member)?;
            for org in &founders {
                for role in AuthorityRole::ALL {
                    let approval = RoleApproval {
                        role,
                        org: org.clone(),
                        approver_msp: founder.clone(),
                        approved_by: confirmed_by.clone(),
                        approved_at_ms: now,
                    };
                    put_json(
                        stub,
                        &role_approval_key(role.as_str(), org, founder)?,
                        &approval,
                    )?;
                }
            }
        }
        events.push(
            events::GOVERNANCE_FOUNDED,
            json!({"founding_set_id": set_id, "founders": founders,
                   "replaced_legacy_members": replaced}),
        );
        JoinStatus::Founded
    } else {
        JoinStatus::Confirmed
    };
    events.emit(stub)?;
    to_json(&JoinOutcome {
        status,
        founders,
        confirmed,
        missing,
    })
}

/// At a founding: removes governance of the first design — every stored member entry and
/// every role approval that the founding does not write again (those it writes are
/// replaced). Returns the removed members' MSP ids.
fn replace_legacy(
    stub: &dyn ChaincodeStub,
    stored: &[GovernanceMember],
    founders: &[String],
) -> Result<Vec<String>> {
    let founder = |msp: &str| founders.iter().any(|f| f == msp);
    let mut removed = Vec::new();
    for m in stored {
        removed.push(m.msp_id.clone());
        if !founder(&m.msp_id) {
            stub.del_state(&gov_member_key(&m.msp_id)?)?;
        }
    }
    let approvals: Vec<RoleApproval> = all(stub, all_role_approvals_range()?, "role approval")?;
    for a in approvals {
        if !(founder(&a.org) && founder(&a.approver_msp)) {
            stub.del_state(&role_approval_key(
                a.role.as_str(),
                &a.org,
                &a.approver_msp,
            )?)?;
        }
    }
    Ok(removed)
}

/// `WithdrawFounding` (submitted; an MSP admin of any channel organization), before
/// governance is founded: takes back the caller's organization's founding confirmation, so
/// no founding set counts it. Returns the confirmation removed. Errors: 403 not an MSP admin;
/// 400 arguments; 404 no confirmation; 409 governance is founded (the founders'
/// confirmations are then its record).
pub(crate) fn withdraw_founding(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    let caller = Caller::of(stub)?;
    require_msp_admin(&caller)?;
    if !args.is_empty() {
        return Err(EhrError::invalid("WithdrawFounding takes no arguments"));
    }
    let members = members(stub)?;
    if !members.is_empty() {
        return Err(EhrError::conflict(format!(
            "EHR governance is founded ({} members); founding confirmations are its record",
            members.len()
        )));
    }
    let key = gov_founding_key(&caller.msp_id)?;
    let confirmation: FoundingConfirmation = get_json(stub, &key, "founding confirmation")?
        .ok_or_else(|| EhrError::not_found("founding confirmation of", caller.msp_id.clone()))?;
    stub.del_state(&key)?;
    let mut events = Events::default();
    events.push(
        events::GOVERNANCE_FOUNDING_WITHDRAWN,
        json!({"msp_id": caller.msp_id, "founding_set_id": confirmation.founding_set_id}),
    );
    events.emit(stub)?;
    to_json(&confirmation)
}

fn request_to_join(stub: &dyn ChaincodeStub, caller: &Caller) -> Result<Vec<u8>> {
    let key = gov_request_key(&caller.msp_id)?;
    if stub.get_state(&key)?.is_some() {
        return Err(EhrError::conflict(format!(
            "organization {} already asked to join EHR governance; members admit it with \
             AdmitMember {}",
            caller.msp_id, caller.msp_id
        )));
    }
    let request = JoinRequest {
        msp_id: caller.msp_id.clone(),
        requested_by: caller.id.clone(),
        requested_at_ms: now_ms(stub)?,
    };
    put_json(stub, &key, &request)?;
    let mut events = Events::default();
    events.push(
        events::GOVERNANCE_JOIN_REQUESTED,
        json!({"msp_id": caller.msp_id}),
    );
    events.emit(stub)?;
    to_json(&JoinOutcome {
        status: JoinStatus::Requested,
        founders: Vec::new(),
        confirmed: Vec::new(),
        missing: Vec::new(),
    })
}

/// `AdmitMember ORG` (submitted; an MSP admin of a member): the caller's organization
/// consents to `ORG`'s request to join. The consent that makes a majority of the members
/// (`members / 2 + 1`) makes `ORG` a member (its earlier approvals then count). Returns an
/// [`AdmitOutcome`]. Errors: 403 not a member's MSP admin; 400 a malformed MSP id; 404 no
/// request of `ORG`; 409 already a member or already admitted by the caller's organization.
pub(crate) fn admit_member(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "AdmitMember ORG";
    let caller = Caller::of(stub)?;
    require_member(stub, &caller)?;
    let org = param(args, 0, USAGE)?;
    check_msp_id(org)?;
    if args.len() > 1 {
        return Err(EhrError::invalid(format!(
            "too many arguments; usage: {USAGE}"
        )));
    }
    if is_member(stub, org)? {
        return Err(EhrError::conflict(format!(
            "organization {org} already takes part in EHR governance"
        )));
    }
    let request_key = gov_request_key(org)?;
    let request: JoinRequest = get_json(stub, &request_key, "join request")?
        .ok_or_else(|| EhrError::not_found("request to join EHR governance of", org))?;
    let key = gov_admission_key(org, &caller.msp_id)?;
    if stub.get_state(&key)?.is_some() {
        return Err(EhrError::conflict(format!(
            "{} already admitted {org}",
            caller.msp_id
        )));
    }
    let members = members(stub)?;
    let earlier: Vec<Admission> = all(stub, gov_admission_range(org)?, "admission")?;
    let mut admissions: Vec<String> = earlier
        .iter()
        .map(|a| a.approver_msp.clone())
        .filter(|a| members.iter().any(|m| &m.msp_id == a))
        .collect();
    admissions.push(caller.msp_id.clone());
    admissions.sort_unstable();
    let needed = members.len() / 2 + 1;
    let admitted = admissions.len() >= needed;
    let now = now_ms(stub)?;
    let mut events = Events::default();
    events.push(
        events::GOVERNANCE_ADMISSION,
        json!({"org": org, "approver_msp": caller.msp_id, "admitted": admitted}),
    );
    if admitted {
        // The member entry keeps who let it in; the request and admissions are done.
        let member = GovernanceMember {
            msp_id: org.to_owned(),
            joined_by: request.requested_by,
            joined_at_ms: now,
            admitted_by: admissions.clone(),
        };
        put_json(stub, &gov_member_key(org)?, &member)?;
        stub.del_state(&request_key)?;
        for a in &earlier {
            stub.del_state(&gov_admission_key(org, &a.approver_msp)?)?;
        }
        events.push(
            events::GOVERNANCE_JOINED,
            json!({"msp_id": org, "admitted_by": admissions}),
        );
    } else {
        let admission = Admission {
            org: org.to_owned(),
            approver_msp: caller.msp_id.clone(),
            approved_by: caller.id.clone(),
            approved_at_ms: now,
        };
        put_json(stub, &key, &admission)?;
    }
    events.emit(stub)?;
    to_json(&AdmitOutcome {
        org: org.to_owned(),
        admissions,
        members: members.len(),
        needed,
        admitted,
    })
}

/// `ApproveRoleAuthority ORG ROLE` (submitted; an MSP admin of a member, or of an
/// organization that asked to join — its approvals count once it is admitted): records that
/// the caller's organization approves `ORG` holding `ROLE` (`emergency` or `auditor`).
/// Returns the approval; `GetRoleAuthority` tells whether it is in force. Errors: 403 not
/// such an admin; 400 malformed arguments; 404 `ORG` is not a member (only members hold
/// authority); 409 already approved.
///
/// It reads no other organization's approval, so approvals of the same authority by several
/// organizations can be ordered in the same block without conflicting.
pub(crate) fn approve_role_authority(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "ApproveRoleAuthority ORG emergency|auditor";
    let caller = Caller::of(stub)?;
    require_member_or_candidate(stub, &caller)?;
    let (org, role) = role_args(args, USAGE)?;
    if !is_member(stub, &org)? {
        // Only members hold authority: an approval of anyone else would wait, unseen, for
        // the day it joins.
        return Err(EhrError::not_found("EHR governance member", org));
    }
    let key = role_approval_key(role.as_str(), &org, &caller.msp_id)?;
    if stub.get_state(&key)?.is_some() {
        return Err(EhrError::conflict(format!(
            "{} already approved {} authority for {org}",
            caller.msp_id,
            role.describe()
        )));
    }
    let approval = RoleApproval {
        role,
        org: org.clone(),
        approver_msp: caller.msp_id.clone(),
        approved_by: caller.id.clone(),
        approved_at_ms: now_ms(stub)?,
    };
    put_json(stub, &key, &approval)?;
    let mut events = Events::default();
    events.push(
        events::ROLE_AUTHORITY_APPROVED,
        json!({"org": org, "role": role, "approver_msp": caller.msp_id}),
    );
    events.emit(stub)?;
    to_json(&approval)
}

/// `WithdrawRoleAuthority ORG ROLE` (submitted; an MSP admin of a member or of an
/// organization that asked to join): removes the caller's organization's approval (the
/// authority ends if the remaining approvals are no longer a majority). Returns the approval
/// removed. Errors: 403, 400 as `ApproveRoleAuthority`; 404 no such approval.
pub(crate) fn withdraw_role_authority(
    stub: &dyn ChaincodeStub,
    args: &[String],
) -> Result<Vec<u8>> {
    const USAGE: &str = "WithdrawRoleAuthority ORG emergency|auditor";
    let caller = Caller::of(stub)?;
    require_member_or_candidate(stub, &caller)?;
    let (org, role) = role_args(args, USAGE)?;
    let key = role_approval_key(role.as_str(), &org, &caller.msp_id)?;
    let approval: RoleApproval = get_json(stub, &key, "role approval")?.ok_or_else(|| {
        EhrError::not_found(
            "approval by the caller's organization of the authority of",
            org.clone(),
        )
    })?;
    stub.del_state(&key)?;
    let mut events = Events::default();
    events.push(
        events::ROLE_AUTHORITY_WITHDRAWN,
        json!({"org": org, "role": role, "approver_msp": caller.msp_id}),
    );
    events.emit(stub)?;
    to_json(&approval)
}

/// `GetRoleAuthority ORG ROLE` (evaluated; any identity): whether `ORG` holds `ROLE`, with
/// the approvals and the majority needed.
pub(crate) fn get_role_authority(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    Caller::of(stub)?;
    let (org, role) = role_args(args, "GetRoleAuthority ORG emergency|auditor")?;
    to_json(&authority(stub, &org, role)?)
}

/// `GetGovernance` (evaluated; any identity): the governing organizations, every authority
/// with at least one approval, the open requests to join with their admissions, the
/// founding sets organizations confirm now (each organization's current confirmation,
/// grouped by set), and member entries of the first design that count for nothing
/// ([`is_legacy`]; a founding replaces them):
/// `{members:[…], authorities:[…], requests:[{request, admissions}], founding_sets:[{founding_set_id, founders, confirmed}], legacy_members:[…]}`.
pub(crate) fn get_governance(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    Caller::of(stub)?;
    if !args.is_empty() {
        return Err(EhrError::invalid("GetGovernance takes no arguments"));
    }
    let stored = stored_members(stub)?;
    let (members, legacy) = if is_legacy(&stored) {
        (Vec::new(), stored)
    } else {
        (stored, Vec::new())
    };
    let approvals: Vec<RoleApproval> = all(stub, all_role_approvals_range()?, "role approval")?;
    let mut pairs: Vec<(AuthorityRole, &str)> =
        approvals.iter().map(|a| (a.role, a.org.as_str())).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let authorities: Vec<Authority> = pairs
        .into_iter()
        .map(|(role, org)| authority_of(&members, &approvals, org, role))
        .collect();
    let requests: Vec<JoinRequest> = all(stub, gov_request_range()?, "join request")?;
    let mut open = Vec::new();
    for request in requests {
        let admissions: Vec<Admission> =
            all(stub, gov_admission_range(&request.msp_id)?, "admission")?;
        let admissions: Vec<String> = admissions.into_iter().map(|a| a.approver_msp).collect();
        open.push(json!({"request": request, "admissions": admissions}));
    }
    let confirmations: Vec<FoundingConfirmation> =
        all(stub, gov_founding_range()?, "founding confirmation")?;
    let mut founding_sets: Vec<serde_json::Value> = Vec::new();
    for c in &confirmations {
        match founding_sets
            .iter_mut()
            .find(|f| f["founding_set_id"] == c.founding_set_id.as_str())
        {
            Some(f) => {
                if let Some(list) = f["confirmed"].as_array_mut() {
                    list.push(json!(c.msp_id));
                }
            }
            None => founding_sets.push(json!({"founding_set_id": c.founding_set_id,
                "founders": c.founders, "confirmed": [c.msp_id]})),
        }
    }
    to_json(
        &json!({"members": members, "authorities": authorities, "requests": open,
        "founding_sets": founding_sets, "legacy_members": legacy}),
    )
}
