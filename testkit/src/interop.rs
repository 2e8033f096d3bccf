//! Runs a helper script of `scripts/interop` with the interop Python (`INTEROP_PYTHON`, prepared
//! by scripts/test.sh), feeding it `input` on standard input.

use tokio::io::AsyncWriteExt as _;

/// The script's output; panics with a hint when Python cannot be started.
pub async fn pipe(script: &str, input: &[u8]) -> std::process::Output {
    let python = std::env::var("INTEROP_PYTHON").unwrap_or_else(|_| "python3".into());
    let path = format!("{}/../scripts/interop/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = tokio::process::Command::new(&python)
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} (scripts/test.sh prepares it): {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).await.expect("write to the script");
    drop(stdin);
    child.wait_with_output().await.expect("the script runs")
}
