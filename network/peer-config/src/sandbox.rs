//! The chaincode sandbox's settings, as `peer.yaml`'s `sandbox` section and the trampoline's
//! flags spell them: the user chaincode runs as, the ids set aside for chaincode, the least
//! Landlock enforcement a chaincode may run with. Plain values and their checks; the runtime
//! (`medledger_runtime::sandbox`, which re-exports them) applies them, and maps what the
//! kernel enforces of Landlock onto [`LandlockLevel`].

use std::path::PathBuf;

/// Default tasks (processes and threads) of a chaincode's user, `RLIMIT_NPROC`: peer.yaml
/// `sandbox.max_tasks` and the runtime's `Limits::max_tasks`.
pub const DEFAULT_MAX_TASKS: u64 = 2048;

/// The unprivileged user and group a chaincode runs as when the trampoline starts as root.
/// Neither may be 0. Either one for all chaincodes (peer.yaml `sandbox.uid`/`gid`), or one
/// per chaincode from a [`UidRange`]; Landlock, not file ownership, keeps chaincodes out of
/// each other's directories, the user keeps their task counts (`RLIMIT_NPROC`) apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxUser {
    /// User id (default 65534, `nobody`).
    pub uid: u32,
    /// Group id (default 65534, `nogroup`).
    pub gid: u32,
}

impl SandboxUser {
    /// 65534:65534, `nobody`:`nogroup` on most distributions.
    pub const NOBODY: SandboxUser = SandboxUser {
        uid: 65534,
        gid: 65534,
    };
}

impl Default for SandboxUser {
    fn default() -> Self {
        SandboxUser::NOBODY
    }
}

/// Ids set aside for chaincode, one per chaincode (peer.yaml `sandbox.uid_range: [start,
/// count]`): chaincode `i` runs as user and group `start + i`. The kernel counts tasks
/// (`RLIMIT_NPROC`) per user, so each chaincode then has its own budget of
/// `max_tasks` ([`DEFAULT_MAX_TASKS`]). The ids must belong to nothing else on the host: at
/// start the peer kills every process whose real user is in the range (the runtime's
/// `kill_processes_of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidRange {
    /// First id (> 0).
    pub start: u32,
    /// How many ids (> 0; `start + count - 1` must fit in a `u32`); the most chaincodes with
    /// a process at once.
    pub count: u32,
}

/// Why a [`UidRange`] cannot be set aside for chaincode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UidRangeError {
    /// The range starts at 0 or holds no id.
    #[error("the range must start above 0 and hold at least one id")]
    Empty,
    /// The range's last id does not fit in a `u32`.
    #[error("the range goes beyond the largest id")]
    Overflow,
    /// The range holds an id the system uses (65534, 65535, `u32::MAX`).
    #[error("the range {start}..={last} holds id {id}, which the system uses")]
    SystemId {
        /// First id of the range.
        start: u32,
        /// Last id of the range.
        last: u32,
        /// The system's id.
        id: u32,
    },
    /// A user or group of the host (`passwd`, `group`) has an id of the range.
    #[error("id {id} of the range is used in {}", file.display())]
    Used {
        /// The id.
        id: u64,
        /// The file naming it.
        file: PathBuf,
    },
    /// A block of subordinate ids of the host (`subuid`, `subgid`) overlaps the range.
    #[error("the range overlaps the subordinate ids {first}..{last} in {}", file.display())]
    Subordinate {
        /// First subordinate id of the block.
        first: u64,
        /// Last subordinate id of the block.
        last: u64,
        /// The file naming the block.
        file: PathBuf,
    },
}

impl UidRange {
    /// Whether `uid` is in the range.
    pub fn contains(&self, uid: u32) -> bool {
        uid >= self.start && uid - self.start < self.count
    }

    /// The `i`-th id of the range as user and group, if `i < count`.
    pub fn user(&self, i: u32) -> Option<SandboxUser> {
        (i < self.count).then(|| SandboxUser {
            uid: self.start + i,
            gid: self.start + i,
        })
    }

