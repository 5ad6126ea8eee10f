//! Enrolment: an admin adds a doctor (or another admin) as an invitation — the directory entry
//! to be, on chain — and gets a one-time link. The person opens it, chooses their own user name
//! and password, and only then is their key made; their new account takes the invitation up on
//! chain with a signature by the link's key. Nobody else ever knows their password or key.
//!
//! The link carries a random token; the server keeps only its hash. The invitation's key is
//! derived from the token, so whoever holds the link — and only they — can sign the
//! acceptance, and the signature names the accepting account, so a watcher of the chain cannot
//! take the invitation for itself.

use alloy::{
    primitives::{Address, B256, U256, keccak256},
    signers::{SignerSync, local::PrivateKeySigner},
    sol_types::{SolCall, SolValue},
};
use serde::{Deserialize, Serialize};

use crate::{
    accounts::Accounts,
    db::Db,
    follows::Writer,
    ledger::{Contracts, Ledger},
    people::People,
};
use crate::{
    accounts::{Account, NewKey, Person},
    contracts::Registry,
    error::{Error, Kind, Result},
    journal::Follow,
    ledger::TxInfo,
    model::Role,
    store::invites::{Invites, NewInviteRow},
};

/// How long an enrolment link stays valid.
pub const LINK_LIFETIME_SECS: u64 = 7 * 86_400;

/// What an admin writes to invite a doctor: the directory entry.
#[derive(Debug, Clone, Deserialize)]
pub struct DoctorInvite {
    pub name: String,
    #[serde(default)]
    pub specialty: String,
    #[serde(default)]
    pub licence_id: String,
    pub hospital_id: u64,
}

/// A new invitation, with its one-time link token (shown to the admin once, never stored).
#[derive(Debug, Clone, Serialize)]
pub struct NewInvite {
    pub role: &'static str,
    /// The secret of the link: `/enrol/{token}`.
    pub token: String,
    /// The invitation's key: how the chain knows it.
    pub invite_key: Address,
    pub expires_at: u64,
}

/// An invitation as its link's holder, or an admin, sees it.
#[derive(Debug, Clone, Serialize)]
pub struct InviteView {
    pub invite_key: Address,
    pub role: &'static str,
    pub name: String,
    pub hospital_id: Option<u64>,
    pub expires_at: u64,
    /// Taken up (by this account), withdrawn, or open.
    pub used_by: Option<Address>,
    pub status: &'static str,
}

/// The key an enrolment link's token stands for.
fn invite_signer(token: &str) -> Result<PrivateKeySigner> {
    let seed = keccak256([b"medledger invite key:".as_slice(), token.as_bytes()].concat());
    PrivateKeySigner::from_bytes(&seed).map_err(|e| Error::internal("invite key", e))
}

fn token_hash(token: &str) -> String {
    keccak256(token.as_bytes()).to_string()
}

fn not_a_link() -> Error {
    Error::not_found("this enrolment link is not valid; ask an admin for a new one")
}

#[derive(Clone)]
pub struct Enrolment {
    db: Db,
    ledger: Ledger,
    contracts: Contracts,
    accounts: Accounts,
    people: People,
    writer: Writer,
}

impl Enrolment {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        db: Db,
        ledger: Ledger,
        contracts: Contracts,
        accounts: Accounts,
        people: People,
        writer: Writer,
    ) -> Enrolment {
        Enrolment {
            db,
            ledger,
            contracts,
            accounts,
            people,
            writer,
        }
    }
}

impl Enrolment {
    /// An admin invites a doctor: the invitation on chain (signed by the admin) and its link.
    pub async fn invite_doctor(
        &self,
        admin: &Person,
        input: &DoctorInvite,
    ) -> Result<(NewInvite, TxInfo)> {
        self.people.require_admin(admin)?;
        let name = input.name.trim();
        if name.is_empty() {
            return Err(Error::invalid("a doctor needs a name"));
        }
        if name.len() > 200 || input.specialty.len() > 200 || input.licence_id.len() > 100 {
            return Err(Error::invalid("name, specialty or licence id is too long"));
        }
        self.people.hospital(input.hospital_id).await?;
        let expires_at = self.ledger.now().await? + LINK_LIFETIME_SECS;
        let (token, key) = new_link()?;
        let call = Registry::inviteDoctorCall {
            inviteKey: key.address(),
            name: name.to_string(),
            specialty: input.specialty.trim().to_string(),
            licenceId: input.licence_id.trim().to_string(),
            hospitalId: input.hospital_id,
            expiresAt: expires_at,
        };
        self.send_invite(
            admin,
            Role::Doctor,
            name,
            Some(input.hospital_id),
            &token,
            &key,
            expires_at,
            call.abi_encode(),
        )
        .await
    }

