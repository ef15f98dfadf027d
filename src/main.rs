fn main() -> std::process::ExitCode {
    loadctl::cli::main()
}
