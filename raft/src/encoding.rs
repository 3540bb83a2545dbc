//! Encoding openraft's values (entries, votes, log ids, memberships) for the stores, with
//! walstate's compact codec.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use walstate::Codec;

use crate::error::Error;
use crate::log_state::Encoded;

/// `value`'s bytes, checked to decode back (a value that would not, such as one using
/// `deserialize_any`, is refused here rather than stored unreadable).
pub(crate) fn encode<T: Serialize + DeserializeOwned>(value: &T) -> Result<Encoded, Error> {
    let (bytes, _) = Codec::Compact.encode_verified(value)?;
    Ok(Arc::new(bytes))
}

/// The value `bytes` encode, `what` naming it in an error.
pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, Error> {
    Codec::Compact
        .decode(bytes)
        .map_err(|source| Error::Decode { what, source })
}
