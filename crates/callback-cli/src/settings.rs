//! Where cbctl finds the server and its token: flags, then the
//! environment (`CBC_URL`, `CBC_TOKEN`; clap reads both), then a config
//! file (`--config`, `CBCTL_CONFIG`, or `~/.config/cbctl/config.toml`).

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
pub struct FileSettings {
    pub url: Option<String>,
    pub token: Option<String>,
}

pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("cbctl").join("config.toml"))
}

/// Reads the file; a file named on purpose must exist, the default one
/// may not.
pub fn read(path: Option<PathBuf>) -> Result<FileSettings, String> {
    let (path, required) = match path {
        Some(path) => (path, true),
        None => match default_path() {
            Some(path) => (path, false),
            None => return Ok(FileSettings::default()),
        },
    };
    if !required && !path.exists() {
        return Ok(FileSettings::default());
    }
    config::Config::builder()
        .add_source(config::File::from(path.clone()).format(config::FileFormat::Toml))
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}
