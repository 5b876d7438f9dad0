fn main() {
    kd_tui::malloc::keep_freed_memory();
    std::process::exit(kd_tui::cli::main());
}
