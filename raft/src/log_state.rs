//! The raft log as a walstate state machine: its state (entries, vote, committed id,
//! last purged id) and the commands that change it (append, truncate, purge, save vote,
//! save committed). Pure: no I/O, no openraft types. Entries, votes and log ids are kept
//! as their codec bytes, so this state does not depend on the application's raft types.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use walstate::{SchemaName, StateMachine};

/// An encoded value (an entry, a vote, a log id), shared between the state and its
/// snapshots without copying.
pub type Encoded = Arc<Vec<u8>>;

/// The last purged log id: its index (what the state needs) and its encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purged {
    /// Index of the last purged entry.
    pub index: u64,
    /// The purged log id, encoded.
    pub log_id: Encoded,
}

/// The state of a raft log: what openraft reads back after a restart.
///
/// In openraft's use the keys of `entries` are consecutive and above `purged.index`;
/// the state itself does what each command says and nothing more, as openraft's
/// storage suite expects (it appends below a purge on purpose).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftLog {
    /// The last saved vote, encoded.
    pub vote: Option<Encoded>,
    /// The last saved committed log id, encoded (`None`: never saved, or saved as none).
    pub committed: Option<Encoded>,
    /// The last purged log id.
    pub purged: Option<Purged>,
    /// The entries present, by index, each encoded.
    pub entries: imbl::OrdMap<u64, Encoded>,
}

/// A change to the raft log, logged before it is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogCommand {
    /// Adds the entry at `index` (one command per entry; an append is one atomic batch).
    Append {
        /// The entry's index.
        index: u64,
        /// The entry, encoded.
        entry: Encoded,
    },
    /// Removes every entry at or after `since`.
    Truncate {
        /// The first index removed.
        since: u64,
    },
    /// Removes every entry at or before `purged.index`, and records it as the last purged
    /// id unless a later one is already recorded.
    Purge(Purged),
    /// Replaces the vote.
    SaveVote(Encoded),
    /// Replaces the committed log id.
    SaveCommitted(Option<Encoded>),
}

impl StateMachine for RaftLog {
    type Command = LogCommand;
    type Output = ();

    const SCHEMA: Option<SchemaName> = Some(SchemaName::new("walstate-raft log", 1));

    fn apply(&mut self, command: &LogCommand) {
        self.apply_owned(command.clone());
    }

    fn apply_owned(&mut self, command: LogCommand) {
        match command {
            LogCommand::Append { index, entry } => {
                self.entries.insert(index, entry);
            }
            LogCommand::Truncate { since } => {
                let (kept, _) = self.entries.split(&since);
                self.entries = kept;
            }
            LogCommand::Purge(purged) => {
                let (_, kept) = self.entries.split(&purged.index);
                self.entries = kept;
                if self.purged.as_ref().is_none_or(|p| p.index < purged.index) {
                    self.purged = Some(purged);
                }
            }
            LogCommand::SaveVote(vote) => self.vote = Some(vote),
            LogCommand::SaveCommitted(committed) => self.committed = committed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(b: &[u8]) -> Encoded {
        Arc::new(b.to_vec())
    }

    fn log_with(indexes: std::ops::RangeInclusive<u64>) -> RaftLog {
        let mut log = RaftLog::default();
        for index in indexes {
            log.apply_owned(LogCommand::Append {
                index,
                entry: bytes(&index.to_le_bytes()),
            });
        }
        log
    }

    fn indexes(log: &RaftLog) -> Vec<u64> {
        log.entries.keys().copied().collect()
    }

    #[test]
    fn truncate_removes_the_suffix_from_since_on() {
        let mut log = log_with(0..=9);
        log.apply(&LogCommand::Truncate { since: 4 });
        assert_eq!(indexes(&log), vec![0, 1, 2, 3]);
        log.apply(&LogCommand::Truncate { since: 0 });
        assert!(log.entries.is_empty());
    }

    #[test]
    fn purge_removes_the_prefix_and_never_moves_back() {
        let mut log = log_with(0..=9);
        let purge = |index| {
            LogCommand::Purge(Purged {
                index,
                log_id: bytes(&[index as u8]),
            })
        };
        log.apply(&purge(3));
        assert_eq!(indexes(&log), (4..=9).collect::<Vec<_>>());
        log.apply(&purge(1));
        assert_eq!(
            log.purged.as_ref().map(|p| p.index),
            Some(3),
            "an older purge is a no-op"
        );
        log.apply(&purge(20));
        assert!(log.entries.is_empty());
        assert_eq!(
            log.purged.as_ref().map(|p| p.index),
            Some(20),
            "a purge past the end"
        );
    }

    #[test]
    fn vote_and_committed_are_replaced() {
        let mut log = RaftLog::default();
        log.apply(&LogCommand::SaveVote(bytes(b"v1")));
        log.apply(&LogCommand::SaveVote(bytes(b"v2")));
        log.apply(&LogCommand::SaveCommitted(Some(bytes(b"c"))));
        assert_eq!(log.vote, Some(bytes(b"v2")));
        assert_eq!(log.committed, Some(bytes(b"c")));
        log.apply(&LogCommand::SaveCommitted(None));
        assert_eq!(log.committed, None);
    }
}
