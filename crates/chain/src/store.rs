//! The block log: an append-only file of length- and CRC-framed RLP blocks, synced to disk before
//! any of a block's receipts is handed out, so an acknowledged transaction survives `kill -9`.
//!
//! A torn last record (the process died mid-write) is cut off when the log is opened: none of its
//! transactions were acknowledged. A damaged record anywhere else is refused, naming the block,
//! and `medledger verify` explains it.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use alloy::rlp::{Decodable, Encodable};

use crate::{Error, Genesis, Result, SealedBlock};

const FRAME_HEADER: usize = 8;
const GENESIS_FILE: &str = "genesis.txt";
const LOG_FILE: &str = "blocks.log";

#[derive(Debug)]
pub(crate) struct BlockLog {
    file: File,
    /// Byte offset where each stored block's frame begins (index = block number - 1).
    offsets: Vec<u64>,
    end: u64,
}

/// One frame that could not be read back.
#[derive(Debug)]
pub(crate) struct DamagedFrame {
    pub(crate) block: u64,
    pub(crate) reason: String,
}

/// What reading the log found: the good blocks in order, then the first damaged frame if any.
pub(crate) struct Scan {
    pub(crate) blocks: Vec<SealedBlock>,
    pub(crate) offsets: Vec<u64>,
    pub(crate) damaged: Option<(DamagedFrame, u64, bool)>,
}

pub(crate) fn genesis_path(dir: &Path) -> PathBuf {
    dir.join(GENESIS_FILE)
}

pub(crate) fn log_path(dir: &Path) -> PathBuf {
    dir.join(LOG_FILE)
}

/// Takes the data directory for this process alone: two nodes appending to one block log would
/// interleave their frames. The lock is held as long as the returned file is open.
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    std::fs::create_dir_all(dir)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Storage(format!(
            "{} is in use by another medledger process",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Copies the chain in `from` to `to` (which must not hold one): its genesis and block log,
/// synced. Takes `from`'s lock first, so no node appends meanwhile (a running `serve` or `node`
/// makes this fail, saying so).
pub fn copy_chain(from: &Path, to: &Path) -> Result<()> {
    let _held = lock_dir(from)?;
    if holds_chain(to) {
        return Err(Error::InvalidInput(format!(
            "{} holds a chain already",
            to.display()
        )));
    }
    std::fs::create_dir_all(to)?;
    for path in [log_path(from), genesis_path(from)] {
        let Some(name) = path.file_name() else {
            continue;
        };
        if path.exists() {
            let target = to.join(name);
            std::fs::copy(&path, &target)?;
            File::open(&target)?.sync_all()?;
        }
    }
    File::open(to)?.sync_all()?;
    Ok(())
}

/// Whether `dir` already holds a chain (its genesis is written when it is created).
pub fn holds_chain(dir: &Path) -> bool {
    genesis_path(dir).exists()
}

pub(crate) fn read_genesis(dir: &Path) -> Result<Option<Genesis>> {
    match std::fs::read_to_string(genesis_path(dir)) {
        Ok(text) => Genesis::from_text(&text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn write_genesis(dir: &Path, genesis: &Genesis) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join("genesis.txt.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(genesis.to_text().as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, genesis_path(dir))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Reads every frame of the log at `path`. `damaged` carries the first bad frame, its offset and
/// whether it is the last thing in the file (a torn write) or followed by more data (damage).
pub(crate) fn scan(path: &Path) -> Result<Scan> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let mut blocks = Vec::new();
    let mut offsets = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let number = blocks.len() as u64 + 1;
        let fail = |reason: String, tail: bool| {
            Some((
                DamagedFrame {
                    block: number,
                    reason,
                },
                pos as u64,
                tail,
            ))
        };
        if bytes.len() - pos < FRAME_HEADER {
            let damaged = fail("the frame header is cut short".into(), true);
            return Ok(Scan {
                blocks,
                offsets,
                damaged,
            });
        }
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
        let start = pos + FRAME_HEADER;
        if bytes.len() - start < len {
            let damaged = fail("the frame is cut short".into(), true);
            return Ok(Scan {
                blocks,
                offsets,
                damaged,
            });
        }
        let payload = &bytes[start..start + len];
        let is_tail = start + len == bytes.len();
        if crc32fast::hash(payload) != crc {
            let damaged = fail(
                "checksum mismatch: the stored bytes were altered".into(),
                is_tail,
            );
            return Ok(Scan {
                blocks,
                offsets,
                damaged,
            });
        }
        let mut slice = payload;
        match SealedBlock::decode(&mut slice) {
            Ok(block) if slice.is_empty() => {
                offsets.push(pos as u64);
                blocks.push(block);
            }
            Ok(_) => {
                let damaged = fail("trailing bytes after the block".into(), is_tail);
                return Ok(Scan {
                    blocks,
                    offsets,
                    damaged,
                });
            }
            Err(e) => {
                let damaged = fail(format!("cannot decode the block: {e}"), is_tail);
                return Ok(Scan {
                    blocks,
                    offsets,
                    damaged,
                });
            }
        }
        pos = start + len;
    }
    Ok(Scan {
        blocks,
        offsets,
        damaged: None,
    })
}

impl BlockLog {
    /// Opens (or creates) the log in `dir` and returns it with the blocks it holds.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Vec<SealedBlock>)> {
        std::fs::create_dir_all(dir)?;
        let path = log_path(dir);
        let Scan {
            blocks,
            offsets,
            damaged,
        } = scan(&path)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)?;
        let file_len = file.metadata()?.len();
        let end = match damaged {
            Some((frame, offset, true)) => {
                tracing::warn!(
                    block = frame.block,
                    reason = %frame.reason,
                    "dropping a torn last block from the log (it was never acknowledged)"
                );
                file.set_len(offset)?;
                file.sync_all()?;
                offset
            }
            Some((frame, _, false)) => {
                return Err(Error::Storage(format!(
                    "block {} in {} is damaged ({}); run `medledger verify` for a full report",
                    frame.block,
                    path.display(),
                    frame.reason
                )));
            }
            None => file_len,
        };
        Ok((BlockLog { file, offsets, end }, blocks))
    }

    /// Appends blocks, in order, and syncs them to disk with one sync before returning.
    pub(crate) fn append<'a>(
        &mut self,
        blocks: impl IntoIterator<Item = &'a SealedBlock>,
    ) -> Result<()> {
        let mut frames = Vec::new();
        let mut starts = Vec::new();
        for block in blocks {
            starts.push(self.end + frames.len() as u64);
            let mut payload = Vec::with_capacity(block.length());
            block.encode(&mut payload);
            let len = u32::try_from(payload.len())
                .map_err(|_| Error::Storage("block larger than 4 GiB".into()))?;
            frames.extend_from_slice(&len.to_le_bytes());
            frames.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            frames.extend_from_slice(&payload);
        }
        self.file.seek(SeekFrom::Start(self.end))?;
        self.file.write_all(&frames)?;
        self.file.sync_data()?;
        self.offsets.extend(starts);
        self.end += frames.len() as u64;
        Ok(())
    }

    /// Drops every block above `keep` (a block number), for `evm_revert`.
    pub(crate) fn truncate(&mut self, keep: u64) -> Result<()> {
        if let Some(&offset) = self.offsets.get(keep as usize) {
            self.file.set_len(offset)?;
            self.file.sync_all()?;
            self.offsets.truncate(keep as usize);
            self.end = offset;
        }
        Ok(())
    }
}
