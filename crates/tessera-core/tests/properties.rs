//! Property tests of the pure rules the protocol stands on: scope parsing and
//! narrowing (RFC 6749 §3.3, §6), PKCE (RFC 7636), device user codes
//! (RFC 8628 §6.1), redirect URI matching (RFC 6749 §3.1.2.3, RFC 8252 §7.3)
//! and the nesting of delegation chains (RFC 8693 §4.1).

use proptest::prelude::*;
use tessera_core::assertion::{MAX_ACTOR_DEPTH, actor_depth, nest_actor};
use tessera_core::authorize::redirect_uri_matches;
use tessera_core::device::{
    USER_CODE_ALPHABET, display_user_code, new_user_code, normalize_user_code,
};
use tessera_core::pkce;
use tessera_core::scope::Scope;
use tessera_core::tokens::Actor;

/// One scope token: printable ASCII without space, `"` or `\` (RFC 6749 §3.3).
fn scope_token() -> impl Strategy<Value = String> {
    "[!#-\\[\\]-~]{1,12}"
}

fn scope_tokens() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(scope_token(), 0..8)
}

/// A PKCE verifier: 43 to 128 unreserved characters (RFC 7636 §4.1).
fn verifier() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._~-]{43,128}"
}

fn user_code() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(USER_CODE_ALPHABET.to_vec()), 8)
        .prop_map(|bytes| bytes.into_iter().map(char::from).collect())
}

/// A delegation chain of `depth` actors, the newest outermost.
fn chain(depth: usize) -> Option<Actor> {
    (0..depth).fold(None, |earlier, i| {
        Some(Actor {
            sub: format!("service-{i}"),
            act: earlier.map(Box::new),
        })
    })
}

