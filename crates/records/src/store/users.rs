//! The `users` table: each person's account — name, role, address, how they sign (custodial
//! or wallet), their keystore and password hash (custodial), their public encryption key,
//! their sealed profile and contact (patients), their sealed second factor, and whether their
//! registration is confirmed on chain.

use alloy::primitives::Address;
use sqlx::Row;

use crate::{
    db::{Db, DbRow},
    error::{Error, Result},
    model::Role,
    model::unix_now,
    model::{Account, address_key},
    store::wraps::ObjectId,
};

/// An account's row with what a sign-in looks at.
pub(crate) struct UserRow {
    pub(crate) account: Account,
    /// `custodial` or `wallet`.
    pub(crate) mode: String,
    /// `pending` until the registration is mined, then `active`.
    pub(crate) status: String,
    pub(crate) keystore: Option<String>,
    pub(crate) password_hash: Option<String>,
}

/// A new account, stored pending before its registration is sent.
pub(crate) struct NewUser<'a> {
    pub(crate) username: &'a str,
    pub(crate) role: Role,
    pub(crate) address: Address,
    pub(crate) mode: &'a str,
    pub(crate) keystore: Option<String>,
    pub(crate) password_hash: Option<String>,
    pub(crate) enc_public: String,
    pub(crate) funded_wei: String,
}

/// A researcher as the directory lists them.
pub(crate) struct ResearcherRow {
    pub(crate) address: Address,
    pub(crate) username: String,
    pub(crate) name: String,
}

fn address(s: &str) -> Result<Address> {
    s.parse().map_err(|e| Error::internal("stored address", e))
}

fn account_from(row: &DbRow) -> Result<Account> {
    let role: String = row.try_get("role")?;
    let enc: String = row.try_get("enc_public")?;
    Ok(Account {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        role: role.parse()?,
        address: address(&row.try_get::<String, _>("address")?)?,
        enc_public: enc
            .parse()
            .map_err(|e| Error::internal("stored public key", e))?,
    })
}

fn user_from(row: &DbRow) -> Result<UserRow> {
    Ok(UserRow {
        account: account_from(row)?,
        mode: row.try_get("mode")?,
        status: row.try_get("status")?,
        keystore: row.try_get("keystore")?,
        password_hash: row.try_get("password_hash")?,
    })
}

#[derive(Clone, Copy)]
pub(crate) struct Users<'a>(pub(crate) &'a Db);

