//! `shmsock completions` and `shmsock man`: generated from the command line,
//! so they name every subcommand and option.

mod common;

use common::Env;

#[test]
fn completions_name_every_subcommand_in_each_shell() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = env.run(&["completions", shell], b"");
        assert_eq!(out.code(), 0, "{shell}: {}", out.stderr);
        let script = out.stdout_text();
        for word in ["keygen", "listen", "connect", "list", "bench", "server-key", "prune"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let bash = env.run(&["completions", "bash"], b"").stdout_text();
    assert!(bash.contains("complete -F _shmsock"), "{bash}");
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let env = Env::new();
    let out = env.run(&["completions", "tcsh"], b"");
    assert_eq!(out.code(), 2);
    assert!(out.stderr.contains("possible values"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
}

#[test]
fn man_prints_a_roff_page() {
    let env = Env::new();
    let out = env.run(&["man"], b"");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let page = out.stdout_text();
    assert!(page.contains(".TH shmsock 1"), "{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH SUBCOMMANDS"] {
        assert!(page.contains(section), "no {section} in {page}");
    }
    assert!(page.contains("Exit codes"), "the exit codes belong in the page");
}

#[test]
fn man_dir_writes_one_page_per_command() {
    let env = Env::new();
    std::fs::create_dir(env.path("man1")).unwrap();
    let out = env.run(&["man", "--dir", "man1"], b"");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    for page in ["shmsock.1", "shmsock-keygen.1", "shmsock-listen.1", "shmsock-connect.1", "shmsock-list.1"] {
        let text = std::fs::read_to_string(env.path("man1").join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}");
    }
    let listen = std::fs::read_to_string(env.path("man1/shmsock-listen.1")).unwrap();
    assert!(listen.contains("keep\\-open"), "the listen page documents its options");

    let missing = env.run(&["man", "--dir", "no/such/dir"], b"");
    assert_eq!(missing.code(), 1);
    assert!(missing.assert_one_error_line().contains("not a directory"));
}
