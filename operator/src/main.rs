//! The `kubegrid` command. All behaviour lives in the library; this only hands over.

fn main() -> std::process::ExitCode {
    kubegrid::cli::main()
}
