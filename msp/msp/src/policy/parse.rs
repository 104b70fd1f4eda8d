//! Recursive-descent parser for Fabric's policy language.
//!
//! Grammar (whitespace allowed between all tokens; keywords case-insensitive):
//!
//! ```text
//! policy     = signature | meta
//! meta       = ("ANY" | "ALL" | "MAJORITY") WS+ name         name = [A-Za-z0-9_.-]+
//! signature  = principal | gate
//! gate       = ("AND" | "OR") "(" signature ("," signature)* ")"
//!            | "OUTOF" "(" threshold ("," signature)+ ")"
//! threshold  = digits | quote digits quote
//! principal  = quote msp_id "." role quote                    quote = ' or "
//! ```
//!
//! The parser works on bytes but only ever stops at ASCII delimiters, so every offset it reports
//! or slices at is a char boundary. Nesting depth is bounded by [`MAX_DEPTH`].

use super::error::snippet;
use super::{MAX_DEPTH, MetaRule, MspRole, Policy, PolicyError, Principal, SignaturePolicy};

/// Parses a [`Policy`]: a signature policy or an implicit-meta policy.
pub(super) fn parse_policy(input: &str) -> Result<Policy, PolicyError> {
    Parser::new(input).policy(true)
}

/// Parses a [`SignaturePolicy`]; implicit-meta input is an error.
pub(super) fn parse_signature_policy(input: &str) -> Result<SignaturePolicy, PolicyError> {
    match Parser::new(input).policy(false)? {
        Policy::Signature(policy) => Ok(policy),
        // `policy(false)` never returns this; kept total rather than unreachable!().
        Policy::ImplicitMeta { .. } => Err(PolicyError::ImplicitMetaNotAllowed { pos: 0 }),
    }
}

/// Parses an unquoted `MSPID.role` whose first byte is at `offset` in the whole input.
pub(super) fn parse_principal(text: &str, offset: usize) -> Result<Principal, PolicyError> {
    let Some(dot) = text.rfind('.') else {
        return Err(PolicyError::MalformedPrincipal {
            pos: offset,
            principal: snippet(text),
        });
    };
    let (msp_id, role) = (&text[..dot], &text[dot + 1..]);
    if msp_id.is_empty() {
        return Err(PolicyError::EmptyMspId { pos: offset });
    }
    let role = parse_role(role, offset + dot + 1)?;
    if let Some((i, _)) = msp_id.char_indices().find(|&(_, c)| !is_msp_id_char(c)) {
        return Err(PolicyError::InvalidMspId {
            pos: offset + i,
            msp_id: snippet(msp_id),
        });
    }
    Ok(Principal::new(msp_id, role))
}

/// Parses a lowercase role name that starts at `offset` in the whole input.
pub(super) fn parse_role(text: &str, offset: usize) -> Result<MspRole, PolicyError> {
    MspRole::ALL
        .into_iter()
        .find(|role| role.as_str() == text)
        .ok_or_else(|| PolicyError::UnknownRole {
            pos: offset,
            role: snippet(text),
        })
}

/// The implicit-meta rule `word` names, in any letter case.
pub(super) fn meta_rule(word: &str) -> Option<MetaRule> {
    [MetaRule::Any, MetaRule::All, MetaRule::Majority]
        .into_iter()
        .find(|rule| rule.as_str().eq_ignore_ascii_case(word))
}

/// Characters Fabric's principal regex allows in an MSP id (`[[:alnum:].-]`).
fn is_msp_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '-'
}

/// Characters allowed in an implicit-meta sub-policy name.
fn is_sub_policy_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// The three gate keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    And,
    Or,
    OutOf,
}

impl Gate {
    fn from_word(word: &str) -> Option<Gate> {
        [Gate::And, Gate::Or, Gate::OutOf]
            .into_iter()
            .find(|gate| gate.name().eq_ignore_ascii_case(word))
    }

    fn name(self) -> &'static str {
        match self {
            Gate::And => "AND",
            Gate::Or => "OR",
            Gate::OutOf => "OutOf",
        }
    }
}

