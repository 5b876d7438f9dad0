fn main() {
    std::process::exit(kd_tui::cli::main());
}
