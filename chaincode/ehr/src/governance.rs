//! Which organizations hold break-glass and auditor authority on the channel (ADR 0029).
//!
//! Any organization's CA can put `ehr.emergency=true` or `ehr.role=auditor` into a certificate,
//! so those attributes count only for an organization that a majority of the channel's
//! organizations approved for that authority. A chaincode cannot read the channel
//! configuration, so the decision lives in chaincode state, as Fabric's `_lifecycle` keeps
//! chaincode definitions:
//!
//! - an organization takes part in governance once one of its MSP admins (NodeOU `admin`)
//!   calls `JoinGovernance` — the peer has validated that certificate against the channel's
//!   MSPs, so only a channel organization can join; `network up` joins the founding
//!   organizations;
//! - `ApproveRoleAuthority ORG ROLE` records the approval of the caller's organization, one
//!   key per (role, organization, approver); `WithdrawRoleAuthority` removes it;
//! - `ORG` holds `ROLE` while approvals of current members number more than half of the
//!   members. It is computed at every use from state every peer holds, so it is the same on
//!   every endorser, and it follows approvals and withdrawals at once. A joining organization
//!   starts out approving every authority then in force, so a growing channel does not end
//!   one by itself.

use medledger_chaincode::ChaincodeStub;
use serde_json::json;

use crate::caller::Caller;
use crate::error::{EhrError, Result};
use crate::events;
use crate::ids::{
    all_role_approvals_range, check_msp_id, gov_member_key, gov_member_range, role_approval_key,
    role_approval_range,
};
use crate::model::{Authority, AuthorityRole, GovernanceMember, RoleApproval};
use crate::tx::{Events, all, get_json, now_ms, param, put_json, to_json};

/// Every organization taking part in governance.
pub(crate) fn members(stub: &dyn ChaincodeStub) -> Result<Vec<GovernanceMember>> {
    all(stub, gov_member_range()?, "governance member")
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
    Authority {
        org: org.to_owned(),
        role,
        in_force: approvals.len() >= needed,
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
    EhrError::forbidden(format!(
        "organization {} holds no {} authority on this channel: {} of {} governing organizations \
         approved it, {} needed (ApproveRoleAuthority {} {})",
        a.org,
        a.role.describe(),
        a.approvals.len(),
        a.members,
        a.needed,
        a.org,
        a.role.as_str()
    ))
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

fn require_member(stub: &dyn ChaincodeStub, caller: &Caller) -> Result<()> {
    require_msp_admin(caller)?;
    if stub.get_state(&gov_member_key(&caller.msp_id)?)?.is_some() {
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

/// `JoinGovernance` (submitted; an MSP admin of any channel organization): the caller's
/// organization takes part in governance — its approvals count, and it counts in the majority.
/// It approves every authority in force at that moment (so joining never ends one). Returns
/// `{member, approved_in_force}`.
pub(crate) fn join_governance(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    let caller = Caller::of(stub)?;
    require_msp_admin(&caller)?;
    if !args.is_empty() {
        return Err(EhrError::invalid("JoinGovernance takes no arguments"));
    }
    let key = gov_member_key(&caller.msp_id)?;
    if stub.get_state(&key)?.is_some() {
        return Err(EhrError::conflict(format!(
            "organization {} already takes part in EHR governance",
            caller.msp_id
        )));
    }
    let now = now_ms(stub)?;
    let member = GovernanceMember {
        msp_id: caller.msp_id.clone(),
        joined_by: caller.id.clone(),
        joined_at_ms: now,
    };
    // The newcomer starts out approving every authority in force: a larger set of members
    // must not silently end break-glass at the hospitals that hold it. It may withdraw any of
    // them afterwards, which counts like any other withdrawal.
    let members = members(stub)?;
    let approvals: Vec<RoleApproval> = all(stub, all_role_approvals_range()?, "role approval")?;
    let mut in_force: Vec<(AuthorityRole, &str)> =
        approvals.iter().map(|a| (a.role, a.org.as_str())).collect();
    in_force.sort_unstable();
    in_force.dedup();
    in_force.retain(|(role, org)| authority_of(&members, &approvals, org, *role).in_force);
    for (role, org) in &in_force {
        let approval = RoleApproval {
            role: *role,
            org: (*org).to_owned(),
            approver_msp: caller.msp_id.clone(),
            approved_by: caller.id.clone(),
            approved_at_ms: now,
        };
        put_json(
            stub,
            &role_approval_key(role.as_str(), org, &caller.msp_id)?,
            &approval,
        )?;
    }
    put_json(stub, &key, &member)?;
    let mut events = Events::default();
    events.push(
        events::GOVERNANCE_JOINED,
        json!({"msp_id": member.msp_id, "approved_in_force": in_force.len()}),
    );
    events.emit(stub)?;
    to_json(&json!({"member": member, "approved_in_force": in_force.len()}))
}

/// `ApproveRoleAuthority ORG ROLE` (submitted; an MSP admin of a governing organization):
/// records that the caller's organization approves `ORG` holding `ROLE` (`emergency` or
/// `auditor`). Returns the approval; `GetRoleAuthority` tells whether it is in force.
///
/// It reads no other organization's approval, so approvals of the same authority by several
/// organizations can be ordered in the same block without conflicting.
pub(crate) fn approve_role_authority(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    const USAGE: &str = "ApproveRoleAuthority ORG emergency|auditor";
    let caller = Caller::of(stub)?;
    require_member(stub, &caller)?;
    let (org, role) = role_args(args, USAGE)?;
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

/// `WithdrawRoleAuthority ORG ROLE` (submitted; an MSP admin of a governing organization):
/// removes the caller's organization's approval (the authority ends if the remaining
/// approvals are no longer a majority). Returns the approval removed.
pub(crate) fn withdraw_role_authority(
    stub: &dyn ChaincodeStub,
    args: &[String],
) -> Result<Vec<u8>> {
    const USAGE: &str = "WithdrawRoleAuthority ORG emergency|auditor";
    let caller = Caller::of(stub)?;
    require_member(stub, &caller)?;
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

/// `GetGovernance` (evaluated; any identity): the governing organizations and every
/// authority with at least one approval: `{members:[…], authorities:[…]}`.
pub(crate) fn get_governance(stub: &dyn ChaincodeStub, args: &[String]) -> Result<Vec<u8>> {
    Caller::of(stub)?;
    if !args.is_empty() {
        return Err(EhrError::invalid("GetGovernance takes no arguments"));
    }
    let members = members(stub)?;
    let approvals: Vec<RoleApproval> = all(stub, all_role_approvals_range()?, "role approval")?;
    let mut pairs: Vec<(AuthorityRole, &str)> =
        approvals.iter().map(|a| (a.role, a.org.as_str())).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let authorities: Vec<Authority> = pairs
        .into_iter()
        .map(|(role, org)| authority_of(&members, &approvals, org, role))
        .collect();
    to_json(&json!({"members": members, "authorities": authorities}))
}
