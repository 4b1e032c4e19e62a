//! The `.blt` ballot format: a lenient reader ([`Election::parse_blt`]) and
//! the canonical writer ([`Election::to_blt`]), so that anyone can recount
//! an election with droop, OpenSTV or stv-rs.
//!
//! # What the reader accepts
//!
//! ```text
//! 9 4                      <candidates> <seats>
//! -3                       withdrawn candidates, any number per line
//! [nick ann bob ...]       options (droop, stv-rs): nicknames,
//! [withdrawn bob]          withdrawn candidates by nickname or number,
//! [tie 3 1 2 ...]          the order a lot by tie order draws in
//! 149 1 0                  <weight> <preferences...> 0
//! 11 ann bob 0             nicknames wherever a number may stand
//! 0                        ends the ballots (may be left out before the names)
//! "Nina Baker"             one quoted name per candidate, numbered from 1
//! "ANDERSTON-CITY"         the title (may be left out)
//! ```
//!
//! Blank lines, a byte-order mark, CRLF line ends and droop's `/* ... */`
//! comments are skipped; several quoted names may share a line. Withdrawn
//! lines and options come before the first ballot. A ballot may rank no one
//! (a blank paper, counted as invalid).
//!
//! Refused, with the line and what to do: equal rankings (`1=2`, which
//! Scottish STV cannot count), a weight of 0 or beyond `u64`, weights whose
//! sum leaves `u64`, numbers that are not candidates, unknown options, more
//! than [`MAX_CANDIDATES`] candidates, names that do not close their quote
//! on their line, and anything after the title.
//!
//! **Duplicate preferences** (`5 1 2 1 0`): the later mention is dropped.
//! This changes no count: a paper passes a candidate only once that
//! candidate is elected, excluded or withdrawn, and then every later
//! mention of them is skipped anyway. The droop profile readers we could
//! read (`droop/profile.py`) refuse such lines instead; none of the 21
//! Glasgow files has one, so both readings agree on them.
//!
//! # The canonical form the writer produces
//!
//! The header; one `-N` line per withdrawn candidate (the form every
//! counter reads); `[tie ...]` by numbers only if the election has a tie
//! order; the ballots as stored, by number, one per line, each ending in
//! ` 0`; the line `0`; every name and then the title between `"`, one per
//! line. Reading it back gives the same [`Election`].

use std::collections::HashMap;
use std::fmt;

use thiserror::Error;

use crate::election::{
    Ballot, Candidate, CandidateId, Election, ElectionError, MAX_CANDIDATES, check_text,
};

/// What is wrong with a `.blt` file, and on which line (one-based).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("line {line}: {kind}")]
pub struct BltError {
    pub line: usize,
    pub kind: BltErrorKind,
}

/// The kinds of [`BltError`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BltErrorKind {
    #[error("the file is empty: a .blt file starts with `<candidates> <seats>`")]
    Empty,
    #[error("expected `<candidates> <seats>`, found `{0}`")]
    Header(String),
    #[error(transparent)]
    Invalid(#[from] ElectionError),
    #[error(
        "`{0}` is not a withdrawn candidate: write `-N` with N from 1 to the number of candidates"
    )]
    Withdrawn(String),
    #[error("an option line must end with `]`")]
    UnclosedOption,
    #[error(
        "unknown option `[{0}]`: the options read here are [nick ...], [withdrawn ...] and [tie ...]"
    )]
    UnknownOption(String),
    #[error("a second `[{0}]` line: give it once")]
    RepeatedOption(&'static str),
    #[error("[nick] gives {found} nicknames for {expected} candidates: give one per candidate")]
    NickCount { expected: usize, found: usize },
    #[error(
        "`{0}` cannot be a nickname: use letters, not only digits, and none of `\"`, `=`, `[`, `]` or a leading `-`"
    )]
    BadNick(String),
    #[error("nickname `{0}` is given twice")]
    RepeatedNick(String),
    #[error(
        "`{0}` after the first ballot: withdrawn candidates and options come before the ballots"
    )]
    AfterBallots(String),
    #[error(
        "expected a ballot `<weight> <preferences...> 0` with a whole weight from 1 to {max}, found `{0}`",
        max = u64::MAX
    )]
    Weight(String),
    #[error("a ballot of weight 0: a line `0` alone ends the ballots; other weights start at 1")]
    ZeroWeight,
    #[error("`{token}` is not a candidate: expected a number from 1 to {candidates}{nick}")]
    UnknownCandidate {
        token: String,
        candidates: usize,
        nick: &'static str,
    },
    #[error(
        "`{0}` ranks candidates equally, which Scottish STV cannot count: give each preference its own rank"
    )]
    EqualRanking(String),
    #[error("a ballot must end with ` 0`")]
    Unterminated,
    #[error("`{0}` after the 0 that ends the ballot: put one ballot per line")]
    AfterTerminator(String),
    #[error("expected a name between double quotes, found `{0}`")]
    Unquoted(String),
    #[error("a quoted name must close its `\"` on the same line")]
    UnclosedQuote,
    #[error("expected {expected} candidate names, found {found}")]
    MissingNames { expected: usize, found: usize },
    #[error("unexpected `\"{0}\"` after the title: the file ends with the title")]
    AfterTitle(String),
    #[error("a `/*` comment is never closed with `*/`")]
    UnclosedComment,
}

