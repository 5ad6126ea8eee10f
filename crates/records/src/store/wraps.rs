//! Wrapped data keys: each object's key (a record, a part of a profile, an emergency's reason, a
//! second factor's secret) stored only wrapped (HPKE) for each reader allowed to open it — a
//! person's account, the emergency escrow or the research key. Objects and readers are closed
//! types; their text forms (the database's keys and the sealed data's associated data) are
//! written here once.

use std::fmt;

use alloy::primitives::{Address, B256};
use medledger_vault::{Dek, PublicKey};

use crate::{
    db::Db,
    error::{Error, Result},
    model::address_key,
};

/// What a data key opens. Its text is also the associated data its sealed bytes are bound to,
/// so a sealed object cannot be passed off as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ObjectId {
    /// A record's body (and, with `meta:`, its metadata).
    Record(B256),
    /// A patient's name and date of birth.
    Profile(Address),
    /// A patient's contact details.
    Contact(Address),
    /// An emergency declaration's reason.
    Emergency(B256),
    /// A second factor's secret, and one being set up.
    SecondFactor(Address),
    SecondFactorPending(Address),
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectId::Record(id) => write!(f, "{id}"),
            ObjectId::Profile(a) => write!(f, "profile:{}", address_key(*a)),
            ObjectId::Contact(a) => write!(f, "contact:{}", address_key(*a)),
            ObjectId::Emergency(id) => write!(f, "emergency:{id}"),
            ObjectId::SecondFactor(a) => write!(f, "mfa:{}", address_key(*a)),
            ObjectId::SecondFactorPending(a) => write!(f, "mfa-pending:{}", address_key(*a)),
        }
    }
}

impl ObjectId {
    /// Reads an object id back from the database.
    pub(crate) fn parse(s: &str) -> Result<ObjectId> {
        let bad = || Error::internal("stored object id", format!("{s:?}"));
        let address = |a: &str| a.parse::<Address>().map_err(|_| bad());
        Ok(match s.split_once(':') {
            None => ObjectId::Record(s.parse().map_err(|_| bad())?),
            Some(("profile", a)) => ObjectId::Profile(address(a)?),
            Some(("contact", a)) => ObjectId::Contact(address(a)?),
            Some(("emergency", id)) => ObjectId::Emergency(id.parse().map_err(|_| bad())?),
            Some(("mfa", a)) => ObjectId::SecondFactor(address(a)?),
            Some(("mfa-pending", a)) => ObjectId::SecondFactorPending(address(a)?),
            Some(_) => return Err(bad()),
        })
    }

    /// The associated data the object's sealed bytes are bound to.
    pub(crate) fn aad(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

/// Whom a data key is wrapped for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Reader {
    Account(Address),
    /// The emergency escrow key (outside the data directory).
    Escrow,
    /// The research key (the honest broker's, kept like the escrow key): a patient's bundles
    /// are wrapped for it only while they take part in a study.
    Research,
}

impl Reader {
    fn key(self) -> String {
        match self {
            Reader::Account(a) => address_key(a),
            Reader::Escrow => "escrow".into(),
            Reader::Research => "research".into(),
        }
    }

    fn parse(s: &str) -> Result<Reader> {
        match s {
            "escrow" => Ok(Reader::Escrow),
            "research" => Ok(Reader::Research),
            a => a
                .parse()
                .map(Reader::Account)
                .map_err(|_| Error::internal("stored wrap reader", format!("{a:?}"))),
        }
    }
}

/// The `wraps` table: each object's data key, wrapped for each of its readers. Only the keyring
/// (`keyring.rs`) unwraps what it holds.
#[derive(Clone, Copy)]
pub(crate) struct Wraps<'a>(pub(crate) &'a Db);

impl Wraps<'_> {
    /// Stores `dek` wrapped (for `public`, the key of `reader`) under `object`.
    pub(crate) async fn put(
        self,
        object: &ObjectId,
        reader: Reader,
        public: &PublicKey,
        dek: &Dek,
    ) -> Result<()> {
        let wrapped = medledger_vault::wrap(public, dek, &object.aad());
        sqlx::query(
            "INSERT INTO wraps (object_id, reader, wrapped) VALUES ($1, $2, $3)
             ON CONFLICT (object_id, reader) DO NOTHING",
        )
        .bind(object.to_string())
        .bind(reader.key())
        .bind(wrapped)
        .execute(self.0)
        .await?;
        Ok(())
    }

    /// The wrapped key of `object` for `reader`, if there is one.
    pub(crate) async fn get(self, object: &ObjectId, reader: Reader) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT wrapped FROM wraps WHERE object_id = $1 AND reader = $2")
                .bind(object.to_string())
                .bind(reader.key())
                .fetch_optional(self.0)
                .await?,
        )
    }

    /// Who holds a wrapped key to `object`.
    pub(crate) async fn readers_of(self, object: &ObjectId) -> Result<Vec<Reader>> {
        let keys: Vec<String> = sqlx::query_scalar("SELECT reader FROM wraps WHERE object_id = $1")
            .bind(object.to_string())
            .fetch_all(self.0)
            .await?;
        keys.iter().map(|k| Reader::parse(k)).collect()
    }

    /// Takes `reader`'s wrapped key to `object` away.
    pub(crate) async fn drop_one(self, object: &ObjectId, reader: Reader) -> Result<()> {
        sqlx::query("DELETE FROM wraps WHERE object_id = $1 AND reader = $2")
            .bind(object.to_string())
            .bind(reader.key())
            .execute(self.0)
            .await?;
        Ok(())
    }

    /// Takes every wrapped key to `object` away.
    pub(crate) async fn drop_all(self, object: &ObjectId) -> Result<()> {
        sqlx::query("DELETE FROM wraps WHERE object_id = $1")
            .bind(object.to_string())
            .execute(self.0)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_and_readers_read_back_as_written() {
        let a = Address::repeat_byte(0xab);
        for object in [
            ObjectId::Record(B256::repeat_byte(1)),
            ObjectId::Profile(a),
            ObjectId::Contact(a),
            ObjectId::Emergency(B256::repeat_byte(2)),
            ObjectId::SecondFactor(a),
            ObjectId::SecondFactorPending(a),
        ] {
            assert_eq!(ObjectId::parse(&object.to_string()).unwrap(), object);
        }
        assert_eq!(
            ObjectId::Profile(a).to_string(),
            format!("profile:0x{}", "ab".repeat(20))
        );
        for reader in [Reader::Escrow, Reader::Account(a)] {
            assert_eq!(Reader::parse(&reader.key()).unwrap(), reader);
        }
        assert!(ObjectId::parse("nonsense:1").is_err());
    }
}