impl Users<'_> {
    /// Stores a new account, pending; its id, or `None` when the name is taken.
    pub(crate) async fn insert_pending(self, user: &NewUser<'_>) -> Result<Option<i64>> {
        let inserted = sqlx::query(
            "INSERT INTO users (username, role, address, mode, keystore, password_hash, enc_public, profile, created_at, funded_wei, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, 'pending') RETURNING id",
        )
        .bind(user.username)
        .bind(user.role.as_str())
        .bind(address_key(user.address))
        .bind(user.mode)
        .bind(&user.keystore)
        .bind(&user.password_hash)
        .bind(&user.enc_public)
        .bind(unix_now())
        .bind(&user.funded_wei)
        .fetch_one(self.0)
        .await;
        match inserted {
            Ok(row) => Ok(Some(row.try_get("id")?)),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The first admin's account, created with the deployment (active at once: the contracts
    /// are deployed by its key). An earlier half-finished first start's row is replaced.
    pub(crate) async fn insert_first_admin(self, user: &NewUser<'_>) -> Result<()> {
        sqlx::query("DELETE FROM users WHERE username = $1")
            .bind(user.username)
            .execute(self.0)
            .await?;
        sqlx::query(
            "INSERT INTO users (username, role, address, keystore, password_hash, enc_public, profile, created_at, funded_wei)
             VALUES ($1, 'admin', $2, $3, $4, $5, NULL, $6, $7)",
        )
        .bind(user.username)
        .bind(address_key(user.address))
        .bind(&user.keystore)
        .bind(&user.password_hash)
        .bind(&user.enc_public)
        .bind(unix_now())
        .bind(&user.funded_wei)
        .execute(self.0)
        .await?;
        Ok(())
    }

    /// Its registration was mined: it may sign in.
    pub(crate) async fn activate(self, account: Address) -> Result<()> {
        sqlx::query("UPDATE users SET status = 'active' WHERE address = $1")
            .bind(address_key(account))
            .execute(self.0)
            .await?;
        Ok(())
    }

    /// Removes an account whose registration will never be mined.
    pub(crate) async fn forget_pending(self, account: Address) -> Result<()> {
        sqlx::query("DELETE FROM users WHERE address = $1 AND status = 'pending'")
            .bind(address_key(account))
            .execute(self.0)
            .await?;
        Ok(())
    }

    pub(crate) async fn by_name(self, username: &str) -> Result<Option<UserRow>> {
        let row = sqlx::query("SELECT * FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(self.0)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    pub(crate) async fn by_address(self, account: Address) -> Result<Option<UserRow>> {
        let row = sqlx::query("SELECT * FROM users WHERE address = $1")
            .bind(address_key(account))
            .fetch_optional(self.0)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    /// Whether any account signs with its own wallet.
    pub(crate) async fn any_wallet(self) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE mode = 'wallet'")
            .fetch_one(self.0)
            .await?;
        Ok(n > 0)
    }

    pub(crate) async fn with_role(self, role: Role) -> Result<Vec<Account>> {
        let rows = sqlx::query("SELECT * FROM users WHERE role = $1 ORDER BY id")
            .bind(role.as_str())
            .fetch_all(self.0)
            .await?;
        rows.iter().map(account_from).collect()
    }

    /// The patients whose registration is confirmed, oldest first.
    pub(crate) async fn active_patients(self) -> Result<Vec<Address>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT address FROM users WHERE role = 'patient' AND status = 'active' ORDER BY id",
        )
        .fetch_all(self.0)
        .await?;
        rows.iter().map(|a| address(a)).collect()
    }

    /// The confirmed researchers, with the name their invitation gave them.
    pub(crate) async fn researchers(self) -> Result<Vec<ResearcherRow>> {
        let rows = sqlx::query(
            "SELECT u.address, u.username, COALESCE(i.name, '') AS name FROM users u
             LEFT JOIN invites i ON i.used_by = u.address
             WHERE u.role = 'researcher' AND u.status = 'active' ORDER BY u.created_at",
        )
        .fetch_all(self.0)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ResearcherRow {
                    address: address(&r.try_get::<String, _>("address")?)?,
                    username: r.try_get("username")?,
                    name: r.try_get("name")?,
                })
            })
            .collect()
    }

    pub(crate) async fn password_hash(self, id: i64) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                .bind(id)
                .fetch_one(self.0)
                .await?,
        )
    }

    pub(crate) async fn set_password(self, id: i64, keystore: &str, hash: &str) -> Result<()> {
        sqlx::query("UPDATE users SET keystore = $1, password_hash = $2 WHERE id = $3")
            .bind(keystore)
            .bind(hash)
            .bind(id)
            .execute(self.0)
            .await?;
        Ok(())
    }

    /// The ether given to the account at creation, in wei (decimal).
    pub(crate) async fn funded_wei(self, id: i64) -> Result<String> {
        Ok(
            sqlx::query_scalar("SELECT funded_wei FROM users WHERE id = $1")
                .bind(id)
                .fetch_one(self.0)
                .await?,
        )
    }

    pub(crate) async fn keystore(self, id: i64) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT keystore FROM users WHERE id = $1")
                .bind(id)
                .fetch_one(self.0)
                .await?,
        )
    }

    /// A patient's sealed name and date of birth, and contact details.
    pub(crate) async fn set_profile(self, id: i64, profile: &[u8], contact: &[u8]) -> Result<()> {
        sqlx::query("UPDATE users SET profile = $1, contact = $2 WHERE id = $3")
            .bind(profile)
            .bind(contact)
            .bind(id)
            .execute(self.0)
            .await?;
        Ok(())
    }

    /// The sealed part of `patient`'s profile that `object` names (identity or contact).
    pub(crate) async fn sealed_profile(
        self,
        patient: Address,
        object: &ObjectId,
    ) -> Result<Option<Vec<u8>>> {
        let sql = match object {
            ObjectId::Contact(_) => "SELECT contact FROM users WHERE address = $1",
            _ => "SELECT profile FROM users WHERE address = $1",
        };
        Ok(sqlx::query_scalar(sql)
            .bind(address_key(patient))
            .fetch_optional(self.0)
            .await?
            .flatten())
    }

    /// A second factor being set up (sealed), replacing any other being set up.
    pub(crate) async fn set_mfa_pending(self, id: i64, sealed: &[u8]) -> Result<()> {
        sqlx::query("UPDATE users SET mfa_pending = $1 WHERE id = $2")
            .bind(sealed)
            .bind(id)
            .execute(self.0)
            .await?;
        Ok(())
    }

    /// The second factor set up is on, its code of time step `step` used.
    pub(crate) async fn confirm_mfa(self, id: i64, sealed: &[u8], step: u64) -> Result<()> {
        sqlx::query(
            "UPDATE users SET mfa_secret = $1, mfa_pending = NULL, mfa_last_step = $2 WHERE id = $3",
        )
        .bind(sealed)
        .bind(step as i64)
        .bind(id)
        .execute(self.0)
        .await?;
        Ok(())
    }

    pub(crate) async fn clear_mfa(self, id: i64) -> Result<()> {
        sqlx::query("UPDATE users SET mfa_secret = NULL WHERE id = $1")
            .bind(id)
            .execute(self.0)
            .await?;
        Ok(())
    }

    pub(crate) async fn mfa_on(self, id: i64) -> Result<bool> {
        // An integer on every engine (a comparison is a boolean in PostgreSQL).
        let on: Option<i64> = sqlx::query_scalar(
            "SELECT CASE WHEN mfa_secret IS NULL THEN 0 ELSE 1 END FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.0)
        .await?;
        Ok(on == Some(1))
    }

    /// Moves the last used time step on to `step`, in one statement (so across servers a code
    /// is accepted once); false when `step` was used already.
    pub(crate) async fn use_mfa_step(self, id: i64, step: u64) -> Result<bool> {
        let moved =
            sqlx::query("UPDATE users SET mfa_last_step = $1 WHERE id = $2 AND mfa_last_step < $3")
                .bind(step as i64)
                .bind(id)
                .bind(step as i64)
                .execute(self.0)
                .await?;
        Ok(moved.rows_affected() == 1)
    }

    /// The sealed second factor (the one being set up, with `pending`).
    pub(crate) async fn mfa_sealed(self, id: i64, pending: bool) -> Result<Option<Vec<u8>>> {
        let sql = if pending {
            "SELECT mfa_pending AS sealed FROM users WHERE id = $1"
        } else {
            "SELECT mfa_secret AS sealed FROM users WHERE id = $1"
        };
        let row = sqlx::query(sql).bind(id).fetch_one(self.0).await?;
        Ok(row.try_get("sealed")?)
    }

    /// Moves custodial account `id` to its wallet, in one transaction: every wrapped key of
    /// `reader` replaced by what `rewrap` makes of it (for the wallet's key `enc_public`), the
    /// keystore and password hash deleted, its sessions ended. False when it is not custodial.
    pub(crate) async fn move_to_wallet(
        self,
        id: i64,
        reader: Address,
        enc_public: &str,
        mut rewrap: impl FnMut(&ObjectId, &[u8]) -> Result<Vec<u8>>,
    ) -> Result<bool> {
        let reader = address_key(reader);
        let mut tx = self.0.begin().await?;
        let wraps: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT object_id, wrapped FROM wraps WHERE reader = $1")
                .bind(&reader)
                .fetch_all(&mut *tx)
                .await?;
        for (object, wrapped) in &wraps {
            let rewrapped = rewrap(&ObjectId::parse(object)?, wrapped)?;
            sqlx::query("UPDATE wraps SET wrapped = $1 WHERE object_id = $2 AND reader = $3")
                .bind(rewrapped)
                .bind(object)
                .bind(&reader)
                .execute(&mut *tx)
                .await?;
        }
        let moved = sqlx::query(
            "UPDATE users SET mode = 'wallet', keystore = NULL, password_hash = NULL, enc_public = $1
             WHERE id = $2 AND mode = 'custodial'",
        )
        .bind(enc_public)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