impl Election {
    /// Reads a `.blt` file; see the [module documentation](crate::blt) for
    /// what is accepted. Never panics; takes time and memory linear in
    /// `text`, which the caller bounds.
    pub fn parse_blt(text: &str) -> Result<Election, BltError> {
        parse(text)
    }

    /// Writes the canonical `.blt` form, which [`Election::parse_blt`]
    /// reads back to an equal election.
    pub fn to_blt(&self) -> String {
        Blt(self).to_string()
    }
}

/// A line with its comments removed and its ends trimmed, never empty.
struct Line {
    number: usize,
    text: String,
}

impl Line {
    fn error(&self, kind: impl Into<BltErrorKind>) -> BltError {
        BltError {
            line: self.number,
            kind: kind.into(),
        }
    }
}

fn parse(text: &str) -> Result<Election, BltError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = clean_lines(text)?;
    let mut lines = lines.iter().peekable();
    let Some(header) = lines.next() else {
        return Err(BltError {
            line: 1,
            kind: BltErrorKind::Empty,
        });
    };
    let (count, seats) = parse_header(header)?;
    let mut options = Options {
        count,
        nicks: None,
        withdrawn: vec![false; count],
        tie: None,
        ranked: vec![false; count],
    };
    while let Some(line) = lines.next_if(|l| l.text.starts_with(['[', '-'])) {
        if line.text.starts_with('[') {
            options.option(line)?;
        } else {
            options.withdrawn_line(line)?;
        }
    }

    let mut ballots = Vec::new();
    let mut total: u64 = 0;
    let mut last = header;
    while let Some(line) = lines.next_if(|l| !l.text.starts_with('"')) {
        last = line;
        if line.text == "0" {
            break;
        }
        let ballot = options.ballot(line)?;
        total = total
            .checked_add(ballot.weight())
            .ok_or_else(|| line.error(ElectionError::TooManyPapers))?;
        ballots.push(ballot);
    }

    let mut quoted: Vec<(&Line, &str)> = Vec::new();
    for line in lines {
        last = line;
        for text in quoted_strings(line)? {
            check_text("the name", text).map_err(|e| line.error(e))?;
            quoted.push((line, text));
        }
    }
    if quoted.len() < count {
        return Err(last.error(BltErrorKind::MissingNames {
            expected: count,
            found: quoted.len(),
        }));
    }
    if let Some((line, extra)) = quoted.get(count + 1) {
        return Err(line.error(BltErrorKind::AfterTitle((*extra).to_owned())));
    }
    let title = quoted.get(count).map_or("", |(_, text)| *text);
    let candidates = quoted
        .iter()
        .take(count)
        .zip(&options.withdrawn)
        .map(|((_, name), &withdrawn)| {
            if withdrawn {
                Candidate::withdrawn(*name)
            } else {
                Candidate::new(*name)
            }
        })
        .collect();
    let election = Election::new(title, seats, candidates, ballots).map_err(|e| last.error(e))?;
    match options.tie {
        Some((line, order)) => election
            .with_tie_order(order)
            .map_err(|e| line_error(line, e)),
        None => Ok(election),
    }
}

fn line_error(line: usize, error: ElectionError) -> BltError {
    BltError {
        line,
        kind: error.into(),
    }
}

