//! The access state machine per (patient, grantee), after Algorithm 1 of the seed paper.
//!
//! | state \ action | Authentication | Permission  | Violation | NoAction   |
//! |----------------|----------------|-------------|-----------|------------|
//! | NoRelation     | Authorized     | invalid     | invalid   | NoRelation |
//! | Authorized     | Authorized     | invalid     | Suspended | Authorized |
//! | Suspended      | invalid        | Authorized  | Blocked   | Suspended  |
//! | Blocked        | blocked        | blocked     | blocked   | blocked    |
//!
//! - Authentication: the patient grants a consent (first grant, or another one while
//!   Authorized).
//! - Permission: the patient grants again while the grantee is Suspended.
//! - Violation: a read outside the granted scope, purpose or period (including after expiry
//!   or revocation) by a grantee that has a relation (Authorized or Suspended).
//! - NoAction: anything else (granted reads, refusals of a grantee with no relation).
//!
//! Blocked is terminal ("error and abort"): every action errors. Only [`reset`] — which the
//! contract runs once both the custodian's admin and the patient have approved it — leaves it.

use serde::{Deserialize, Serialize};

/// The state of a (patient, grantee) relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum AccessState {
    /// No consent was ever granted (or the relation was reset).
    #[default]
    NoRelation,
    /// The grantee may read within its consents.
    Authorized,
    /// After a violation: reads are refused until the patient grants again.
    Suspended,
    /// After a second violation: every request errors until reset.
    Blocked,
}

/// What happened, as input to [`transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// A consent granted.
    Authentication,
    /// A consent granted again while Suspended.
    Permission,
    /// A read outside the granted scope, purpose or period.
    Violation,
    /// Nothing that changes the relation.
    NoAction,
}

impl AccessState {
    /// All states.
    pub const ALL: [AccessState; 4] = [
        AccessState::NoRelation,
        AccessState::Authorized,
        AccessState::Suspended,
        AccessState::Blocked,
    ];

    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessState::NoRelation => "NoRelation",
            AccessState::Authorized => "Authorized",
            AccessState::Suspended => "Suspended",
            AccessState::Blocked => "Blocked",
        }
    }
}

impl Action {
    /// All actions.
    pub const ALL: [Action; 4] = [
        Action::Authentication,
        Action::Permission,
        Action::Violation,
        Action::NoAction,
    ];

    /// The action's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Authentication => "Authentication",
            Action::Permission => "Permission",
            Action::Violation => "Violation",
            Action::NoAction => "NoAction",
        }
    }
}

/// Why a transition is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The relation is Blocked: error and abort.
    #[error("access state is Blocked")]
    Blocked,
    /// The action is not defined in this state.
    #[error("action {} is not valid in state {}", action.as_str(), state.as_str())]
    Invalid {
        /// Current state.
        state: AccessState,
        /// Action attempted.
        action: Action,
    },
}

/// The next state of `state` after `action` (see the module table).
///
/// # Errors
/// [`TransitionError::Blocked`] from Blocked; [`TransitionError::Invalid`] for the pairs marked
/// invalid.
pub fn transition(state: AccessState, action: Action) -> Result<AccessState, TransitionError> {
    use AccessState::*;
    use Action::*;
    match (state, action) {
        (Blocked, _) => Err(TransitionError::Blocked),
        (s, NoAction) => Ok(s),
        (NoRelation | Authorized, Authentication) => Ok(Authorized),
        (Suspended, Permission) => Ok(Authorized),
        (Authorized, Violation) => Ok(Suspended),
        (Suspended, Violation) => Ok(Blocked),
        (NoRelation, Permission | Violation)
        | (Authorized, Permission)
        | (Suspended, Authentication) => Err(TransitionError::Invalid { state, action }),
    }
}

/// The action a consent grant is, in `state`: Permission while Suspended, Authentication
/// otherwise.
pub fn grant_action(state: AccessState) -> Action {
    if state == AccessState::Suspended {
        Action::Permission
    } else {
        Action::Authentication
    }
}

/// Resets a Blocked relation to NoRelation (after the two approvals).
///
/// # Errors
/// [`TransitionError::Invalid`] (with action NoAction) unless `state` is Blocked: only a
/// Blocked relation needs a reset.
pub fn reset(state: AccessState) -> Result<AccessState, TransitionError> {
    if state == AccessState::Blocked {
        Ok(AccessState::NoRelation)
    } else {
        Err(TransitionError::Invalid {
            state,
            action: Action::NoAction,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::AccessState::*;
    use super::Action::*;
    use super::*;

    /// Every (state, action) pair, with its expected outcome (`None` = invalid transition).
    const TABLE: [(AccessState, Action, Option<AccessState>); 16] = [
        (NoRelation, Authentication, Some(Authorized)),
        (NoRelation, Permission, None),
        (NoRelation, Violation, None),
        (NoRelation, NoAction, Some(NoRelation)),
        (Authorized, Authentication, Some(Authorized)),
        (Authorized, Permission, None),
        (Authorized, Violation, Some(Suspended)),
        (Authorized, NoAction, Some(Authorized)),
        (Suspended, Authentication, None),
        (Suspended, Permission, Some(Authorized)),
        (Suspended, Violation, Some(Blocked)),
        (Suspended, NoAction, Some(Suspended)),
        (Blocked, Authentication, None),
        (Blocked, Permission, None),
        (Blocked, Violation, None),
        (Blocked, NoAction, None),
    ];

    #[test]
    fn every_state_action_pair() {
        for s in AccessState::ALL {
            for a in Action::ALL {
                assert!(
                    TABLE.iter().any(|(ts, ta, _)| *ts == s && *ta == a),
                    "table misses ({s:?}, {a:?})"
                );
            }
        }
        for (state, action, expected) in TABLE {
            let got = transition(state, action);
            match expected {
                Some(next) => assert_eq!(got, Ok(next), "({state:?}, {action:?})"),
                None if state == Blocked => {
                    assert_eq!(
                        got,
                        Err(TransitionError::Blocked),
                        "({state:?}, {action:?})"
                    )
                }
                None => assert_eq!(
                    got,
                    Err(TransitionError::Invalid { state, action }),
                    "({state:?}, {action:?})"
                ),
            }
        }
    }

    #[test]
    fn grant_action_and_reset() {
        assert_eq!(grant_action(NoRelation), Authentication);
        assert_eq!(grant_action(Authorized), Authentication);
        assert_eq!(grant_action(Suspended), Permission);
        // The grant action of every non-Blocked state is a valid transition to Authorized.
        for s in [NoRelation, Authorized, Suspended] {
            assert_eq!(transition(s, grant_action(s)), Ok(Authorized));
        }
        assert_eq!(reset(Blocked), Ok(NoRelation));
        for s in [NoRelation, Authorized, Suspended] {
            assert!(reset(s).is_err());
        }
    }

    #[test]
    fn names_serialize_as_in_the_issue() {
        assert_eq!(
            serde_json::to_string(&NoRelation).unwrap(),
            "\"NoRelation\""
        );
        assert_eq!(serde_json::to_string(&Violation).unwrap(), "\"Violation\"");
        for s in AccessState::ALL {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        for a in Action::ALL {
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                format!("\"{}\"", a.as_str())
            );
        }
    }
}
