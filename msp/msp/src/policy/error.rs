//! Errors from parsing policy strings.

/// Longest piece of the input an error message repeats, in characters.
const SNIPPET_CHARS: usize = 40;

/// Why a policy string did not parse.
///
/// Every `pos` is a byte offset into the parsed string (0-based). Messages quote at most
/// 40 characters of the input. Policy strings name MSPs and roles only, never PHI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The string is empty or only whitespace.
    #[error("empty policy string")]
    Empty,
    /// A gate's `(` has no matching `)` before the end of input.
    #[error("unbalanced parentheses: '(' at byte {open} is never closed")]
    UnclosedParen {
        /// Offset of the unmatched `(`.
        open: usize,
    },
    /// A `)` with no `(` to close.
    #[error("unbalanced parentheses: unexpected ')' at byte {pos}")]
    UnexpectedCloseParen {
        /// Offset of the stray `)`.
        pos: usize,
    },
    /// A quoted principal or threshold whose closing quote is missing.
    #[error("unterminated quote starting at byte {pos}")]
    UnterminatedQuote {
        /// Offset of the opening quote.
        pos: usize,
    },
    /// A word that is neither a gate (`AND`, `OR`, `OutOf`) nor an implicit-meta rule
    /// (`ANY`, `ALL`, `MAJORITY`).
    #[error(
        "unknown keyword {word:?} at byte {pos}: expected AND, OR, OutOf, or ANY/ALL/MAJORITY <SubPolicy>"
    )]
    UnknownKeyword {
        /// Offset of the word.
        pos: usize,
        /// The word (truncated).
        word: String,
    },
    /// A token that cannot appear here.
    #[error("unexpected {found} at byte {pos}: expected {expected}")]
    Unexpected {
        /// Offset of the token.
        pos: usize,
        /// What was found (`'#'`, `end of input`, …).
        found: String,
        /// What the grammar allows here.
        expected: &'static str,
    },
    /// Input left over after a complete policy.
    #[error("trailing input at byte {pos}: {found}")]
    TrailingInput {
        /// Offset of the first left-over token.
        pos: usize,
        /// The left-over input (truncated).
        found: String,
    },
    /// A quoted principal without a `.` between MSP id and role.
    #[error("malformed principal {principal:?} at byte {pos}: expected 'MSPID.role'")]
    MalformedPrincipal {
        /// Offset of the principal's text (after the quote).
        pos: usize,
        /// The principal's text (truncated).
        principal: String,
    },
    /// A principal whose role is not `member`, `admin`, `client`, `peer` or `orderer`.
    #[error("unknown role {role:?} at byte {pos}: expected member, admin, client, peer or orderer")]
    UnknownRole {
        /// Offset of the role.
        pos: usize,
        /// The role as written (truncated).
        role: String,
    },
    /// A principal with nothing before the `.role`.
    #[error("empty MSP id in principal at byte {pos}")]
    EmptyMspId {
        /// Offset of the principal's text.
        pos: usize,
    },
    /// An MSP id with a character outside ASCII letters, digits, `.` and `-`.
    #[error(
        "invalid MSP id {msp_id:?}: character at byte {pos} is not an ASCII letter, digit, '.' or '-'"
    )]
    InvalidMspId {
        /// Offset of the first invalid character.
        pos: usize,
        /// The MSP id as written (truncated).
        msp_id: String,
    },
    /// An `OutOf` threshold that is not a decimal integer (`-1`, `two`, `1.5`, overflow).
    #[error("invalid threshold {text:?} at byte {pos}: expected a decimal integer")]
    InvalidThreshold {
        /// Offset of the threshold.
        pos: usize,
        /// The threshold as written (truncated).
        text: String,
    },
    /// An `OutOf(n, …)` with `n == 0` or `n` greater than its number of rules.
    #[error(
        "bad threshold at byte {pos}: OutOf needs 1 <= n <= {rules} (its number of rules), got {n}"
    )]
    BadThreshold {
        /// Offset of the threshold.
        pos: usize,
        /// The threshold.
        n: usize,
        /// How many rules the gate has.
        rules: usize,
    },
    /// A gate without rules: `AND()`, `OR()`, `OutOf(1)`.
    #[error("empty {gate} gate at byte {pos}: at least one rule is required")]
    EmptyGate {
        /// Offset of the gate keyword.
        pos: usize,
        /// `AND`, `OR` or `OutOf`.
        gate: &'static str,
    },
    /// Gates nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH).
    #[error("policy nested deeper than {max} gates at byte {pos}")]
    TooDeep {
        /// Offset of the gate that is one too deep.
        pos: usize,
        /// The limit.
        max: usize,
    },
    /// `ANY`, `ALL` or `MAJORITY` not followed by a sub-policy name.
    #[error("missing sub-policy name at byte {pos}: expected e.g. 'ANY Readers'")]
    MissingSubPolicy {
        /// Offset where the name should start.
        pos: usize,
    },
    /// An implicit-meta policy where only a signature policy can go: inside a gate, or when
    /// parsing a [`SignaturePolicy`](super::SignaturePolicy).
    #[error("implicit-meta policy at byte {pos} where a signature policy is required")]
    ImplicitMetaNotAllowed {
        /// Offset of the `ANY`/`ALL`/`MAJORITY` keyword.
        pos: usize,
    },
    /// A `common.SignaturePolicyEnvelope` that does not convert (see
    /// [`SignaturePolicy::from_envelope`](super::SignaturePolicy::from_envelope)).
    #[error("invalid signature policy envelope: {reason}")]
    InvalidEnvelope {
        /// What is wrong (principal kind, index, threshold, depth).
        reason: &'static str,
    },
}

impl PolicyError {
    /// Byte offset of the problem in the parsed string, if it has one (all but
    /// [`PolicyError::Empty`]).
    pub fn position(&self) -> Option<usize> {
        match self {
            PolicyError::Empty | PolicyError::InvalidEnvelope { .. } => None,
            PolicyError::UnclosedParen { open: pos }
            | PolicyError::UnexpectedCloseParen { pos }
            | PolicyError::UnterminatedQuote { pos }
            | PolicyError::UnknownKeyword { pos, .. }
            | PolicyError::Unexpected { pos, .. }
            | PolicyError::TrailingInput { pos, .. }
            | PolicyError::MalformedPrincipal { pos, .. }
            | PolicyError::UnknownRole { pos, .. }
            | PolicyError::EmptyMspId { pos }
            | PolicyError::InvalidMspId { pos, .. }
            | PolicyError::InvalidThreshold { pos, .. }
            | PolicyError::BadThreshold { pos, .. }
            | PolicyError::EmptyGate { pos, .. }
            | PolicyError::TooDeep { pos, .. }
            | PolicyError::MissingSubPolicy { pos }
            | PolicyError::ImplicitMetaNotAllowed { pos } => Some(*pos),
        }
    }
}

/// `text`, cut to [`SNIPPET_CHARS`] characters (with `…` when cut) for an error message.
pub(super) fn snippet(text: &str) -> String {
    crate::error::cut(text, SNIPPET_CHARS)
}