/// Cursor over the input.
struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Self { input, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.input.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// A description of the token at the cursor, for error messages.
    fn found(&self) -> String {
        match self
            .input
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
        {
            None => "end of input".to_owned(),
            Some(c) => format!("{c:?}"),
        }
    }

    fn unexpected(&self, expected: &'static str) -> PolicyError {
        PolicyError::Unexpected {
            pos: self.pos,
            found: self.found(),
            expected,
        }
    }

    /// Consumes `[A-Za-z0-9_]*` and returns it.
    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            self.pos += 1;
        }
        &self.input[start..self.pos]
    }

    /// Consumes a quoted string at the cursor; returns its content and the content's offset.
    fn quoted(&mut self) -> Result<(&'a str, usize), PolicyError> {
        let open = self.pos;
        let Some(quote) = self.peek() else {
            return Err(self.unexpected("a quote"));
        };
        let start = open + 1;
        let rest = self.input.as_bytes().get(start..).unwrap_or_default();
        let Some(len) = rest.iter().position(|&b| b == quote) else {
            return Err(PolicyError::UnterminatedQuote { pos: open });
        };
        self.pos = start + len + 1;
        Ok((&self.input[start..start + len], start))
    }

    /// The whole input: one policy, then only whitespace.
    fn policy(mut self, allow_meta: bool) -> Result<Policy, PolicyError> {
        self.skip_ws();
        if self.peek().is_none() {
            return Err(PolicyError::Empty);
        }
        let start = self.pos;
        if self.peek() == Some(b')') {
            return Err(PolicyError::UnexpectedCloseParen { pos: start });
        }
        let policy = if self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            let word = self.word();
            match meta_rule(word) {
                Some(_) if !allow_meta => {
                    return Err(PolicyError::ImplicitMetaNotAllowed { pos: start });
                }
                Some(rule) => self.meta(rule)?,
                None => Policy::Signature(self.keyword_rest(word, start, 1)?),
            }
        } else {
            Policy::Signature(self.signature(1)?)
        };
        self.skip_ws();
        match self.peek() {
            None => Ok(policy),
            Some(b')') => Err(PolicyError::UnexpectedCloseParen { pos: self.pos }),
            Some(_) => Err(PolicyError::TrailingInput {
                pos: self.pos,
                found: snippet(&self.input[self.pos..]),
            }),
        }
    }

    /// After `ANY`/`ALL`/`MAJORITY`: whitespace, then the sub-policy name.
    fn meta(&mut self, rule: MetaRule) -> Result<Policy, PolicyError> {
        match self.peek() {
            None => return Err(PolicyError::MissingSubPolicy { pos: self.pos }),
            Some(b) if b.is_ascii_whitespace() => self.skip_ws(),
            Some(_) => return Err(self.unexpected("whitespace, then a sub-policy name")),
        }
        let start = self.pos;
        while self.peek().is_some_and(is_sub_policy_byte) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(match self.peek() {
                None => PolicyError::MissingSubPolicy { pos: start },
                Some(_) => self.unexpected("a sub-policy name such as Readers"),
            });
        }
        Ok(Policy::ImplicitMeta {
            rule,
            sub_policy: self.input[start..self.pos].to_owned(),
        })
    }

    /// A signature policy at `depth` (1 for the top level): a quoted principal or a gate.
    fn signature(&mut self, depth: usize) -> Result<SignaturePolicy, PolicyError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            Some(b'\'' | b'"') => {
                let (text, offset) = self.quoted()?;
                Ok(SignaturePolicy::SignedBy(parse_principal(text, offset)?))
            }
            Some(b) if b.is_ascii_alphabetic() => {
                let word = self.word();
                if meta_rule(word).is_some() {
                    return Err(PolicyError::ImplicitMetaNotAllowed { pos: start });
                }
                self.keyword_rest(word, start, depth)
            }
            _ => Err(self.unexpected("a quoted principal such as 'Org1MSP.peer' or a gate")),
        }
    }

    /// After a keyword `word` read at `start`: the gate it names, or an error.
    fn keyword_rest(
        &mut self,
        word: &str,
        start: usize,
        depth: usize,
    ) -> Result<SignaturePolicy, PolicyError> {
        match Gate::from_word(word) {
            Some(gate) => self.gate(gate, start, depth),
            None => Err(PolicyError::UnknownKeyword {
                pos: start,
                word: snippet(word),
            }),
        }
    }

    /// After a gate keyword read at `start`: `( … )`.
    fn gate(
        &mut self,
        gate: Gate,
        start: usize,
        depth: usize,
    ) -> Result<SignaturePolicy, PolicyError> {
        if depth > MAX_DEPTH {
            return Err(PolicyError::TooDeep {
                pos: start,
                max: MAX_DEPTH,
            });
        }
        self.skip_ws();
        if self.peek() != Some(b'(') {
            return Err(self.unexpected("'(' after a gate keyword"));
        }
        let open = self.pos;
        self.pos += 1;
        self.skip_ws();
        match self.peek() {
            None => return Err(PolicyError::UnclosedParen { open }),
            Some(b')') => {
                return Err(PolicyError::EmptyGate {
                    pos: start,
                    gate: gate.name(),
                });
            }
            Some(_) => {}
        }

        let threshold = if gate == Gate::OutOf {
            let threshold = self.threshold()?;
            self.skip_ws();
            match self.peek() {
                None => return Err(PolicyError::UnclosedParen { open }),
                Some(b',') => self.pos += 1,
                Some(b')') => {
                    return Err(PolicyError::EmptyGate {
                        pos: start,
                        gate: gate.name(),
                    });
                }
                Some(_) => return Err(self.unexpected("',' after the OutOf threshold")),
            }
            Some(threshold)
        } else {
            None
        };

        let mut rules = Vec::new();
        loop {
            self.skip_ws();
            if self.peek().is_none() {
                return Err(PolicyError::UnclosedParen { open });
            }
            rules.push(self.signature(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                None => return Err(PolicyError::UnclosedParen { open }),
                Some(b',') => self.pos += 1,
                Some(b')') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => return Err(self.unexpected("',' or ')'")),
            }
        }

        let n = match threshold {
            Some((pos, n)) if n == 0 || n > rules.len() => {
                return Err(PolicyError::BadThreshold {
                    pos,
                    n,
                    rules: rules.len(),
                });
            }
            Some((_, n)) => n,
            None if gate == Gate::Or => 1,
            None => rules.len(),
        };
        Ok(SignaturePolicy::OutOf { n, rules })
    }

    /// An `OutOf` threshold: digits, optionally quoted (Fabric accepts `OutOf('1', …)`).
    /// Returns its offset and value.
    fn threshold(&mut self) -> Result<(usize, usize), PolicyError> {
        let pos = self.pos;
        let text = match self.peek() {
            Some(b'\'' | b'"') => self.quoted()?.0,
            _ => {
                while self
                    .peek()
                    .is_some_and(|b| !b.is_ascii_whitespace() && !matches!(b, b',' | b'(' | b')'))
                {
                    self.pos += 1;
                }
                &self.input[pos..self.pos]
            }
        };
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PolicyError::InvalidThreshold {
                pos,
                text: snippet(text),
            });
        }
        text.parse::<usize>()
            .map(|n| (pos, n))
            .map_err(|_| PolicyError::InvalidThreshold {
                pos,
                text: snippet(text),
            })
    }
}
