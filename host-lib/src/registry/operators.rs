//! The counter console's operators: who may log in, with which role.
//!
//! The registry keeps only what it is given: a login, a display name, a role and a password
//! hash in PHC form (`$argon2id$…`); hashing and checking passwords is the console's business.
//! Adding an operator and every console sign-in are audited like any other change.

use super::db::{params, OptionalExtension};
use serde::Serialize;

use super::lifecycle::{audit, check_operator};
use super::{Registry, RegistryError, Result};

/// What an operator may do at the counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Issues, looks up, takes loss reports, prints statements.
    Operator,
    /// Also what moves money or lifts a block: fees (replacement), cancellation with refund,
    /// revoking a loss report.
    Supervisor,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Supervisor => "supervisor",
        }
    }

    /// The role stored as `s`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "operator" => Some(Role::Operator),
            "supervisor" => Some(Role::Supervisor),
            _ => None,
        }
    }
}

/// An operator as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorRecord {
    /// The login name (what the audit log records).
    pub login: String,
    /// The name shown on pages.
    pub display_name: String,
    /// The role.
    pub role: Role,
    /// The argon2 hash of the password (PHC string).
    #[serde(skip)]
    pub password_hash: String,
    /// When added.
    pub created_at: String,
    /// When disabled (a disabled operator cannot log in).
    pub disabled_at: Option<String>,
}

impl Registry {
    /// Adds an operator; `by` (who adds them) is audited. Refused for a login that exists.
    pub fn add_operator(
        &mut self,
        by: &str,
        login: &str,
        display_name: &str,
        role: Role,
        password_hash: &str,
    ) -> Result<()> {
        let by = check_operator(by)?.to_owned();
        let login = login.trim();
        if login.is_empty() {
            return Err(RegistryError::Corrupt(
                "an operator needs a login name".into(),
            ));
        }
        if !password_hash.starts_with("$argon2") {
            return Err(RegistryError::Corrupt(
                "an operator's password is stored as an argon2 hash only".into(),
            ));
        }
        let (tx, at) = self.begin()?;
        let exists: Option<String> = tx
            .query_row(
                "SELECT login FROM operators WHERE login = ?1",
                [login],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_some() {
            return Err(RegistryError::Corrupt(format!(
                "operator {login:?} exists already"
            )));
        }
        tx.execute(
            "INSERT INTO operators (login, display_name, role, password_hash, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![login, display_name, role.as_str(), password_hash, at],
        )?;
        audit(
            &tx,
            &at,
            &by,
            "operator_added",
            None,
            None,
            serde_json::json!({ "login": login, "role": role.as_str() }),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The operator with this login, if any.
    pub fn operator(&self, login: &str) -> Result<Option<OperatorRecord>> {
        let row = self
            .conn()?
            .query_row(
                "SELECT login, display_name, role, password_hash, created_at, disabled_at \
                 FROM operators WHERE login = ?1",
                [login.trim()],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<String>(2)?,
                        r.get::<String>(3)?,
                        r.get::<String>(4)?,
                        r.get::<Option<String>>(5)?,
                    ))
                },
            )
            .optional()?;
        row.map(
            |(login, display_name, role, password_hash, created_at, disabled_at)| {
                let role = Role::parse(&role)
                    .ok_or_else(|| RegistryError::Corrupt(format!("operator role {role:?}")))?;
                Ok(OperatorRecord {
                    login,
                    display_name,
                    role,
                    password_hash,
                    created_at,
                    disabled_at,
                })
            },
        )
        .transpose()
    }

    /// Records a console sign-in or sign-out (`action`: `console_login`, `console_logout`,
    /// `console_login_refused`) in the audit log.
    pub fn record_console_event(&mut self, login: &str, action: &str) -> Result<()> {
        let login = check_operator(login)?.to_owned();
        let (tx, at) = self.begin()?;
        audit(&tx, &at, &login, action, None, None, serde_json::json!({}))?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::registry::{ManualClock, RegistryConfig};

    fn registry() -> Registry {
        let clock = Arc::new(ManualClock::new(
            time::macros::datetime!(2026-01-05 09:00 UTC),
        ));
        Registry::open_in_memory(RegistryConfig::default(), clock).unwrap()
    }

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

    #[test]
    fn operators_are_stored_found_and_audited() {
        let mut reg = registry();
        assert_eq!(reg.operator("li").unwrap(), None);
        reg.add_operator("setup", "li", "李柜员", Role::Supervisor, HASH)
            .unwrap();
        let op = reg.operator("li").unwrap().unwrap();
        assert_eq!(op.role, Role::Supervisor);
        assert_eq!(op.display_name, "李柜员");
        assert_eq!(op.password_hash, HASH);
        reg.record_console_event("li", "console_login").unwrap();
        let log = reg.audit_log(&Default::default()).unwrap();
        let actions: Vec<_> = log
            .iter()
            .map(|e| (e.operator.as_str(), e.action.as_str()))
            .collect();
        assert_eq!(
            actions,
            [("setup", "operator_added"), ("li", "console_login")]
        );
    }

    #[test]
    fn duplicates_plain_passwords_and_anonymous_changes_are_refused() {
        let mut reg = registry();
        reg.add_operator("setup", "li", "李", Role::Operator, HASH)
            .unwrap();
        assert!(reg
            .add_operator("setup", "li", "李", Role::Operator, HASH)
            .is_err());
        assert!(reg
            .add_operator("setup", "wang", "王", Role::Operator, "secret")
            .is_err());
        assert!(matches!(
            reg.add_operator(" ", "wang", "王", Role::Operator, HASH),
            Err(RegistryError::NoOperator)
        ));
        assert_eq!(reg.operator("wang").unwrap(), None);
        // The table itself refuses a plain password, whoever writes it.
        assert!(reg
            .sqlite()
            .execute(
                "INSERT INTO operators VALUES ('x', 'x', 'operator', 'plain', 't', NULL)",
                [],
            )
            .is_err());
    }
}
