//! kd-tui's per-user folders, where the XDG base-directory convention puts them: the cache
//! (`data::cache_root`) and the runs folder (`run::root`).

use std::path::PathBuf;

/// The folder an environment variable names, if it is set and not empty.
pub fn from_env(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// kd-tui's folder under an XDG base directory: `$xdg_var/kd-tui`, else
/// `$HOME/home_default/kd-tui` (`"XDG_CACHE_HOME"`, `".cache"`); none without either.
pub fn xdg(xdg_var: &str, home_default: &str) -> Option<PathBuf> {
    from_env(xdg_var)
        .or_else(|| from_env("HOME").map(|h| h.join(home_default)))
        .map(|base| base.join("kd-tui"))
}
