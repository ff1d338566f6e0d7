//! `tessera user …`

use std::io::{BufRead, IsTerminal as _};

use serde_json::{Value, json};
use tessera_core::password;
use tessera_core::store::{Roles, Store, User};
use tessera_core::user_admin::{self, check_email, check_name, check_username};
use tessera_core::{Clock, SystemClock};

use super::{CommandError, CommandResult, format_time, print_json};

/// What `user create` was given, besides the password.
#[derive(Debug)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
    pub roles: Roles,
}

pub async fn create(
    store: &dyn Store,
    new: NewUser<'_>,
    password_stdin: bool,
    json: bool,
) -> CommandResult {
    let NewUser {
        username,
        email,
        name,
        roles,
    } = new;
    // The cheap checks first, so that a typo is reported before the
    // password is asked for.
    check_username(username).map_err(|e| CommandError(e.to_string()))?;
    if let Some(email) = email {
        check_email(email).map_err(|e| CommandError(e.to_string()))?;
    }
    if let Some(name) = name {
        check_name(name).map_err(|e| CommandError(e.to_string()))?;
    }
    let password = read_new_password(password_stdin)?;
    let user = user_admin::create(
        store,
        user_admin::NewUser {
            username: username.to_owned(),
            email: email.map(str::to_owned),
            name: name.map(str::to_owned),
            password,
            roles,
        },
        SystemClock.now(),
    )
    .await
    .map_err(|e| CommandError(e.to_string()))?;
    if json {
        print_json(&json!({"sub": user.id, "username": user.username}));
    } else {
        println!("created user {} (sub {})", user.username, user.id);
    }
    Ok(())
}

pub async fn list(store: &dyn Store, json: bool) -> CommandResult {
    let users = store.users().await?;
    if json {
        print_json(&Value::Array(users.iter().map(describe).collect()));
    } else if users.is_empty() {
        println!("no users");
    } else {
        for user in &users {
            println!(
                "{}\t{}\t{}\t{}\t{}",
                user.id,
                user.username,
                user.email.as_deref().unwrap_or("-"),
                user.name.as_deref().unwrap_or("-"),
                format_time(user.created_at)
            );
        }
    }
    Ok(())
}

pub async fn delete(store: &dyn Store, login: &str, json: bool) -> CommandResult {
    let user = find(store, login).await?;
    // The user may vanish between the lookup and the delete (another command).
    if !store.delete_user(&user.id).await? {
        return Err(CommandError(format!("no user {login:?}")));
    }
    if json {
        print_json(&json!({"sub": user.id, "username": user.username, "deleted": true}));
    } else {
        println!("deleted user {} (sub {})", user.username, user.id);
    }
    Ok(())
}

/// A role `user set-developer` and `user set-admin` change.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    Developer,
    Admin,
}

pub async fn set_role(
    store: &dyn Store,
    login: &str,
    role: Role,
    held: bool,
    json: bool,
) -> CommandResult {
    let user = find(store, login).await?;
    let mut roles = user.roles;
    let name = match role {
        Role::Developer => {
            roles.developer = held;
            "developer"
        }
        Role::Admin => {
            roles.admin = held;
            "admin"
        }
    };
    if !store.set_user_roles(&user.id, roles).await? {
        return Err(CommandError(format!("no user {login:?}")));
    }
    if json {
        print_json(&json!({"sub": user.id, "username": user.username, name: held}));
    } else if held {
        println!("{} has the {name} role", user.username);
    } else {
        println!("{} no longer has the {name} role", user.username);
    }
    Ok(())
}

pub async fn set_password(
    store: &dyn Store,
    login: &str,
    password_stdin: bool,
    keep_tokens: bool,
    json: bool,
) -> CommandResult {
    let user = find(store, login).await?;
    let password_hash = new_password_hash(password_stdin)?;
    let Some(revoked) = store
        .set_password(&user.id, &password_hash, !keep_tokens)
        .await?
    else {
        return Err(CommandError(format!("no user {login:?}")));
    };
    if json {
        print_json(&json!({
            "sub": user.id,
            "username": user.username,
            "password_set": true,
            "sessions_ended": true,
            "tokens_revoked": !keep_tokens,
            "refresh_tokens_revoked": revoked,
        }));
    } else {
        println!(
            "password of {} replaced; their login sessions have ended",
            user.username
        );
        if keep_tokens {
            println!(
                "their refresh and access tokens were kept (--keep-tokens): whoever holds them keeps access"
            );
        } else {
            println!("{revoked} refresh token(s) revoked, with the access tokens issued with them");
        }
    }
    Ok(())
}

/// A user by username or email, as at sign-in.
pub async fn find(store: &dyn Store, login: &str) -> Result<User, CommandError> {
    store
        .user_by_login(login)
        .await?
        .ok_or_else(|| CommandError(format!("no user with the username or email {login:?}")))
}

/// A user as the CLI shows it: everything but the password hash.
/// A user as `list --json` prints them: the admin API's view.
fn describe(user: &User) -> Value {
    serde_json::to_value(crate::routes::admin::UserView::from(user)).unwrap_or_default()
}

