fn main() {
    kd_tui::malloc::keep_freed_memory();
    let code = kd_tui::cli::main();
    // A detached job's log ends with how it ended: nobody waits for its exit status.
    if std::env::var_os(kd_tui::remote::detach::JOB_ENV).is_some() {
        eprintln!("kd-tui: job exited with code {code}");
    }
    std::process::exit(code);
}