proptest! {
    #[test]
    fn scopes_parse_whatever_the_spacing_and_print_back(
        tokens in scope_tokens(),
        gaps in prop::collection::vec(1usize..4, 0..9),
    ) {
        let mut text = String::new();
        for (i, token) in tokens.iter().enumerate() {
            text.push_str(&" ".repeat(gaps.get(i).copied().unwrap_or(1)));
            text.push_str(token);
        }
        let scope = Scope::parse(&text).expect("valid tokens parse");
        prop_assert_eq!(&scope, &Scope::from_tokens(tokens.iter().cloned()));
        prop_assert_eq!(Scope::parse(&scope.to_string()).expect("printed"), scope);
    }

    #[test]
    fn a_scope_token_with_a_forbidden_character_is_refused(
        before in "[a-z]{0,5}",
        bad in prop::sample::select(vec!['"', '\\', '\u{7f}', '\u{1}', '\t', 'é', '\u{2028}']),
        after in "[a-z]{0,5}",
    ) {
        let text = format!("openid {before}{bad}{after}");
        prop_assert!(Scope::parse(&text).is_err(), "{:?} parsed", text);
    }

    #[test]
    fn narrowing_never_widens(granted in scope_tokens(), requested in scope_tokens()) {
        let granted = Scope::from_tokens(granted);
        let requested = Scope::from_tokens(requested);
        // A refresh or exchange may ask for a subset only (RFC 6749 §6): what
        // is in excess is exactly what makes it not a subset.
        let excess: Vec<&str> = requested.excess(&granted).collect();
        prop_assert_eq!(excess.is_empty(), requested.is_subset(&granted));
        let narrowed = requested.intersection(&granted);
        prop_assert!(narrowed.is_subset(&granted));
        prop_assert!(narrowed.is_subset(&requested));
        prop_assert_eq!(narrowed.excess(&granted).count(), 0);
    }

    #[test]
    fn pkce_accepts_the_verifier_of_a_challenge_and_no_other(
        verifier in verifier(),
        other in verifier(),
    ) {
        let challenge = pkce::challenge_of(&verifier);
        prop_assert!(pkce::valid_challenge(&challenge));
        prop_assert!(pkce::verify(&verifier, &challenge));
        prop_assume!(other != verifier);
        prop_assert!(!pkce::verify(&other, &challenge));
        // The challenge itself is never a verifier for itself (no `plain`).
        prop_assert!(!pkce::verify(&challenge, &challenge));
    }

    #[test]
    fn pkce_refuses_malformed_verifiers_even_with_their_own_challenge(
        short in "[A-Za-z0-9._~-]{1,42}",
        long in "[A-Za-z0-9._~-]{129,160}",
        base in "[A-Za-z0-9]{43,60}",
        bad in prop::sample::select(vec!['+', '/', '=', ' ', '%', 'é']),
        at in any::<prop::sample::Index>(),
    ) {
        prop_assert!(!pkce::verify(&short, &pkce::challenge_of(&short)));
        prop_assert!(!pkce::verify(&long, &pkce::challenge_of(&long)));
        let mut with_bad: Vec<char> = base.chars().collect();
        with_bad.insert(at.index(with_bad.len() + 1), bad);
        let with_bad: String = with_bad.into_iter().collect();
        prop_assert!(!pkce::verify(&with_bad, &pkce::challenge_of(&with_bad)));
    }

    #[test]
    fn user_codes_are_read_back_however_they_are_typed(
        code in user_code(),
        lower in prop::collection::vec(any::<bool>(), 8),
        separators in prop::collection::vec(prop::sample::select(vec!["", "", "-", " ", "  "]), 9),
    ) {
        prop_assert_eq!(normalize_user_code(&code), Some(code.clone()));
        prop_assert_eq!(normalize_user_code(&display_user_code(&code)), Some(code.clone()));
        let mut typed = String::new();
        for (i, c) in code.chars().enumerate() {
            typed.push_str(separators[i]);
            typed.push(if lower[i] { c.to_ascii_lowercase() } else { c });
        }
        typed.push_str(separators[8]);
        prop_assert_eq!(normalize_user_code(&typed), Some(code));
    }

    #[test]
    fn whatever_is_typed_reads_as_a_well_formed_code_or_none(text in "\\PC{0,12}") {
        if let Some(code) = normalize_user_code(&text) {
            prop_assert_eq!(code.len(), 8);
            prop_assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
            prop_assert_eq!(normalize_user_code(&code), Some(code));
        }
    }

    #[test]
    fn a_character_outside_the_alphabet_is_never_a_code(
        code in user_code(),
        bad in prop::sample::select(vec!['A', 'e', 'I', 'o', 'U', 'y', '0', '1', '_', '.', 'é']),
        at in 0usize..8,
    ) {
        // Vowels and digits are left out of the alphabet (RFC 8628 §6.1), so
        // a typo there cannot land on another valid code.
        let mut typed: Vec<char> = code.chars().collect();
        typed[at] = bad;
        let typed: String = typed.into_iter().collect();
        prop_assert_eq!(normalize_user_code(&typed), None);
    }

    #[test]
    fn a_redirect_uri_matches_only_as_registered(
        path in "/[a-z]{0,8}",
        host in "[a-z]{1,8}\\.example",
        suffix in "[a-zA-Z0-9/?#.%@:-]{1,6}",
        port in 1u16..,
    ) {
        let registered = vec![format!("https://{host}{path}")];
        prop_assert!(redirect_uri_matches(&registered, &registered[0]));
        // Anything added, or another port, is another URI (RFC 9700 §4.1.3).
        let extended = format!("{}{suffix}", registered[0]);
        prop_assert!(!redirect_uri_matches(&registered, &extended));
        let prefixed = format!("{suffix}{}", registered[0]);
        prop_assert!(!redirect_uri_matches(&registered, &prefixed));
        let ported = format!("https://{host}:{port}{path}");
        prop_assert!(!redirect_uri_matches(&registered, &ported));
        let upper = registered[0].to_uppercase();
        prop_assume!(upper != registered[0]);
        prop_assert!(!redirect_uri_matches(&registered, &upper));
    }

    #[test]
    fn a_loopback_redirect_uri_matches_on_any_port_and_nothing_else(
        path in "/[a-z]{0,8}",
        port in 1u16..,
        other_path in "/[a-z]{1,8}",
        v6 in any::<bool>(),
    ) {
        let host = if v6 { "[::1]" } else { "127.0.0.1" };
        let registered = vec![format!("http://{host}{path}")];
        // RFC 8252 §7.3: the port of a loopback IP literal may vary.
        let presented = format!("http://{host}:{port}{path}");
        prop_assert!(redirect_uri_matches(&registered, &presented));
        prop_assume!(other_path != path);
        let elsewhere = format!("http://{host}:{port}{other_path}");
        prop_assert!(!redirect_uri_matches(&registered, &elsewhere));
        // `localhost` is a name, not a loopback literal (RFC 8252 §8.3).
        let named = format!("http://localhost:{port}{path}");
        prop_assert!(!redirect_uri_matches(&registered, &named));
        let secure = format!("https://{host}:{port}{path}");
        prop_assert!(!redirect_uri_matches(&registered, &secure));
    }

    #[test]
    fn a_new_actor_nests_the_chain_it_extends(depth in 0usize..=MAX_ACTOR_DEPTH, name in "[a-z]{1,10}") {
        let earlier = chain(depth);
        match nest_actor(name.clone(), earlier.clone()) {
            Some(actor) => {
                // RFC 8693 §4.1: the current actor outermost, the earlier
                // chain intact inside it, never flattened.
                prop_assert!(depth < MAX_ACTOR_DEPTH);
                prop_assert_eq!(&actor.sub, &name);
                prop_assert_eq!(actor.act.map(|a| *a), earlier);
                prop_assert_eq!(actor_depth(chain(depth + 1).as_ref()), depth + 1);
            }
            None => prop_assert_eq!(depth, MAX_ACTOR_DEPTH),
        }
    }
}

#[test]
fn fresh_user_codes_are_normal_and_readable() {
    for _ in 0..1_000 {
        let code = new_user_code();
        assert_eq!(normalize_user_code(&code), Some(code.clone()));
        assert_eq!(display_user_code(&code).len(), 9);
    }
}
