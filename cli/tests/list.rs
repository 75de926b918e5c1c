//! `shmsock list`: alive endpoints, and stale ones left by a killed server.

mod common;

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
