//! The user's side of the store: a deterministic state machine fed with commands.

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::codec::Codec;
pub use crate::schema::SchemaName;

/// A deterministic state machine whose commands the store logs before applying.
///
/// A small typed example: a bank of accounts whose `Withdraw` can be refused. The
/// refusal is an output, not a store error: it is logged and replay reaches it again.
///
/// ```
/// use std::collections::BTreeMap;
/// use serde::{Deserialize, Serialize};
/// use walstate::{Options, StateMachine, Store};
///
/// #[derive(Default, Clone, Serialize, Deserialize)]
/// struct Accounts { balances: BTreeMap<String, u64> }
///
/// #[derive(Serialize, Deserialize)]
/// enum Command {
///     Deposit { account: String, amount: u64 },
///     Withdraw { account: String, amount: u64 },
/// }
///
/// #[derive(Debug, PartialEq)]
/// enum Output { Balance(u64), Insufficient { balance: u64 } }
///
/// impl StateMachine for Accounts {
///     type Command = Command;
///     type Output = Output;
///     fn apply(&mut self, command: &Command) -> Output {
///         match command {
///             Command::Deposit { account, amount } => {
///                 let balance = self.balances.entry(account.clone()).or_default();
///                 *balance += amount;
///                 Output::Balance(*balance)
///             }
///             Command::Withdraw { account, amount } => {
///                 let balance = self.balances.entry(account.clone()).or_default();
///                 if *balance < *amount {
///                     return Output::Insufficient { balance: *balance };
///                 }
///                 *balance -= amount;
///                 Output::Balance(*balance)
///             }
///         }
///     }
/// }
///
/// # let tmp = tempfile::tempdir()?;
/// # let dir = tmp.path().join("accounts");
/// let store = Store::<Accounts>::open(&dir, Options::default())?;
/// let deposit = Command::Deposit { account: "alice".into(), amount: 100 };
/// assert_eq!(store.apply(deposit)?, Output::Balance(100));
/// let withdraw = Command::Withdraw { account: "alice".into(), amount: 250 };
/// assert_eq!(store.apply(withdraw)?, Output::Insufficient { balance: 100 });
/// store.close()?;
///
/// // Both commands were logged; replay applies them again and reaches the same state.
/// let store = Store::<Accounts>::open(&dir, Options::default())?;
/// assert_eq!(store.last_lsn(), 2);
/// assert_eq!(store.read(|s| s.balances["alice"])?, 100);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Rules
/// - `apply` must be deterministic: the same state and command always give the same new
///   state and output. Replay after a crash depends on it. No clocks, no randomness, no I/O.
/// - A command the state rejects (a failed compare-and-set, a validation error) is an
///   `Output` such as `Result<_, MyError>`, not a store failure: it is logged, and replay
///   reaches the same rejection.
/// - The state and commands round-trip through the codec (bincode 2, serde mode), which
///   cannot decode types that need `deserialize_any`: `serde_json::Value`, untagged enums,
///   `#[serde(flatten)]`. The store checks this before logging and refuses such values.
///
/// # Cheap snapshots
/// Checkpoints clone the state under a short read lock and encode the clone in the
/// background, so `clone` should be cheap: keep large parts behind `Arc`, or use
/// persistent collections such as `imbl::OrdMap` (or a persistent B+tree, what
/// [`crate::KvState`] uses), whose clone is O(1) and shares structure with the original. How a snapshot is written is
/// [`encode_owned`](Self::encode_owned).
pub trait StateMachine:
    Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// A mutation, logged before it is applied.
    type Command: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What applying a command returns to the caller.
    type Output: Send + 'static;

    /// Whether every command decodes back equal to itself from its encoding. When
    /// `false` (the default) the store decodes each command it logs and applies the
    /// decoded copy, so the state applies exactly what replay will read, even for a
    /// `Serialize` that drops information. Set it only for a command type whose
    /// round trip is checked (as [`crate::KvState`] does with a property test): the store
    /// then applies the caller's command and skips that decode.
    const COMMANDS_ROUND_TRIP: bool = false;

    /// The name and version under which the application declares its state and command
    /// types (see [`SchemaName`]). `None` (the default): the store identifies them by
    /// their traced serde shape alone. Declare one to give the schema a readable name in
    /// errors and tools, to order releases (an evolvable store refuses to be opened by
    /// an older version), and for types whose `Deserialize` cannot be traced.
    const SCHEMA: Option<SchemaName> = None;

    /// How states and commands are encoded: [`Codec::Compact`] (bincode, the fast
    /// default) or [`Codec::Evolvable`] (field and variant names on disk, so adding a
    /// `#[serde(default)]` field or a variant needs no migration). Recorded in the
    /// store's schema: a store is opened with the codec that created it or migrated.
    const CODEC: Codec = Codec::Compact;

    /// Applies one command. Must be deterministic.
    fn apply(&mut self, command: &Self::Command) -> Self::Output;

    /// Applies one command that the caller owns and no longer needs, so that a state can
    /// move parts of it (keys, values, buffers) into itself instead of copying them.
    /// Replay uses it for every logged command.
    ///
    /// Must give exactly the same new state and output as [`apply`](Self::apply) on the
    /// same command: which of the two runs is not part of the log, so a difference would
    /// make replay diverge from what callers saw. The default calls `apply`.
    fn apply_owned(&mut self, command: Self::Command) -> Self::Output {
        self.apply(&command)
    }

    /// Applies a logged command from its encoded bytes, the output unused: what replay
    /// and catching up with other writers do with every command record. The default
    /// decodes it with [`Self::CODEC`] and calls [`apply_owned`](Self::apply_owned).
    ///
    /// An override may read parts of `payload` in place instead of building the command
    /// (`KvState` does, for puts), but must change the state exactly as the default does
    /// and fail exactly where the default would (a payload that does not decode).
    fn apply_encoded(&mut self, payload: &[u8]) -> crate::Result<()> {
        let command = Self::CODEC.decode::<Self::Command>(payload)?;
        self.apply_owned(command);
        Ok(())
    }

    /// Encodes this state, which the caller no longer needs, into `out`; must write
    /// exactly the bytes of [`Codec::encode_into`] with [`Self::CODEC`], which is what
    /// the default does before dropping the state.
    ///
    /// Checkpoints and snapshots call it on the snapshot they took (a clone) as soon as it
    /// is theirs, so the snapshot is gone once its bytes are written, before the file is
    /// read back and synced. A state whose clone shares structure with the live state can
    /// do better by ending the sharing before it writes, as [`crate::KvState`] does: while
    /// a snapshot shares a persistent collection's nodes, every write to the live state
    /// copies the node it changes, and a checkpoint paced over seconds sees writes to
    /// most nodes. Whatever an override writes is still read back and checked with
    /// [`check_encoded`](Self::check_encoded).
    fn encode_owned<W: std::io::Write>(self, out: &mut W) -> crate::Result<()> {
        Self::CODEC.encode_into(&self, out).map(drop)
    }

    /// Checks that `encoded` — a state's bytes as a checkpoint stores them, `len` bytes,
    /// streamed back from the file just written — decodes as a state. The store calls
    /// it for every checkpoint and snapshot, so an undecodable state is never written as
    /// one. The default decodes a full copy, which needs memory for a second state; a
    /// state that can check its encoding piece by piece should override it, as
    /// [`crate::KvState`] does, to keep checkpoint memory flat.
    fn check_encoded(encoded: &mut dyn std::io::Read, len: u64) -> crate::Result<()> {
        Self::CODEC
            .decode_from_reader::<Self>(encoded, len)
            .map(drop)
    }
}