/// Reads and checks a new password. It only ever comes from stdin: on the
/// command line it would show in the process list and the shell history. A
/// person at a terminal is asked for it twice without echo; a pipe or a file
/// gives its first line.
fn read_new_password(password_stdin: bool) -> Result<String, CommandError> {
    if !password_stdin {
        return Err(CommandError(
            "give the password on stdin with --password-stdin (e.g. printf '%s\\n' \"$PW\" | tessera …)"
                .into(),
        ));
    }
    let password = if std::io::stdin().is_terminal() {
        ask_twice(|prompt| {
            // The prompt goes to stderr, like every message, so that stdout
            // keeps only the result (`--json`).
            let config = rpassword::ConfigBuilder::new()
                .output_writer(std::io::stderr())
                .build();
            rpassword::prompt_password_with_config(prompt, config)
        })?
    } else {
        read_password(std::io::stdin().lock())?
    };
    password::check_strength(&password).map_err(CommandError)?;
    Ok(password)
}

/// A new password, read and hashed.
fn new_password_hash(password_stdin: bool) -> Result<String, CommandError> {
    password::hash(&read_new_password(password_stdin)?).map_err(CommandError)
}

/// Asks for a new password, then for the same again: what was typed cannot be
/// seen, so a typo would otherwise lock the user out. A weak password is
/// refused before the second prompt.
fn ask_twice(mut ask: impl FnMut(&str) -> std::io::Result<String>) -> Result<String, CommandError> {
    let mut read = |prompt: &str| {
        ask(prompt)
            .map_err(|e| CommandError(format!("cannot read the password from the terminal: {e}")))
    };
    let first = read("Password: ")?;
    if first.is_empty() {
        return Err(CommandError("no password given".into()));
    }
    password::check_strength(&first).map_err(CommandError)?;
    if read("Password again: ")? != first {
        return Err(CommandError(
            "the two passwords differ; nothing was saved".into(),
        ));
    }
    Ok(first)
}

/// The first line of `input` without its line ending; nothing else is trimmed,
/// since spaces may be part of a password.
fn read_password(input: impl BufRead) -> Result<String, CommandError> {
    // Far above check_strength's limit, so an endless stream cannot exhaust
    // memory while a too-long password is still refused by the strength check.
    const MAX_BYTES: u64 = 64 * 1024;
    let mut line = String::new();
    input
        .take(MAX_BYTES)
        .read_line(&mut line)
        .map_err(|e| CommandError(format!("cannot read the password from stdin: {e}")))?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() {
        return Err(CommandError(
            "no password on stdin (the first line is empty)".into(),
        ));
    }
    Ok(line.to_owned())
}

/// What a person types at sign-in: whitespace would be trimmed away there, and
/// control characters have no place in a name shown on pages and in tokens.
#[cfg(test)]
mod tests {
    use super::{ask_twice, read_password};
    use tessera_core::user_admin::{check_email, check_username};

    #[test]
    fn passwords_are_the_first_line_without_its_ending() {
        let read = |s: &str| read_password(s.as_bytes()).map_err(|e| e.0);
        assert_eq!(read("pass word\nsecond\n").as_deref(), Ok("pass word"));
        assert_eq!(read("secret\r\n").as_deref(), Ok("secret"));
        assert_eq!(read(" padded ").as_deref(), Ok(" padded "));
        assert!(read("").is_err());
        assert!(read("\n").is_err());
        assert!(read("\r\nlater").is_err());
    }

    /// `ask_twice` over scripted answers; returns its result and the prompts shown.
    fn ask(answers: &[std::io::Result<&str>]) -> (Result<String, String>, Vec<String>) {
        let mut prompts = Vec::new();
        let mut answers = answers.iter();
        let result = ask_twice(|prompt| {
            prompts.push(prompt.to_owned());
            match answers.next() {
                Some(Ok(answer)) => Ok((*answer).to_owned()),
                Some(Err(e)) => Err(std::io::Error::new(e.kind(), e.to_string())),
                None => panic!("asked more often than scripted"),
            }
        });
        (result.map_err(|e| e.0), prompts)
    }

    #[test]
    fn a_terminal_password_is_asked_twice_and_must_agree() {
        let good = "correct horse battery";
        let (result, prompts) = ask(&[Ok(good), Ok(good)]);
        assert_eq!(result.as_deref(), Ok(good));
        assert_eq!(prompts, ["Password: ", "Password again: "]);

        let (result, _) = ask(&[Ok(good), Ok("correct horse battery ")]);
        assert!(result.expect_err("refused").contains("differ"));

        // Empty or weak: refused at once, without a second prompt.
        let (result, prompts) = ask(&[Ok("")]);
        assert!(result.expect_err("refused").contains("no password"));
        assert_eq!(prompts.len(), 1);
        let (result, prompts) = ask(&[Ok("short")]);
        assert!(result.expect_err("refused").contains("at least 8"));
        assert_eq!(prompts.len(), 1);

        let interrupted = std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted");
        let (result, _) = ask(&[Ok(good), Err(interrupted)]);
        assert!(
            result
                .expect_err("refused")
                .contains("cannot read the password")
        );
    }

    #[test]
    fn usernames_and_emails_are_checked() {
        assert!(check_username("alice").is_ok());
        assert!(check_username("ünïcödé.name").is_ok());
        assert!(check_username(&"a".repeat(64)).is_ok());
        assert!(check_username(&"a".repeat(65)).is_err());
        assert!(check_username("").is_err());
        assert!(check_username("al ice").is_err());
        assert!(check_username("alice\u{7}").is_err());
        assert!(check_email("alice@example.com").is_ok());
        assert!(check_email("alice").is_err());
        assert!(check_email("@example.com").is_err());
        assert!(check_email("alice@").is_err());
        assert!(check_email("a@b@c").is_err());
        assert!(check_email("al ice@example.com").is_err());
    }
}
