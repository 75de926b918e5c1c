//! `shmsock list`: alive endpoints, and stale ones left by a killed server.

mod common;

use std::os::unix::fs::MetadataExt;

use common::{unique, Env};

fn entry(env: &Env, name: &str) -> serde_json::Value {
    let out = env.run(&["list", "--json"], b"");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).expect("list --json is JSON");
    all.as_array()
        .expect("an array")
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} not in {all}"))
}

#[test]
fn list_shows_alive_then_stale_after_sigkill() {
    let env = Env::new();
    env.keygen("server.key");
    let name = unique("listed");
    let mut listen = env.spawn(&["listen", &name, "-i", "server.key", "-d"]);
    listen.wait_stderr("listening on");

    let alive = entry(&env, &name);
    assert_eq!(alive["alive"], true, "{alive}");
    assert_eq!(alive["state"], "alive", "{alive}");
    assert_eq!(alive["pid"], listen.id(), "{alive}");
    assert!(alive["socket"].as_str().unwrap().starts_with(env.runtime().to_str().unwrap()), "{alive}");
    let table = env.run(&["list"], b"").stdout_text();
    let row = table.lines().find(|l| l.starts_with(&name)).expect("a row");
    assert!(row.ends_with("alive") && row.contains(&listen.id().to_string()), "{table}");

    listen.signal(libc::SIGKILL);
    let _ = listen.finish();
    let stale = entry(&env, &name);
    assert_eq!(stale["alive"], false, "{stale}");
    assert_eq!(stale["state"], "stale", "{stale}");
    let table = env.run(&["list"], b"").stdout_text();
    assert!(table.lines().any(|l| l.starts_with(&name) && l.ends_with("stale")), "{table}");

    // A new server reclaims the stale name.
    let mut again = env.spawn(&["listen", &name, "-i", "server.key", "-d"]);
    again.wait_stderr("listening on");
    assert_eq!(entry(&env, &name)["alive"], true);
}

#[test]
fn an_empty_runtime_directory_lists_nothing() {
    let env = Env::new();
    let out = env.run(&["list", "--json"], b"");
    assert_eq!(out.code(), 0);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(), serde_json::json!([]));
}

/// The endpoint names in `list --json`.
fn names(env: &Env) -> Vec<String> {
    let out = env.run(&["list", "--json"], b"");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    all.as_array().expect("an array").iter().filter_map(|e| e["name"].as_str().map(str::to_string)).collect()
}

#[test]
fn prune_removes_a_dead_endpoint_and_keeps_a_live_one() {
    let env = Env::new();
    let public = env.keygen("server.key");
    let live = unique("live");
    let dead = unique("dead");
    let mut serving = env.spawn(&["listen", &live, "-i", "server.key", "-d"]);
    serving.wait_stderr("listening on");
    let mut killed = env.spawn(&["listen", &dead, "-i", "server.key", "-d"]);
    killed.wait_stderr("listening on");
    killed.signal(libc::SIGKILL);
    let _ = killed.finish();
    assert_eq!(entry(&env, &dead)["state"], "stale");

    let out = env.run(&["list", "--prune"], b"");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(out.stdout_text(), format!("pruned {dead}\n"));
    let left = names(&env);
    assert!(!left.contains(&dead), "{left:?}");
    assert!(!env.runtime().join(format!("{dead}.lock")).exists());
    assert!(!env.runtime().join(format!("{dead}.sock")).exists());
    // The live server is untouched: still listed alive, and still serving.
    assert_eq!(entry(&env, &live)["alive"], true);
    let sent = env.run(&["connect", &live, "-s", &public, "--wait", "30"], b"still here\n");
    assert_eq!(sent.code(), 0, "{}", sent.stderr);
    let serving = serving.finish();
    assert_eq!(serving.stdout_text(), "still here\n");

    // Nothing stale: nothing printed.
    let again = env.run(&["list", "--prune"], b"");
    assert_eq!(again.code(), 0, "{}", again.stderr);
    assert!(again.stdout.is_empty(), "{}", again.stdout_text());
}

#[test]
fn prune_keeps_files_of_another_user() {
    // Only root can give a file to another user.
    if rustix::process::geteuid().as_raw() != 0 {
        return;
    }
    let env = Env::new();
    let name = unique("foreign");
    let lock = env.runtime().join(format!("{name}.lock"));
    std::fs::write(&lock, "1\n").unwrap();
    rustix::fs::chown(&lock, Some(rustix::process::Uid::from_raw(4242)), None).unwrap();
    assert_eq!(entry(&env, &name)["state"], "stale");
    let out = env.run(&["list", "--prune"], b"");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout_text());
    assert!(out.stderr.contains("belong to another user"), "{}", out.stderr);
    assert_eq!(std::fs::metadata(&lock).unwrap().uid(), 4242);
}

#[test]
fn prune_and_json_do_not_mix() {
    let env = Env::new();
    assert_eq!(env.run(&["list", "--prune", "--json"], b"").code(), 2);
}