    /// Checks the range: no id 0, none beyond `u32::MAX`, not empty, and none of the ids
    /// `nobody`/`nogroup` (65534), 65535 and `u32::MAX` (the kernel's "no id").
    ///
    /// # Errors
    /// [`UidRangeError::Empty`], [`UidRangeError::Overflow`] or [`UidRangeError::SystemId`].
    pub fn validate(&self) -> Result<(), UidRangeError> {
        if self.start == 0 || self.count == 0 {
            return Err(UidRangeError::Empty);
        }
        let Some(last) = self.start.checked_add(self.count - 1) else {
            return Err(UidRangeError::Overflow);
        };
        if let Some(id) = [65534, 65535, u32::MAX]
            .into_iter()
            .find(|id| self.contains(*id))
        {
            return Err(UidRangeError::SystemId {
                start: self.start,
                last,
                id,
            });
        }
        Ok(())
    }

    /// Checks that no id of the range is used on this host, as the files of `etc` (normally
    /// `/etc`) tell: a user or group (`passwd`, `group`), or a subordinate id of one
    /// (`subuid`, `subgid`: rootless containers). The peer kills every process of the range
    /// at start, and a chaincode sharing an id with anything else could signal it or read its
    /// files: the range must be the chaincodes' alone. Files that do not exist are skipped.
    ///
    /// # Errors
    /// [`UidRangeError::Used`] or [`UidRangeError::Subordinate`], naming the file and the id
    /// or block that overlaps.
    pub fn check_unused(&self, etc: &std::path::Path) -> Result<(), UidRangeError> {
        let last = u64::from(self.start) + u64::from(self.count) - 1;
        let overlaps = |from: u64, to: u64| from <= last && to >= u64::from(self.start);
        for file in ["passwd", "group"] {
            let Ok(text) = std::fs::read_to_string(etc.join(file)) else {
                continue;
            };
            for line in text.lines() {
                // name:password:ID:…
                let Some(id) = line.split(':').nth(2).and_then(|id| id.parse::<u64>().ok()) else {
                    continue;
                };
                if overlaps(id, id) {
                    return Err(UidRangeError::Used {
                        id,
                        file: etc.join(file),
                    });
                }
            }
        }
        for file in ["subuid", "subgid"] {
            let Ok(text) = std::fs::read_to_string(etc.join(file)) else {
                continue;
            };
            for line in text.lines() {
                // owner:first:count
                let mut parts = line.split(':').skip(1).map(|p| p.trim().parse::<u64>());
                let (Some(Ok(first)), Some(Ok(count))) = (parts.next(), parts.next()) else {
                    continue;
                };
                if count > 0 && overlaps(first, first + count - 1) {
                    return Err(UidRangeError::Subordinate {
                        first,
                        last: first + count - 1,
                        file: etc.join(file),
                    });
                }
            }
        }
        Ok(())
    }
}

/// How much of the Landlock ruleset the kernel enforces, ordered `None < Partial < Full`:
/// `none` on Linux < 5.13 (or with Landlock disabled), `partial` where some requested rights
/// are unknown to the kernel (truncate control needs 6.2, TCP rules 6.7, signal and abstract
/// socket scoping 6.12), `full` otherwise. Also the operator's minimum (peer.yaml
/// `sandbox.min_landlock`, the trampoline's `--min-landlock`; default `full`): below it no
/// chaincode runs, because a peer not running as root has no user switch, so its chaincode
/// would read (and, without truncate control, truncate) whatever the peer's user can, its
/// key and ledger included. Spelled `none`, `partial`, `full` in YAML, flags and reports.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LandlockLevel {
    /// Not enforced at all.
    None,
    /// Enforced without some of the requested rights.
    Partial,
    /// Every requested right enforced.
    #[default]
    Full,
}

impl LandlockLevel {
    /// `none`, `partial` or `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            LandlockLevel::None => "none",
            LandlockLevel::Partial => "partial",
            LandlockLevel::Full => "full",
        }
    }
}

impl std::fmt::Display for LandlockLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LandlockLevel {
    type Err = String;

    /// Parses `none`, `partial` or `full`; anything else is an error naming the choices.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(LandlockLevel::None),
            "partial" => Ok(LandlockLevel::Partial),
            "full" => Ok(LandlockLevel::Full),
            other => Err(format!(
                "unknown Landlock level {other:?}: one of none, partial, full"
            )),
        }
    }
}