/// Splits into lines, drops `/* ... */` comments (outside quotes, possibly
/// across lines), trims, and keeps the non-empty ones with their numbers.
fn clean_lines(text: &str) -> Result<Vec<Line>, BltError> {
    let mut lines = Vec::new();
    let mut comment_from: Option<usize> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let mut kept = String::with_capacity(raw.len());
        let mut quoted = false;
        let mut rest = raw;
        while !rest.is_empty() {
            if comment_from.is_some() {
                match rest.find("*/") {
                    Some(end) => {
                        comment_from = None;
                        kept.push(' ');
                        rest = rest.get(end + 2..).unwrap_or_default();
                    }
                    None => rest = "",
                }
            } else if !quoted && rest.starts_with("/*") {
                comment_from = Some(number);
                rest = rest.get(2..).unwrap_or_default();
            } else {
                let mut chars = rest.chars();
                if let Some(c) = chars.next() {
                    quoted ^= c == '"';
                    kept.push(c);
                }
                rest = chars.as_str();
            }
        }
        let text = kept.trim();
        if !text.is_empty() {
            lines.push(Line {
                number,
                text: text.to_owned(),
            });
        }
    }
    match comment_from {
        Some(line) => Err(BltError {
            line,
            kind: BltErrorKind::UnclosedComment,
        }),
        None => Ok(lines),
    }
}

/// A run of ASCII digits, as a number; `None` for anything else (a sign,
/// an empty token) or a value beyond `u64`.
fn digits(token: &str) -> Option<u64> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

fn parse_header(line: &Line) -> Result<(usize, usize), BltError> {
    let header = || line.error(BltErrorKind::Header(line.text.clone()));
    let mut tokens = line.text.split_whitespace();
    let (Some(count), Some(seats), None) = (tokens.next(), tokens.next(), tokens.next()) else {
        return Err(header());
    };
    let (Some(count), Some(seats)) = (digits(count), digits(seats)) else {
        return Err(header());
    };
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let seats = usize::try_from(seats).unwrap_or(usize::MAX);
    if count == 0 {
        return Err(line.error(ElectionError::NoCandidates));
    }
    if count > MAX_CANDIDATES {
        return Err(line.error(ElectionError::TooManyCandidates { count }));
    }
    if seats == 0 || seats > count {
        return Err(line.error(ElectionError::Seats {
            seats,
            candidates: count,
        }));
    }
    Ok((count, seats))
}

/// What the lines before the ballots said.
struct Options {
    count: usize,
    nicks: Option<HashMap<String, CandidateId>>,
    withdrawn: Vec<bool>,
    /// The `[tie]` line's number and order.
    tie: Option<(usize, Vec<CandidateId>)>,
    /// Scratch for [`Options::ballot`]: all false between ballots.
    ranked: Vec<bool>,
}

impl Options {
    fn option(&mut self, line: &Line) -> Result<(), BltError> {
        let inner = line
            .text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .ok_or_else(|| line.error(BltErrorKind::UnclosedOption))?;
        let mut words = inner.split_whitespace();
        let name = words.next().unwrap_or_default();
        match name {
            "nick" => {
                if self.nicks.is_some() {
                    return Err(line.error(BltErrorKind::RepeatedOption("nick")));
                }
                let nicks: Vec<String> = words.map(str::to_owned).collect();
                if nicks.len() != self.count {
                    return Err(line.error(BltErrorKind::NickCount {
                        expected: self.count,
                        found: nicks.len(),
                    }));
                }
                let mut by_nick = HashMap::with_capacity(nicks.len());
                for (index, nick) in nicks.into_iter().enumerate() {
                    let bad = nick.bytes().all(|b| b.is_ascii_digit())
                        || nick.starts_with('-')
                        || nick.contains(['"', '=', '[', ']']);
                    if bad {
                        return Err(line.error(BltErrorKind::BadNick(nick)));
                    }
                    let Some(id) = CandidateId::from_index(index) else {
                        return Err(line.error(BltErrorKind::BadNick(nick)));
                    };
                    if by_nick.contains_key(&nick) {
                        return Err(line.error(BltErrorKind::RepeatedNick(nick)));
                    }
                    by_nick.insert(nick, id);
                }
                self.nicks = Some(by_nick);
            }
            "withdrawn" => {
                for word in words {
                    let id = self.candidate(line, word)?;
                    if let Some(flag) = self.withdrawn.get_mut(id.index()) {
                        *flag = true;
                    }
                }
            }
            "tie" => {
                if self.tie.is_some() {
                    return Err(line.error(BltErrorKind::RepeatedOption("tie")));
                }
                let order = words
                    .map(|word| self.candidate(line, word))
                    .collect::<Result<Vec<_>, _>>()?;
                self.tie = Some((line.number, order));
            }
            other => return Err(line.error(BltErrorKind::UnknownOption(other.to_owned()))),
        }
        Ok(())
    }

