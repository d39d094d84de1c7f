//! The shipped Dockerfile builds from a clean checkout: no Docker engine here, so its build
//! stage's COPY lines are replayed into an empty folder, and every target Cargo.toml declares
//! (or cargo discovers) must be there, with the lock file resolving (`cargo metadata --locked`).

use std::path::{Path, PathBuf};

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::copy(from, to).unwrap();
    }
}

#[test]
fn the_dockerfile_build_stage_has_every_file_cargo_needs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("examples/deploy/Dockerfile")).unwrap();
    let build_stage: Vec<&str> = dockerfile
        .lines()
        .skip_while(|l| !l.starts_with("FROM "))
        .skip(1)
        .take_while(|l| !l.starts_with("FROM "))
        .collect();
    let dir = crate::support::TestDir::new();
    let work = dir.path("docker-build");
    std::fs::create_dir_all(&work).unwrap();
    let mut copied = 0;
    for line in &build_stage {
        let Some(args) = line.strip_prefix("COPY ") else {
            continue;
        };
        assert!(
            !args.starts_with("--from"),
            "a COPY --from in the build stage: {line}"
        );
        let parts: Vec<&str> = args.split_whitespace().collect();
        let (dest, sources) = parts.split_last().unwrap();
        for s in sources {
            let target = if sources.len() > 1 || dest.ends_with('/') {
                work.join(dest).join(Path::new(s).file_name().unwrap())
            } else {
                work.join(dest)
            };
            copy(&root.join(s), &target);
            copied += 1;
        }
    }
    assert!(
        copied >= 3,
        "the build stage copies too little: {build_stage:?}"
    );
    // Every declared target's source file, as cargo resolves it.
    let manifest: toml::Table = std::fs::read_to_string(work.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let mut needed: Vec<PathBuf> = vec![PathBuf::from("src/lib.rs")];
    // The build script writes the environment the crate's `env!`s read.
    if root.join("build.rs").exists() {
        needed.push(PathBuf::from("build.rs"));
    }
    for (kind, folder) in [
        ("bin", "src/bin"),
        ("bench", "benches"),
        ("test", "tests"),
        ("example", "examples"),
    ] {
        for target in manifest
            .get(kind)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let name = target["name"].as_str().unwrap();
            let path = target
                .get("path")
                .and_then(|p| p.as_str())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(format!("{folder}/{name}.rs")));
            needed.push(path);
        }
    }
    for path in &needed {
        assert!(
            work.join(path).exists(),
            "the Docker build would fail: {} is declared but not copied",
            path.display()
        );
    }
    // The `#[path]` includes of the copied benches resolve too.
    for bench in std::fs::read_dir(work.join("benches")).unwrap() {
        let bench = bench.unwrap().path();
        if bench.extension().is_some_and(|e| e == "rs") {
            for line in std::fs::read_to_string(&bench).unwrap().lines() {
                if let Some(p) = line
                    .trim()
                    .strip_prefix("#[path = \"")
                    .and_then(|r| r.strip_suffix("\"]"))
                {
                    assert!(
                        work.join("benches").join(p).exists(),
                        "{}: {p} is not copied",
                        bench.display()
                    );
                }
            }
        }
    }
    assert!(
        dockerfile.contains(&format!(
            "org.opencontainers.image.version=\"{}\"",
            env!("CARGO_PKG_VERSION")
        )),
        "the image's version label is not Cargo.toml's"
    );
    let metadata = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(
        metadata.status.success(),
        "{}",
        String::from_utf8_lossy(&metadata.stderr)
    );
}

/// systemd reads `Documentation=` as a space-separated list of URIs and ignores (with a
/// warning) anything else: each entry must have one of the schemes it accepts.
#[test]
fn the_systemd_unit_documentation_entries_are_uris() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit =
        std::fs::read_to_string(root.join("examples/deploy/systemd/mtls-gateway.service")).unwrap();
    let entries: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Documentation="))
        .flat_map(str::split_whitespace)
        .collect();
    assert!(!entries.is_empty());
    for e in entries {
        let ok = ["http://", "https://", "file:", "info:", "man:"]
            .iter()
            .any(|s| e.starts_with(s) && e.len() > s.len());
        assert!(ok, "Documentation={e} is not a URI systemd accepts");
        if let Some(path) = e.strip_prefix("file:/usr/local/share/doc/mtls-gateway/") {
            assert!(
                root.join("docs").join(path).exists(),
                "{path} is not in docs/"
            );
        }
    }
}
