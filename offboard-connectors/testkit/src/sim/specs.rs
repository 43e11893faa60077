//! The vendors' official API descriptions the simulators are checked against, vendored in
//! this crate's `specs/` folder (provenance and licences in `specs/README.md`), so tests need
//! nothing outside the repository.

use std::path::PathBuf;

/// The folder holding the vendored descriptions (`specs/` of this crate).
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("specs")
}

/// The text of one vendored file, by its path under [`dir`] (e.g. `"okta/okta-offboarding.ops.txt"`).
///
/// # Panics
/// When the file is missing: a test that needs it cannot run without it.
pub fn read(rel: &str) -> String {
    let path = dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "vendored API description {} must be readable: {e}",
            path.display()
        )
    })
}

/// A vendored JSON description, parsed.
///
/// # Panics
/// When the file is missing or is not JSON.
pub fn json(rel: &str) -> serde_json::Value {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"))
}

/// The lines of a selection list (`*.ops.txt`, `*.methods.txt`), without comments and blanks.
pub fn selection(rel: &str) -> Vec<String> {
    read(rel)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_vendored_file_is_listed_in_the_readme() {
        let readme = super::read("README.md");
        let mut missing = Vec::new();
        for vendor in std::fs::read_dir(super::dir()).unwrap() {
            let vendor = vendor.unwrap().path();
            if !vendor.is_dir() {
                continue;
            }
            let mut stack = vec![vendor];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        stack.push(p);
                    } else {
                        let name = p.file_name().unwrap().to_string_lossy().into_owned();
                        if !readme.contains(&name) {
                            missing.push(name);
                        }
                    }
                }
            }
        }
        assert!(missing.is_empty(), "not in specs/README.md: {missing:?}");
    }
}