    fn withdrawn_line(&mut self, line: &Line) -> Result<(), BltError> {
        for token in line.text.split_whitespace() {
            let index = token
                .strip_prefix('-')
                .and_then(digits)
                .and_then(|n| usize::try_from(n).ok())
                .and_then(|n| n.checked_sub(1))
                .filter(|&index| index < self.count);
            match index.and_then(|index| self.withdrawn.get_mut(index)) {
                Some(flag) => *flag = true,
                None => return Err(line.error(BltErrorKind::Withdrawn(token.to_owned()))),
            }
        }
        Ok(())
    }

    /// A candidate by nickname or by number.
    fn candidate(&self, line: &Line, token: &str) -> Result<CandidateId, BltError> {
        let by_nick = self
            .nicks
            .as_ref()
            .and_then(|nicks| nicks.get(token).copied());
        let by_number = || {
            digits(token)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n <= self.count)
                .and_then(CandidateId::from_number)
        };
        by_nick.or_else(by_number).ok_or_else(|| {
            line.error(BltErrorKind::UnknownCandidate {
                token: token.to_owned(),
                candidates: self.count,
                nick: if self.nicks.is_some() {
                    " or a nickname"
                } else {
                    ""
                },
            })
        })
    }

    fn ballot(&mut self, line: &Line) -> Result<Ballot, BltError> {
        if line.text.starts_with(['[', '-']) {
            let token = line.text.split_whitespace().next().unwrap_or_default();
            return Err(line.error(BltErrorKind::AfterBallots(token.to_owned())));
        }
        let mut tokens = line.text.split_whitespace();
        let first = tokens.next().unwrap_or_default();
        let weight =
            digits(first).ok_or_else(|| line.error(BltErrorKind::Weight(first.to_owned())))?;
        if weight == 0 {
            return Err(line.error(BltErrorKind::ZeroWeight));
        }
        let mut preferences: Vec<CandidateId> = Vec::new();
        // Which candidates this ballot ranked so far; cleared below, so that
        // a file of many lines costs no more than its tokens.
        let mut ranked = std::mem::take(&mut self.ranked);
        ranked.resize(self.count, false);
        loop {
            let Some(token) = tokens.next() else {
                return Err(line.error(BltErrorKind::Unterminated));
            };
            if token == "0" {
                break;
            }
            if token.contains('=') {
                return Err(line.error(BltErrorKind::EqualRanking(token.to_owned())));
            }
            let id = self.candidate(line, token)?;
            // A later mention of a candidate already ranked is dropped
            // (see the module documentation).
            if let Some(seen) = ranked.get_mut(id.index())
                && !*seen
            {
                *seen = true;
                preferences.push(id);
            }
        }
        if let Some(extra) = tokens.next() {
            return Err(line.error(BltErrorKind::AfterTerminator(extra.to_owned())));
        }
        for id in &preferences {
            if let Some(seen) = ranked.get_mut(id.index()) {
                *seen = false;
            }
        }
        self.ranked = ranked;
        Ok(Ballot::new(weight, preferences))
    }
}

/// The quoted strings of a line, which must hold nothing else.
fn quoted_strings(line: &Line) -> Result<Vec<&str>, BltError> {
    let mut found = Vec::new();
    let mut rest = line.text.trim_start();
    while !rest.is_empty() {
        let Some(open) = rest.strip_prefix('"') else {
            let token = rest.split_whitespace().next().unwrap_or_default();
            return Err(line.error(BltErrorKind::Unquoted(token.to_owned())));
        };
        let Some(close) = open.find('"') else {
            return Err(line.error(BltErrorKind::UnclosedQuote));
        };
        found.push(open.get(..close).unwrap_or_default());
        rest = open.get(close + 1..).unwrap_or_default().trim_start();
    }
    Ok(found)
}

/// The canonical form (see the module documentation).
struct Blt<'a>(&'a Election);

impl fmt::Display for Blt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let election = self.0;
        writeln!(f, "{} {}", election.candidates().len(), election.seats())?;
        for id in election.candidate_ids() {
            if election.candidate(id).is_some_and(Candidate::is_withdrawn) {
                writeln!(f, "-{id}")?;
            }
        }
        if let Some(order) = election.tie_order() {
            write!(f, "[tie")?;
            for id in order {
                write!(f, " {id}")?;
            }
            writeln!(f, "]")?;
        }
        for ballot in election.ballots() {
            write!(f, "{}", ballot.weight())?;
            for id in ballot.preferences() {
                write!(f, " {id}")?;
            }
            writeln!(f, " 0")?;
        }
        writeln!(f, "0")?;
        for candidate in election.candidates() {
            writeln!(f, "\"{}\"", candidate.name())?;
        }
        writeln!(f, "\"{}\"", election.title())
    }
}
