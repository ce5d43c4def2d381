//! Running one command over an SSH channel, streaming its stdin and stdout.

use std::path::PathBuf;

use russh::ChannelMsg;

use super::Connection;
use crate::error::Error;

/// How much of stderr is kept for error messages.
const STDERR_TAIL: usize = 4096;

/// One piece of a command's stdin; pieces are sent in order, then EOF.
#[derive(Debug, Clone)]
pub enum Input {
    /// Bytes in memory (a plan line).
    Bytes(Vec<u8>),
    /// A file streamed from disk (an agent binary, a package).
    File(PathBuf),
    /// A file streamed from disk from a byte offset on (the rest of a cut blob push).
    FileAt(PathBuf, u64),
    /// Nothing: stdin stays open until the value turns true (or its sender is gone). A
    /// peer of a distribution serves others until the engine ends its stdin this way.
    Hold(tokio::sync::watch::Receiver<bool>),
}

/// How a command ended.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    /// Exit status; None when the channel closed without one (the host went away).
    pub exit: Option<u32>,
    /// The last few KiB of stderr.
    pub stderr: String,
}

/// Opens a file to stream from `offset` on; errors name the file.
async fn open_at(path: &std::path::Path, offset: u64) -> Result<tokio::fs::File, russh::Error> {
    use tokio::io::AsyncSeekExt;
    let named = |e: std::io::Error| {
        russh::Error::IO(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        ))
    };
    let mut file = tokio::fs::File::open(path).await.map_err(named)?;
    if offset > 0 {
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(named)?;
    }
    Ok(file)
}

impl Connection {
    /// Runs `command` with `input` on its stdin, calling `on_line` for each stdout line as it
    /// arrives. Fails only when the channel cannot be used; a non-zero exit is in the output.
    pub async fn exec(
        &self,
        command: &str,
        input: Vec<Input>,
        mut on_line: impl FnMut(&str),
    ) -> Result<ExecOutput, Error> {
        let channel = {
            let handle = self.handle.lock().await;
            handle
                .channel_open_session()
                .await
                .map_err(|e| self.lost(e))?
        };
        channel
            .exec(true, command)
            .await
            .map_err(|e| self.lost(e))?;
        let (mut read, write) = channel.split();
        let host = self.target.host.clone();
        let writer = tokio::spawn(async move {
            for part in input {
                match part {
                    Input::Bytes(b) => write.data_bytes(b).await?,
                    Input::File(path) => write.data(open_at(&path, 0).await?).await?,
                    Input::FileAt(path, offset) => {
                        write.data(open_at(&path, offset).await?).await?
                    }
                    Input::Hold(mut until) => {
                        let _ = until.wait_for(|done| *done).await;
                    }
                }
            }
            write.eof().await
        });
        let mut out = ExecOutput::default();
        let mut pending: Vec<u8> = Vec::new();
        let mut stderr: Vec<u8> = Vec::new();
        while let Some(msg) = read.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    pending.extend_from_slice(&data);
                    while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=pos).collect();
                        on_line(String::from_utf8_lossy(&line[..line.len() - 1]).trim_end());
                    }
                }
                ChannelMsg::ExtendedData { data, .. } => {
                    stderr.extend_from_slice(&data);
                    if stderr.len() > 2 * STDERR_TAIL {
                        stderr.drain(..stderr.len() - STDERR_TAIL);
                    }
                }
                ChannelMsg::ExitStatus { exit_status } => out.exit = Some(exit_status),
                _ => {}
            }
        }
        if !pending.is_empty() {
            on_line(String::from_utf8_lossy(&pending).trim_end());
        }
        let start = stderr.len().saturating_sub(STDERR_TAIL);
        out.stderr = String::from_utf8_lossy(&stderr[start..]).into_owned();
        // The channel is closed: whatever stdin was not sent yet can never be read. A writer
        // still waiting for window space would wait forever on a dead host, so stop it.
        if !writer.is_finished() {
            writer.abort();
        }
        match writer.await {
            // The remote side may exit before reading all of stdin (a refused plan); that is
            // reported by the exit status, not as a transport failure.
            Ok(_) if out.exit.is_some() => Ok(out),
            Ok(Ok(())) => Ok(out),
            Err(e) if e.is_cancelled() => Ok(out),
            Ok(Err(e)) => Err(Error::ConnectionLost {
                host,
                reason: e.to_string(),
            }),
            Err(e) => Err(Error::ConnectionLost {
                host,
                reason: format!("stdin writer: {e}"),
            }),
        }
    }
}
