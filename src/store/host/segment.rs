//! A named shared-memory segment: a file in `/dev/shm` (a tmpfs: memory, not disk) that every
//! process of one machine maps by name. The first process creates and initialises it; the others
//! check that it was made for the same layout, capacity and limits, and map it.
//!
//! Creation is crash-safe: the file is initialised under an exclusive `flock`, and it is usable
//! only once its magic number is written, last. A creator killed half-way leaves no magic and
//! releases its lock (the kernel drops it with the process), so the next process to open the
//! name initialises it again.
//!
//! Lifetime: the segment outlives every process that maps it and is removed only when the app
//! says so ([`remove`]) or the machine restarts (tmpfs). Limits then survive rolling and full
//! restarts of the workers: a deploy does not hand every client a fresh budget. (Removing it when
//! the last user closes it was the alternative; a worker killed with `kill -9`, or a Python that
//! exits without running finalizers, never says it closed, so no count of users can be trusted.)

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// Written last when a segment is initialised: "seawallH".
const MAGIC: u64 = 0x7365_6177_616c_6c48;
/// The layout version: a segment of another version is refused, never read.
pub const VERSION: u32 = 1;
/// Bytes before the table: the header, the insertion locks and the registry of limit sets.
pub const HEADER_BYTES: usize = 16384;
/// Where the registry of limit sets starts, and the size of one record.
const RECORDS_AT: usize = 4096;
/// The bytes that describe one limit set (see [`super::record_of`]).
pub const RECORD_BYTES: usize = 128;
/// Limit sets one segment can hold.
pub const MAX_RECORDS: usize = (HEADER_BYTES - RECORDS_AT) / RECORD_BYTES;

/// One limit set as the registry keeps it.
pub type Record = [u8; RECORD_BYTES];

/// The header at the start of every segment.
#[repr(C)]
pub struct Header {
    /// [`MAGIC`] once initialised.
    magic: AtomicU64,
    version: u32,
    slot_bytes: u32,
    capacity: u64,
    /// The seed of the key hash, random per segment: a client cannot aim two keys at one slot.
    pub seed: [u64; 2],
    /// The SHA-256 of the build that made it: one arithmetic per segment.
    build: [u8; 32],
    /// Limit sets registered (each a kind of the table's slots).
    records: AtomicU64,
}

/// What a segment is made for: checked at every open.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Slots in the table (a power of two).
    pub capacity: u64,
    /// Bytes per slot, tag included.
    pub slot_bytes: u32,
    /// What made it (the seawall version): processes of another build refuse it.
    pub build: String,
}

impl Layout {
    /// The whole segment's size in bytes.
    pub fn bytes(&self) -> usize {
        HEADER_BYTES + self.capacity as usize * self.slot_bytes as usize
    }

    fn build_hash(&self) -> [u8; 32] {
        Sha256::digest(self.build.as_bytes()).into()
    }
}

/// A mapped segment.
pub struct Segment {
    map: MmapRaw,
    path: PathBuf,
}

/// A name's segment file.
///
/// ```
/// use seawall::store::host::segment::path_of;
///
/// assert!(path_of("api").unwrap().ends_with("seawall-api"));
/// assert!(path_of("../etc").is_err());
/// assert!(path_of("").is_err());
/// ```
pub fn path_of(name: &str) -> Result<PathBuf, Error> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        return Err(Error::invalid(
            "store",
            format!(
                "host://NAME takes a name of 1 to 100 letters, digits, '-', '_' and '.' (not \
                 starting with '.'; no '/'), got {name:?}"
            ),
        ));
    }
    let shm = PathBuf::from("/dev/shm");
    let dir = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    Ok(dir.join(format!("seawall-{name}")))
}

fn system(path: &std::path::Path, what: &str, e: std::io::Error) -> Error {
    let permission = e.kind() == ErrorKind::PermissionDenied;
    let hint = if permission {
        " (the segment belongs to another user, or this user may not write there: run the \
         workers as one user, or pick another name)"
    } else {
        ""
    };
    Error::System {
        message: format!("host store: cannot {what} {}: {e}{hint}", path.display()),
        permission,
    }
}

/// Opens (or creates, for this user only) a file of shared memory.
pub(crate) fn open_shared(path: &std::path::Path) -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| system(path, "open", e))
}

