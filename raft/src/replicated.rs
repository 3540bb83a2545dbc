//! The application's state machine as openraft applies it: the state `S` plus the id of
//! the last applied entry and the last applied membership, as one walstate state machine
//! whose commands are applied log entries. Pure: no I/O.

use serde::{Deserialize, Serialize};
use walstate::{Codec, SchemaName, StateMachine};

use crate::log_state::Encoded;

/// `S` with what openraft needs to know about it: the last applied log id and the last
/// applied membership (both encoded). This whole value is what a snapshot holds.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replicated<S> {
    /// The last applied log id, encoded (`None` before the first entry).
    pub last_applied: Option<Encoded>,
    /// The last applied membership (openraft's `StoredMembership`), encoded.
    pub last_membership: Option<Encoded>,
    /// The application's state.
    pub state: S,
}

/// One applied log entry: its id and what it carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedEntry<Cmd> {
    /// The entry's log id, encoded.
    pub log_id: Encoded,
    /// What the entry carries.
    pub payload: Payload<Cmd>,
}

/// The payload of an applied entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Payload<Cmd> {
    /// An entry with no command (a new leader's first entry).
    Blank,
    /// A membership change: the resulting `StoredMembership`, encoded.
    Membership(Encoded),
    /// An application command.
    Command(Cmd),
}

impl<S: StateMachine> StateMachine for Replicated<S> {
    type Command = AppliedEntry<S::Command>;
    /// The command's output, `None` for blank and membership entries.
    type Output = Option<S::Output>;

    const SCHEMA: Option<SchemaName> = S::SCHEMA;
    const CODEC: Codec = S::CODEC;

    fn apply(&mut self, entry: &AppliedEntry<S::Command>) -> Option<S::Output> {
        self.last_applied = Some(entry.log_id.clone());
        match &entry.payload {
            Payload::Blank => None,
            Payload::Membership(membership) => {
                self.last_membership = Some(membership.clone());
                None
            }
            Payload::Command(command) => Some(self.state.apply(command)),
        }
    }

    fn apply_owned(&mut self, entry: AppliedEntry<S::Command>) -> Option<S::Output> {
        self.last_applied = Some(entry.log_id);
        match entry.payload {
            Payload::Blank => None,
            Payload::Membership(membership) => {
                self.last_membership = Some(membership);
                None
            }
            Payload::Command(command) => Some(self.state.apply_owned(command)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    struct Sum(u64);

    impl StateMachine for Sum {
        type Command = u64;
        type Output = u64;
        fn apply(&mut self, n: &u64) -> u64 {
            self.0 += n;
            self.0
        }
    }

    fn entry(id: u8, payload: Payload<u64>) -> AppliedEntry<u64> {
        AppliedEntry {
            log_id: Arc::new(vec![id]),
            payload,
        }
    }

    #[test]
    fn every_entry_moves_last_applied_and_only_commands_reach_the_state() {
        let mut sm = Replicated::<Sum>::default();
        assert_eq!(sm.apply(&entry(1, Payload::Command(5))), Some(5));
        assert_eq!(sm.apply_owned(entry(2, Payload::Blank)), None);
        let membership = Arc::new(vec![9]);
        assert_eq!(
            sm.apply(&entry(3, Payload::Membership(membership.clone()))),
            None
        );
        assert_eq!(sm.apply_owned(entry(4, Payload::Command(2))), Some(7));
        assert_eq!(sm.state, Sum(7));
        assert_eq!(sm.last_applied, Some(Arc::new(vec![4])));
        assert_eq!(sm.last_membership, Some(membership));
    }
}
