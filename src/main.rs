//! The `kasagi` binary; everything lives in the library's [`kasagi::cli`].

fn main() -> std::process::ExitCode {
    kasagi::cli::main()
}