/// Sizes a new segment file and reserves its memory now: a tmpfs that is too small (Docker's
/// `/dev/shm` is 64 MiB unless `--shm-size` says more) is an error here, not a SIGBUS later when
/// a slot is first written.
fn reserve(file: &File, path: &std::path::Path, bytes: usize) -> Result<(), Error> {
    // SAFETY: posix_fallocate on an open descriptor has no memory-safety requirement.
    let r = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, bytes as libc::off_t) };
    if r == 0 {
        return Ok(());
    }
    let _ = file.set_len(0);
    let e = std::io::Error::from_raw_os_error(r);
    if r == libc::ENOSPC {
        return Err(Error::System {
            message: format!(
                "host store: no room for {} MiB in {} (give a smaller max_keys, or more room:                  docker run --shm-size): {e}",
                bytes.div_ceil(1 << 20),
                path.parent().map_or_else(String::new, |p| p.display().to_string())
            ),
            permission: false,
        });
    }
    Err(system(path, "reserve memory for", e))
}

/// Holds an exclusive `flock` on a file while alive.
struct Locked<'a>(&'a File);

impl<'a> Locked<'a> {
    fn new(file: &'a File) -> std::io::Result<Self> {
        // SAFETY: flock on an open descriptor has no memory-safety requirement.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Locked(file))
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

impl Segment {
    /// Opens the segment `name`, creating it for `layout` if there is none, and registers
    /// `records` (limit sets) in it: each one's index, the same in every process that registers
    /// the same set. An existing segment made for another layout version, build or capacity is
    /// an error naming the difference (its counts are never read with another meaning).
    pub fn open(
        name: &str,
        layout: &Layout,
        records: &[Record],
    ) -> Result<(Self, Vec<u16>), Error> {
        let path = path_of(name)?;
        let file = open_shared(&path)?;
        let _lock = Locked::new(&file).map_err(|e| system(&path, "lock", e))?;
        let len = file
            .metadata()
            .map_err(|e| system(&path, "read the size of", e))?
            .len();
        let fresh = len == 0;
        if fresh {
            reserve(&file, &path, layout.bytes())?;
        } else if len < HEADER_BYTES as u64 {
            return Err(Self::foreign(name, &path, "it is too small to be one"));
        }
        let map = MmapOptions::new()
            .map_raw(&file)
            .map_err(|e| system(&path, "map", e))?;
        let mut segment = Segment { map, path };
        let magic = segment.header().magic.load(Ordering::Acquire);
        if magic != 0 && magic != MAGIC {
            return Err(Self::foreign(
                name,
                &segment.path,
                "its header is another's",
            ));
        }
        // No magic: new, or half-made by a creator that died before writing it (the file was
        // all zeros until then).
        if fresh || magic == 0 {
            if !fresh && len != layout.bytes() as u64 {
                // Half-made by a creator that died, for another size: make it afresh.
                file.set_len(0)
                    .map_err(|e| system(&segment.path, "size", e))?;
                reserve(&file, &segment.path, layout.bytes())?;
                segment.map = MmapOptions::new()
                    .map_raw(&file)
                    .map_err(|e| system(&segment.path, "map", e))?;
            }
            segment.initialise(layout);
        } else {
            segment.check(name, layout)?;
        }
        // Still under the file lock: no other process registers meanwhile.
        let kinds = records
            .iter()
            .map(|r| segment.register(name, r))
            .collect::<Result<_, Error>>()?;
        Ok((segment, kinds))
    }

    fn record_ptr(&self, i: usize) -> *mut u8 {
        // SAFETY: i < MAX_RECORDS keeps it inside the header.
        unsafe { self.map.as_mut_ptr().add(RECORDS_AT + i * RECORD_BYTES) }
    }

    /// The index of `record`, registering it if it is new. Only under the file lock.
    fn register(&self, name: &str, record: &Record) -> Result<u16, Error> {
        let n = self.header().records.load(Ordering::Acquire) as usize;
        for i in 0..n.min(MAX_RECORDS) {
            if self.record(i as u16).as_ref() == Some(record) {
                return Ok(i as u16);
            }
        }
        if n >= MAX_RECORDS {
            return Err(Error::invalid(
                "limits",
                format!(
                    "host://{name} already holds {MAX_RECORDS} different limit sets, its most; \
                     use another name for these"
                ),
            ));
        }
        // SAFETY: a record slot not yet published; we hold the file lock.
        unsafe { std::ptr::copy_nonoverlapping(record.as_ptr(), self.record_ptr(n), RECORD_BYTES) };
        self.header().records.store(n as u64 + 1, Ordering::Release);
        Ok(n as u16)
    }

    /// The limit set registered as `kind`, if there is one.
    pub fn record(&self, kind: u16) -> Option<Record> {
        let n = self.header().records.load(Ordering::Acquire) as usize;
        let i = usize::from(kind);
        if i >= n.min(MAX_RECORDS) {
            return None;
        }
        let mut out = [0u8; RECORD_BYTES];
        // SAFETY: published records are never written again.
        unsafe {
            std::ptr::copy_nonoverlapping(self.record_ptr(i), out.as_mut_ptr(), RECORD_BYTES)
        };
        Some(out)
    }

    fn foreign(name: &str, path: &std::path::Path, why: &str) -> Error {
        Error::invalid(
            "store",
            format!(
                "host://{name}: {} is not a seawall segment of this version ({why}); remove it \
                 (seawall.host.remove({name:?})) when no worker uses it, or pick another name",
                path.display()
            ),
        )
    }

    fn initialise(&self, layout: &Layout) {
        // Only the holder of the file lock gets here; nobody maps a segment without its magic.
        let mut seed = [0u8; 16];
        let random = std::fs::read("/proc/sys/kernel/random/uuid").unwrap_or_default();
        let digest = Sha256::digest(
            [
                random.as_slice(),
                &std::process::id().to_le_bytes(),
                &crate::clock::Clock::now(&crate::clock::SystemClock).to_le_bytes(),
            ]
            .concat(),
        );
        seed.copy_from_slice(&digest[..16]);
        // SAFETY: the map is at least HEADER_BYTES long, page-aligned, and no other process
        // reads the header before the magic is set (they wait on the file lock we hold).
        unsafe {
            let h = self.map.as_mut_ptr() as *mut Header;
            (*h).version = VERSION;
            (*h).slot_bytes = layout.slot_bytes;
            (*h).capacity = layout.capacity;
            (*h).seed = [
                u64::from_le_bytes(seed[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(seed[8..].try_into().expect("8 bytes")),
            ];
            (*h).build = layout.build_hash();
            (*h).records = AtomicU64::new(0);
            // The locks, the registry and the table: all zero (a new file is), or zeroed again
            // after a creator died.
            let header = std::mem::size_of::<Header>();
            std::ptr::write_bytes(
                self.map.as_mut_ptr().add(header),
                0,
                layout.bytes() - header,
            );
        }
        self.header().magic.store(MAGIC, Ordering::Release);
    }

    fn check(&self, name: &str, layout: &Layout) -> Result<(), Error> {
        let h = self.header();
        if h.version != VERSION || h.slot_bytes != layout.slot_bytes {
            return Err(Self::foreign(
                name,
                &self.path,
                &format!("layout version {}, this seawall's is {VERSION}", h.version),
            ));
        }
        if self.map.len() != layout.bytes() || h.capacity != layout.capacity {
            return Err(Error::invalid(
                "max_keys",
                format!(
                    "host://{name} was made with room for {} slots; these limits ask for {} \
                     (give every worker the same max_keys, or remove the segment when no worker \
                     uses it)",
                    h.capacity, layout.capacity
                ),
            ));
        }
        if h.build != layout.build_hash() {
            return Err(Self::foreign(
                name,
                &self.path,
                &format!("made by another seawall build than {}", layout.build),
            ));
        }
        Ok(())
    }

    /// The header.
    pub fn header(&self) -> &Header {
        // SAFETY: the map starts page-aligned and holds at least HEADER_BYTES; Header is
        // repr(C) with atomics or fields written only before the magic is published.
        unsafe { &*(self.map.as_ptr() as *const Header) }
    }

    /// The table after the header, as `words` 64-bit atomics.
    pub fn words(&self) -> &[AtomicU64] {
        let words = (self.map.len() - HEADER_BYTES) / 8;
        // SAFETY: in bounds, 8-aligned (HEADER_BYTES is), and only ever accessed atomically.
        unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(HEADER_BYTES) as *const AtomicU64,
                words,
            )
        }
    }

    /// Where it lives.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Bytes mapped.
    pub fn bytes(&self) -> usize {
        self.map.len()
    }
}

/// Removes the segment `name`; whether there was one. Processes that still map it keep their
/// copy (it is freed when the last unmaps it); new ones then make a new segment, so remove a
/// segment only when no worker uses it.
pub fn remove(name: &str) -> Result<bool, Error> {
    let path = path_of(name)?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(system(&path, "remove", e)),
    }
}