    /// An admin invites another admin.
    pub async fn invite_admin(&self, admin: &Person) -> Result<(NewInvite, TxInfo)> {
        self.invite_role(admin, Role::Admin, "", |key, expires_at| {
            Registry::inviteAdminCall {
                inviteKey: key,
                expiresAt: expires_at,
            }
            .abi_encode()
        })
        .await
    }

    /// An admin invites a researcher, named off chain (in the invitation's row) for the admins
    /// who register studies for them.
    pub async fn invite_researcher(
        &self,
        admin: &Person,
        name: &str,
    ) -> Result<(NewInvite, TxInfo)> {
        self.people.require_admin(admin)?;
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(Error::invalid("a name of 1 to 200 characters is required").on("name"));
        }
        self.invite_role(admin, Role::Researcher, name, |key, expires_at| {
            Registry::inviteResearcherCall {
                inviteKey: key,
                expiresAt: expires_at,
            }
            .abi_encode()
        })
        .await
    }

    /// An invitation without a directory entry (an admin's, a researcher's): a new link, and
    /// the call `call` makes of its key and expiry.
    async fn invite_role(
        &self,
        admin: &Person,
        role: Role,
        name: &str,
        call: impl FnOnce(Address, u64) -> Vec<u8>,
    ) -> Result<(NewInvite, TxInfo)> {
        self.people.require_admin(admin)?;
        let expires_at = self.ledger.now().await? + LINK_LIFETIME_SECS;
        let (token, key) = new_link()?;
        let input = call(key.address(), expires_at);
        self.send_invite(admin, role, name, None, &token, &key, expires_at, input)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_invite(
        &self,
        admin: &Person,
        role: Role,
        name: &str,
        hospital_id: Option<u64>,
        token: &str,
        key: &PrivateKeySigner,
        expires_at: u64,
        call: Vec<u8>,
    ) -> Result<(NewInvite, TxInfo)> {
        let stored = async {
            Invites(&self.db)
                .insert(&NewInviteRow {
                    key: key.address(),
                    token_hash: token_hash(token),
                    role,
                    name,
                    hospital_id,
                    created_by: admin.address,
                    expires_at,
                })
                .await
        };
        let registry = self.contracts.registry;
        let (tx, _) = self
            .writer
            .write_after(
                &admin.signer,
                registry,
                call,
                Follow::Invite { key: key.address() },
                None,
                stored,
            )
            .await?
            .mined()?;
        Ok((
            NewInvite {
                role: role.as_str(),
                token: token.to_string(),
                invite_key: key.address(),
                expires_at,
            },
            tx,
        ))
    }

    /// What an enrolment link is for, as the chain says now.
    pub async fn link(&self, token: &str) -> Result<InviteView> {
        let key = Invites(&self.db)
            .by_token_hash(&token_hash(token))
            .await?
            .ok_or_else(not_a_link)?;
        self.invite_view(key).await
    }

    async fn invite_view(&self, key: Address) -> Result<InviteView> {
        let invite = self
            .contracts
            .registry_on(&self.ledger)
            .getInvite(key)
            .call()
            .await
            .map_err(|e| self.ledger.call_error(e))?;
        let role = Role::try_from(invite.role).unwrap_or(Role::None);
        let used_by = (invite.account != Address::ZERO).then_some(invite.account);
        let now = self.ledger.now().await?;
        let status = match (invite.used, used_by) {
            (true, Some(_)) => "used",
            (true, None) => "withdrawn",
            _ if invite.expiresAt <= now => "expired",
            _ => "open",
        };
        Ok(InviteView {
            invite_key: key,
            role: role.as_str(),
            name: invite.name,
            hospital_id: (invite.hospitalId != 0).then_some(invite.hospitalId),
            expires_at: invite.expiresAt,
            used_by,
            status,
        })
    }

    /// The invitations an admin made that are still open.
    pub async fn open_invites(&self, admin: &Person) -> Result<Vec<InviteView>> {
        self.people.require_admin(admin)?;
        let mut out = Vec::new();
        for key in Invites(&self.db).unused().await? {
            let view = self.invite_view(key).await?;
            if view.status == "open" {
                out.push(view);
            }
        }
        Ok(out)
    }

    /// An admin withdraws an invitation nobody took up.
    pub async fn withdraw_invite(&self, admin: &Person, key: Address) -> Result<TxInfo> {
        self.people.require_admin(admin)?;
        let call = Registry::revokeInviteCall { inviteKey: key };
        let registry = self.contracts.registry;
        Ok(self
            .writer
            .write(&admin.signer, registry, call.abi_encode(), Follow::Nothing)
            .await?
            .mined()?
            .0)
    }

    /// The holder of an enrolment link becomes the doctor (or admin) it invites: a login with
    /// the name and password they choose, a key made now, and the invitation taken up on chain
    /// by that key's own account.
    pub async fn enrol(
        &self,
        token: &str,
        username: &str,
        password: &str,
    ) -> Result<(Account, TxInfo)> {
        self.enrol_with(token, username, &NewKey::fresh(password))
            .await
    }

    /// `enrol` with `key`: a fresh custodial key under a password, or the invitee's own wallet
    /// (the invitation is then taken up by a transaction prepared for it).
    pub async fn enrol_with(
        &self,
        token: &str,
        username: &str,
        key: &NewKey<'_>,
    ) -> Result<(Account, TxInfo)> {
        let invite = self.link(token).await?;
        match invite.status {
            "open" => {}
            "expired" => {
                return Err(Error::new(
                    Kind::Unprocessable,
                    "this enrolment link has expired; ask an admin for a new one",
                ));
            }
            _ => {
                return Err(Error::conflict(
                    "this enrolment link was already used or withdrawn; ask an admin for a new one",
                ));
            }
        }
        let role = match invite.role {
            "doctor" => Role::Doctor,
            "admin" => Role::Admin,
            "researcher" => Role::Researcher,
            _ => return Err(not_a_link()),
        };
        let link = invite_signer(token)?;
        if link.address() != invite.invite_key {
            return Err(not_a_link());
        }
        if role == Role::Researcher && matches!(key, NewKey::Wallet(_)) {
            return Err(Error::unprocessable(
                "a researcher's exports are recorded on chain by the server as they finish: enrol a researcher with a password, not a wallet",
            ));
        }
        self.accounts
            .check_new_account(username, key.password())
            .await?;
        let inner = keccak256(
            (
                "medledger invite",
                self.contracts.registry,
                U256::from(self.ledger.chain_id()),
                key.address(),
            )
                .abi_encode_params(),
        );
        let signature = link
            .sign_message_sync(inner.as_slice())
            .map_err(|e| Error::internal("invite signature", e))?;
        let call = Registry::acceptInviteCall {
            inviteKey: link.address(),
            r: B256::from(signature.r()),
            s: B256::from(signature.s()),
            v: 27 + u8::from(signature.v()),
        };
        self.accounts
            .register_account(
                key,
                role,
                username,
                call.abi_encode(),
                async |_: &Account| Ok(()),
            )
            .await
    }
}

/// A fresh link token (32 random bytes, hex) and the key it stands for.
fn new_link() -> Result<(String, PrivateKeySigner)> {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let key = invite_signer(&token)?;
    Ok((token, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_always_stands_for_the_same_key_and_is_stored_hashed() {
        let (token, key) = new_link().unwrap();
        assert_eq!(invite_signer(&token).unwrap().address(), key.address());
        assert_ne!(new_link().unwrap().0, token);
        assert!(!token_hash(&token).contains(&token));
    }
}
