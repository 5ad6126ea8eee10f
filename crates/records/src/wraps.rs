//! Wrapped data keys: each object's key (a record, a part of a profile, an emergency's reason, a
//! second factor's secret) stored only wrapped (HPKE) for each reader allowed to open it — a
//! person's account, or the emergency escrow. Objects and readers are closed types; their text
//! forms (the database's keys and the sealed data's associated data) are written here once.

use std::fmt;

use alloy::primitives::{Address, B256};
use medledger_vault::{Dek, PublicKey, SecretKey};

use crate::{
    accounts::address_key,
    app::App,
    error::{Error, Result},
};

/// What a data key opens. Its text is also the associated data its sealed bytes are bound to,
/// so a sealed object cannot be passed off as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectId {
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
pub enum Reader {
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

impl App {
    /// Stores `dek` wrapped (for `public`, the key of `reader`) under `object`.
    pub(crate) async fn put_wrap(
        &self,
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
        .execute(self.db())
        .await?;
        Ok(())
    }

    /// Unwraps `object`'s key with `secret` if one was wrapped for `reader`.
    pub(crate) async fn take_wrap(
        &self,
        object: &ObjectId,
        reader: Reader,
        secret: &SecretKey,
    ) -> Result<Option<Dek>> {
        let wrapped: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT wrapped FROM wraps WHERE object_id = $1 AND reader = $2")
                .bind(object.to_string())
                .bind(reader.key())
                .fetch_optional(self.db())
                .await?;
        match wrapped {
            Some(w) => Ok(Some(medledger_vault::unwrap(secret, &w, &object.aad())?)),
            None => Ok(None),
        }
    }

    /// `object`'s key, wrapped for the escrow too.
    pub(crate) async fn escrow_wrap(&self, object: &ObjectId, dek: &Dek) -> Result<()> {
        let public = self.escrow().public_key();
        self.put_wrap(object, Reader::Escrow, &public, dek).await
    }

    /// `object`'s key as the escrow unwraps it.
    pub(crate) async fn escrow_key_of(&self, object: &ObjectId) -> Result<Option<Dek>> {
        self.take_wrap(object, Reader::Escrow, self.escrow()).await
    }

    /// Who holds a wrapped key to `object`.
    pub(crate) async fn readers_of(&self, object: &ObjectId) -> Result<Vec<Reader>> {
        let keys: Vec<String> = sqlx::query_scalar("SELECT reader FROM wraps WHERE object_id = $1")
            .bind(object.to_string())
            .fetch_all(self.db())
            .await?;
        keys.iter().map(|k| Reader::parse(k)).collect()
    }

    /// Takes `reader`'s wrapped key to `object` away.
    pub(crate) async fn drop_wrap(&self, object: &ObjectId, reader: Reader) -> Result<()> {
        sqlx::query("DELETE FROM wraps WHERE object_id = $1 AND reader = $2")
            .bind(object.to_string())
            .bind(reader.key())
            .execute(self.db())
            .await?;
        Ok(())
    }

    /// Takes every wrapped key to `object` away.
    pub(crate) async fn drop_wraps(&self, object: &ObjectId) -> Result<()> {
        sqlx::query("DELETE FROM wraps WHERE object_id = $1")
            .bind(object.to_string())
            .execute(self.db())
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
