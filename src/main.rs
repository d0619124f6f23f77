//! The `kasagi` binary; everything lives in the library's [`kasagi::cli`].

/// mimalloc instead of the system allocator: a tick frees and allocates many
/// small buffers (change sets, packets), where glibc's malloc was ≈ 10 % of a
/// room thread's profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kasagi::cli::main()
}
