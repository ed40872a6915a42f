//! The optional on-disk store of the HTTP cache: a [redb] file that survives a restart. The
//! robots.txt guard keeps its per-host records in a store of its own (another file), with host
//! names as keys.
//!
//! # Layout
//!
//! Three redb tables, always changed together in one write transaction:
//!
//! - `records`: key → the encoded record (every stored variant of the key), raw bytes.
//! - `record_sizes`: key → (write sequence number, counted bytes).
//! - `write_order`: write sequence number → key. Its first entry is the least recently written
//!   key, the next one eviction removes.
//!
//! Keys and bytes are counted at open from `record_sizes` alone (a few bytes per key).
//!
//! # Record encoding
//!
//! One value of `records` holds all the variants of a key:
//!
//! ```text
//! [format version: u8] [head length n: u32 little-endian] [head: n bytes of JSON] [bodies]
//! ```
//!
//! The head is serde JSON (`Head`): per variant the status, every header field in
//! [`HeaderMap`] iteration order (repeated names kept, each value as a JSON string when it is
//! UTF-8 and as an array of bytes otherwise), the body's length, `request_time` and
//! `response_time` (seconds and nanoseconds since `UNIX_EPOCH`), and the `varied` pairs. The
//! bodies follow the head raw, in variant order, so a body costs no JSON escaping and decoding
//! slices them out of the record without copying. A record whose version byte is not
//! `FORMAT_VERSION`, or that does not decode exactly (bad JSON, invalid status or field,
//! lengths that do not add up to the record's), is a miss and is removed.
//!
//! # Bytes counted
//!
//! A key counts the encoded length of its record plus the key's length: what is actually
//! written, not [`StoredResponse::weight`]. The file itself is larger (B-tree pages, free pages
//! kept for reuse; redb shrinks the file at a commit when it can).
//!
//! # Cost
//!
//! Every change ([`DiskStore::put`], [`DiskStore::remove`], and removing an undecodable record
//! found by a read) is one write transaction committed with redb's default durability
//! (`Durability::Immediate`): the caller's thread waits for an `fsync`, typically milliseconds,
//! more on slow disks. Writes are serialized; reads run concurrently with them and with each
//! other. The store is blocking: call it from `spawn_blocking`, and do not make a response wait
//! for a `put`.
//!
//! [`DiskStore::open`] reads the whole file once to verify redb's page checksums (about 0.2 s
//! for 270 MB from the page cache; disk speed when cold), because redb does not check them on
//! reads and panics, or even aborts, on some damaged pages: a damaged file is a
//! [`DiskError::Damaged`] at open instead. A panic of redb during the open itself (it has some
//! on damaged headers) is caught and reported the same way. After a crash redb also repairs the
//! file during the open, another read of the whole file.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable, Table, TableDefinition};
use serde::{Deserialize, Serialize};

use super::entry::StoredResponse;

/// key → encoded record.
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
/// key → (write sequence number, counted bytes).
const SIZES: TableDefinition<&str, (u64, u64)> = TableDefinition::new("record_sizes");
/// write sequence number → key.
const WRITE_ORDER: TableDefinition<u64, &str> = TableDefinition::new("write_order");

/// The first byte of every record. Another value decodes as a miss.
const FORMAT_VERSION: u8 = 1;
/// Version byte and head length.
const PREFIX_LEN: usize = 5;
/// redb's own page cache. The memory cache sits in front of this store, so it is kept small
/// (redb's default is 1 GiB).
const REDB_CACHE_BYTES: usize = 32 << 20;
/// redb refuses values over 3 GiB; a record (key and value) larger than this is not stored.
const MAX_RECORD_BYTES: u64 = 3 << 30;

/// A redb file of cache entries: key -> the stored variants of that key.
pub struct DiskStore {
    db: Database,
    path: PathBuf,
    max_bytes: u64,
    /// Held for the whole of every write transaction, so that `totals` matches what is committed.
    write: Mutex<Totals>,
    /// Copies of `write`'s totals, readable without waiting for a write.
    len: AtomicU64,
    bytes: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    len: u64,
    bytes: u64,
    next_seq: u64,
}

/// Why the store could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error(
        "cache file {path} is in use by another process (another gatehouse with the same cache path?)"
    )]
    InUse { path: PathBuf },
    #[error("cannot create or open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cache file {path} is damaged: {reason}; delete it to start empty")]
    Damaged { path: PathBuf, reason: String },
    #[error("cache file {path}: {source}")]
    Storage { path: PathBuf, source: redb::Error },
}

impl fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskStore")
            .field("path", &self.path)
            .field("max_bytes", &self.max_bytes)
            .field("len", &self.len())
            .field("bytes", &self.bytes())
            .finish_non_exhaustive()
    }
}

impl DiskStore {
    /// Opens (creating the file if missing; the parent directory must exist) with a bound on
    /// stored bytes. When the file holds more than `max_bytes` (the bound was lowered), the
    /// least recently written keys are evicted now.
    ///
    /// Reads the whole file once to verify redb's page checksums: a damaged file is an error
    /// here rather than a panic later.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Self, DiskError> {
        // redb panics on some kinds of damage it meets while opening (before any checksum is
        // checked): that is a damaged file too, not a reason to take the process down.
        let (db, totals) = panic::catch_unwind(AssertUnwindSafe(|| open_db(path, max_bytes)))
            .unwrap_or_else(|payload| {
                Err(DiskError::Damaged {
                    path: path.to_owned(),
                    reason: format!("reading it failed: {}", panic_message(payload.as_ref())),
                })
            })?;
        Ok(Self {
            db,
            path: path.to_owned(),
            max_bytes,
            len: AtomicU64::new(totals.len),
            bytes: AtomicU64::new(totals.bytes),
            write: Mutex::new(totals),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored variants of `key`, or None. Records that fail to decode (other format
    /// version, damage) are removed and reported as None.
    pub fn get(&self, key: &str) -> Result<Option<Vec<StoredResponse>>, DiskError> {
        let Some(raw) = self.read_raw(key).map_err(|error| self.error(error))? else {
            return Ok(None);
        };
        match decode(&raw) {
            Ok(variants) => Ok(Some(variants)),
            Err(error) => {
                self.report_undecodable(key, &error);
                self.remove_undecodable(&[(key.to_owned(), raw)])?;
                Ok(None)
            }
        }
    }

    /// Replaces the variants of `key` (an empty slice removes the key, and returns Ok(true)).
    /// Then evicts least-recently-written keys until the total is <= max_bytes. A record larger
    /// than max_bytes is not stored (Ok(false)), and the variants stored before for `key` are
    /// removed, since the caller meant to replace them. Ok(true) when stored.
    pub fn put(&self, key: &str, variants: &[StoredResponse]) -> Result<bool, DiskError> {
        if variants.is_empty() {
            self.remove(key)?;
            return Ok(true);
        }
        let Some(record) = Encoded::new(variants) else {
            self.remove(key)?;
            return Ok(false);
        };
        let size = (record.len() as u64).saturating_add(key.len() as u64);
        if size > self.max_bytes || size > MAX_RECORD_BYTES {
            self.remove(key)?;
            return Ok(false);
        }
        let max_bytes = self.max_bytes;
        self.write(|tables, totals| {
            remove_key(tables, totals, key)?;
            let seq = totals.next_seq;
            totals.next_seq += 1;
            {
                let mut value = tables.records.insert_reserve(key, record.len())?;
                record.write_to(value.as_mut());
            }
            tables.sizes.insert(key, (seq, size))?;
            tables.order.insert(seq, key)?;
            totals.len += 1;
            totals.bytes = totals.bytes.saturating_add(size);
            evict(tables, totals, max_bytes)?;
            Ok(((), true))
        })?;
        Ok(true)
    }

    pub fn remove(&self, key: &str) -> Result<(), DiskError> {
        self.write(|tables, totals| Ok(((), remove_key(tables, totals, key)?)))
    }

    /// Every key with its variants (the robots.txt guard loads all its hosts at startup); skips
    /// undecodable records, and removes them. Reads every record: not for the HTTP cache's
    /// store.
    pub fn entries(&self) -> Result<Vec<(String, Vec<StoredResponse>)>, DiskError> {
        let raw = self.read_all().map_err(|error| self.error(error))?;
        let mut entries = Vec::with_capacity(raw.len());
        let mut undecodable = Vec::new();
        for (key, record) in raw {
            match decode(&record) {
                Ok(variants) => entries.push((key, variants)),
                Err(error) => {
                    self.report_undecodable(&key, &error);
                    undecodable.push((key, record));
                }
            }
        }
        if !undecodable.is_empty() {
            self.remove_undecodable(&undecodable)?;
        }
        Ok(entries)
    }

    /// Keys currently stored (kept in memory, updated on put/remove/evict; computed at open).
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes currently stored: per key, its encoded record's length plus the key's length.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn read_raw(&self, key: &str) -> Result<Option<Bytes>, redb::Error> {
        let txn = self.db.begin_read()?;
        let records = txn.open_table(RECORDS)?;
        let raw = records
            .get(key)?
            .map(|value| Bytes::copy_from_slice(value.value()));
        Ok(raw)
    }

    fn read_all(&self) -> Result<Vec<(String, Bytes)>, redb::Error> {
        let txn = self.db.begin_read()?;
        let records = txn.open_table(RECORDS)?;
        let mut all = Vec::new();
        for item in records.iter()? {
            let (key, value) = item?;
            all.push((
                key.value().to_owned(),
                Bytes::copy_from_slice(value.value()),
            ));
        }
        Ok(all)
    }

    /// Removes each key whose record is still the undecodable one that was read (a put may
    /// have replaced it since).
    fn remove_undecodable(&self, records: &[(String, Bytes)]) -> Result<(), DiskError> {
        self.write(|tables, totals| {
            let mut changed = false;
            for (key, raw) in records {
                let unchanged = tables
                    .records
                    .get(key.as_str())?
                    .is_some_and(|value| value.value() == raw.as_ref());
                if unchanged {
                    changed |= remove_key(tables, totals, key)?;
                }
            }
            Ok(((), changed))
        })
    }

    /// Runs `change` in a write transaction; commits it when `change` says it changed
    /// something, then publishes the new totals.
    fn write<T>(
        &self,
        change: impl FnOnce(&mut Tables<'_>, &mut Totals) -> Result<(T, bool), redb::Error>,
    ) -> Result<T, DiskError> {
        let mut current = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let mut totals = *current;
        let run = || -> Result<T, redb::Error> {
            let txn = self.db.begin_write()?;
            let (out, changed) = {
                let mut tables = Tables::open(&txn)?;
                change(&mut tables, &mut totals)?
            };
            if changed {
                // Durability::Immediate (the default): one fsync per commit.
                txn.commit()?;
            } else {
                txn.abort()?;
            }
            Ok(out)
        };
        let out = run().map_err(|error| self.error(error))?;
        *current = totals;
        self.len.store(totals.len, Ordering::Relaxed);
        self.bytes.store(totals.bytes, Ordering::Relaxed);
        Ok(out)
    }

    fn report_undecodable(&self, key: &str, error: &DecodeError) {
        match error {
            DecodeError::OtherVersion(version) => tracing::debug!(
                path = %self.path.display(),
                key,
                version,
                "removing a cache record of another format version"
            ),
            DecodeError::Damaged(reason) => tracing::warn!(
                path = %self.path.display(),
                key,
                %reason,
                "removing a damaged cache record"
            ),
        }
    }

    fn error(&self, error: redb::Error) -> DiskError {
        classify(&self.path, error)
    }
}

fn open_db(path: &Path, max_bytes: u64) -> Result<(Database, Totals), DiskError> {
    let mut db = Database::builder()
        .set_cache_size(REDB_CACHE_BYTES)
        .create(path)
        .map_err(|error| open_error(path, error))?;
    // redb checks page checksums only here (and in its repair after an unclean shutdown), and
    // panics, or even aborts, on some damaged pages it reads later.
    match db.check_integrity() {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            path = %path.display(),
            "cache file was damaged and has been repaired; some entries may be lost"
        ),
        Err(error) => return Err(open_error(path, error)),
    }
    let totals = init(&db, max_bytes).map_err(|error| classify(path, error))?;
    Ok((db, totals))
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(message) = payload.downcast_ref::<&str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else {
        "redb panicked"
    }
}

/// Creates the tables if missing, counts what is stored, and evicts down to `max_bytes`.
fn init(db: &Database, max_bytes: u64) -> Result<Totals, redb::Error> {
    let txn = db.begin_write()?;
    let totals = {
        let mut tables = Tables::open(&txn)?;
        let mut totals = Totals::default();
        for item in tables.sizes.iter()? {
            let (_, value) = item?;
            let (_, size) = value.value();
            totals.len += 1;
            totals.bytes = totals.bytes.saturating_add(size);
        }
        totals.next_seq = match tables.order.last()? {
            Some((seq, _)) => seq.value().saturating_add(1),
            None => 0,
        };
        evict(&mut tables, &mut totals, max_bytes)?;
        totals
    };
    txn.commit()?;
    Ok(totals)
}

struct Tables<'txn> {
    records: Table<'txn, &'static str, &'static [u8]>,
    sizes: Table<'txn, &'static str, (u64, u64)>,
    order: Table<'txn, u64, &'static str>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn redb::WriteTransaction) -> Result<Self, redb::Error> {
        Ok(Self {
            records: txn.open_table(RECORDS)?,
            sizes: txn.open_table(SIZES)?,
            order: txn.open_table(WRITE_ORDER)?,
        })
    }
}

/// Removes `key` from the three tables; whether anything was there.
fn remove_key(
    tables: &mut Tables<'_>,
    totals: &mut Totals,
    key: &str,
) -> Result<bool, redb::Error> {
    let had_record = tables.records.remove(key)?.is_some();
    let old = tables.sizes.remove(key)?.map(|value| value.value());
    if let Some((seq, size)) = old {
        tables.order.remove(seq)?;
        totals.len = totals.len.saturating_sub(1);
        totals.bytes = totals.bytes.saturating_sub(size);
    }
    Ok(had_record || old.is_some())
}

/// Removes least recently written keys until at most `max_bytes` are stored.
fn evict(tables: &mut Tables<'_>, totals: &mut Totals, max_bytes: u64) -> Result<(), redb::Error> {
    while totals.bytes > max_bytes {
        let Some((seq, key)) = tables
            .order
            .pop_first()?
            .map(|(seq, key)| (seq.value(), key.value().to_owned()))
        else {
            break;
        };
        let current = tables.sizes.get(key.as_str())?.map(|value| value.value());
        // A write-order entry that `record_sizes` does not agree with is stale: drop it alone.
        let Some((current_seq, size)) = current else {
            continue;
        };
        if current_seq != seq {
            continue;
        }
        tables.sizes.remove(key.as_str())?;
        tables.records.remove(key.as_str())?;
        totals.len = totals.len.saturating_sub(1);
        totals.bytes = totals.bytes.saturating_sub(size);
    }
    Ok(())
}

/// The error of `Database::create`.
fn open_error(path: &Path, error: DatabaseError) -> DiskError {
    match error {
        DatabaseError::Storage(redb::StorageError::Io(source))
            if !matches!(
                source.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ) =>
        {
            DiskError::Open {
                path: path.to_owned(),
                source,
            }
        }
        other => classify(path, other.into()),
    }
}

fn classify(path: &Path, error: redb::Error) -> DiskError {
    let path = path.to_owned();
    match error {
        redb::Error::DatabaseAlreadyOpen => DiskError::InUse { path },
        redb::Error::Corrupted(reason) => DiskError::Damaged { path, reason },
        redb::Error::UpgradeRequired(version) => DiskError::Damaged {
            path,
            reason: format!("it is in redb file format {version}, which this build cannot read"),
        },
        redb::Error::RepairAborted => DiskError::Damaged {
            path,
            reason: "its repair after an unclean shutdown failed".to_owned(),
        },
        error @ (redb::Error::TableTypeMismatch { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_)
        | redb::Error::TypeDefinitionChanged { .. }) => DiskError::Damaged {
            path,
            reason: format!("{error} (not a gatehouse cache file?)"),
        },
        redb::Error::Io(source)
            if matches!(
                source.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ) =>
        {
            DiskError::Damaged {
                path,
                reason: source.to_string(),
            }
        }
        source => DiskError::Storage { path, source },
    }
}

// === Record encoding ===

/// The JSON head of a record.
#[derive(Serialize, Deserialize)]
struct Head<'a> {
    variants: Vec<VariantHead<'a>>,
}

#[derive(Serialize, Deserialize)]
struct VariantHead<'a> {
    status: u16,
    headers: Vec<(Cow<'a, str>, FieldValue<'a>)>,
    body_len: u64,
    request_time: Timestamp,
    response_time: Timestamp,
    varied: Vec<(Cow<'a, str>, Option<FieldValue<'a>>)>,
}

/// A field value: a string when it is UTF-8 (the usual case, compact in JSON), bytes otherwise.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum FieldValue<'a> {
    Text(Cow<'a, str>),
    Bytes(Vec<u8>),
}

/// `UNIX_EPOCH + secs + nanos` (`secs` is negative before the epoch; `nanos` < 10⁹).
#[derive(Serialize, Deserialize)]
struct Timestamp {
    secs: i64,
    nanos: u32,
}

#[derive(Debug)]
enum DecodeError {
    OtherVersion(u8),
    Damaged(String),
}

fn damaged(reason: impl fmt::Display) -> DecodeError {
    DecodeError::Damaged(reason.to_string())
}

/// A record ready to be written: its JSON head and the bodies it is followed by.
struct Encoded<'a> {
    head: Vec<u8>,
    head_len: u32,
    variants: &'a [StoredResponse],
    len: usize,
}

impl<'a> Encoded<'a> {
    /// None when the record cannot be encoded (a head over 4 GiB).
    fn new(variants: &'a [StoredResponse]) -> Option<Self> {
        let head = Head {
            variants: variants
                .iter()
                .map(|variant| VariantHead {
                    status: variant.status.as_u16(),
                    headers: variant
                        .headers
                        .iter()
                        .map(|(name, value)| (Cow::Borrowed(name.as_str()), field_value(value)))
                        .collect(),
                    body_len: variant.body.len() as u64,
                    request_time: to_timestamp(variant.request_time),
                    response_time: to_timestamp(variant.response_time),
                    varied: variant
                        .varied
                        .iter()
                        .map(|(name, value)| {
                            (
                                Cow::Borrowed(name.as_str()),
                                value.as_ref().map(field_value),
                            )
                        })
                        .collect(),
                })
                .collect(),
        };
        let head = serde_json::to_vec(&head).ok()?;
        let head_len = u32::try_from(head.len()).ok()?;
        let len = variants
            .iter()
            .try_fold(PREFIX_LEN.checked_add(head.len())?, |len, variant| {
                len.checked_add(variant.body.len())
            })?;
        Some(Self {
            head,
            head_len,
            variants,
            len,
        })
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Writes the record into `out`, which is exactly `self.len()` bytes long.
    fn write_to(&self, out: &mut [u8]) {
        let head_len = self.head_len.to_le_bytes();
        let parts = [&[FORMAT_VERSION][..], &head_len[..], &self.head[..]]
            .into_iter()
            .chain(self.variants.iter().map(|variant| &variant.body[..]));
        let mut rest = out;
        for part in parts {
            let (dst, tail) = rest.split_at_mut(part.len());
            dst.copy_from_slice(part);
            rest = tail;
        }
        debug_assert!(rest.is_empty());
    }
}

fn field_value(value: &HeaderValue) -> FieldValue<'_> {
    match std::str::from_utf8(value.as_bytes()) {
        Ok(text) => FieldValue::Text(Cow::Borrowed(text)),
        Err(_) => FieldValue::Bytes(value.as_bytes().to_vec()),
    }
}

fn decode(raw: &Bytes) -> Result<Vec<StoredResponse>, DecodeError> {
    let Some((&version, rest)) = raw.split_first() else {
        return Err(damaged("empty record"));
    };
    if version != FORMAT_VERSION {
        return Err(DecodeError::OtherVersion(version));
    }
    let Some((head_len, rest)) = rest.split_first_chunk::<4>() else {
        return Err(damaged("record shorter than its prefix"));
    };
    let head_len = usize::try_from(u32::from_le_bytes(*head_len)).map_err(damaged)?;
    let Some(head) = rest.get(..head_len) else {
        return Err(damaged("record shorter than its head"));
    };
    let head: Head<'_> = serde_json::from_slice(head).map_err(damaged)?;
    if head.variants.is_empty() {
        return Err(damaged("record without variants"));
    }
    let mut offset = PREFIX_LEN + head_len;
    let mut variants = Vec::with_capacity(head.variants.len());
    for variant in head.variants {
        let body_len = usize::try_from(variant.body_len).map_err(damaged)?;
        let end = offset
            .checked_add(body_len)
            .filter(|&end| end <= raw.len())
            .ok_or_else(|| damaged("record shorter than its bodies"))?;
        let body = raw.slice(offset..end);
        offset = end;
        let status = StatusCode::from_u16(variant.status).map_err(damaged)?;
        let mut headers = HeaderMap::try_with_capacity(variant.headers.len()).map_err(damaged)?;
        for (name, value) in variant.headers {
            headers
                .try_append(header_name(&name)?, header_value(value)?)
                .map_err(damaged)?;
        }
        let varied = variant
            .varied
            .into_iter()
            .map(|(name, value)| Ok((header_name(&name)?, value.map(header_value).transpose()?)))
            .collect::<Result<_, DecodeError>>()?;
        variants.push(StoredResponse {
            status,
            headers,
            body,
            request_time: from_timestamp(&variant.request_time)?,
            response_time: from_timestamp(&variant.response_time)?,
            varied,
        });
    }
    if offset != raw.len() {
        return Err(damaged("bytes after the last body"));
    }
    Ok(variants)
}

fn header_name(name: &str) -> Result<HeaderName, DecodeError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(damaged)
}

fn header_value(value: FieldValue<'_>) -> Result<HeaderValue, DecodeError> {
    match value {
        FieldValue::Text(text) => HeaderValue::from_str(&text),
        FieldValue::Bytes(bytes) => HeaderValue::from_bytes(&bytes),
    }
    .map_err(damaged)
}

fn to_timestamp(time: SystemTime) -> Timestamp {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => Timestamp {
            secs: i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
            nanos: after.subsec_nanos(),
        },
        Err(before) => {
            let before = before.duration();
            let secs = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            match before.subsec_nanos() {
                0 => Timestamp {
                    secs: -secs,
                    nanos: 0,
                },
                nanos => Timestamp {
                    secs: -secs - 1,
                    nanos: 1_000_000_000 - nanos,
                },
            }
        }
    }
}

fn from_timestamp(timestamp: &Timestamp) -> Result<SystemTime, DecodeError> {
    let time = if timestamp.nanos >= 1_000_000_000 {
        None
    } else if let Ok(secs) = u64::try_from(timestamp.secs) {
        UNIX_EPOCH.checked_add(Duration::new(secs, timestamp.nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(timestamp.secs.unsigned_abs()))
            .and_then(|time| time.checked_add(Duration::from_nanos(timestamp.nanos.into())))
    };
    time.ok_or_else(|| damaged("time out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: &[u8]) -> StoredResponse {
        let mut headers = HeaderMap::new();
        headers.append("content-type", HeaderValue::from_static("text/plain"));
        headers.append("set-cookie", HeaderValue::from_static("a=1"));
        headers.append(
            "x-latin1",
            HeaderValue::from_bytes(b"caf\xe9 \xff").unwrap(),
        );
        headers.append("set-cookie", HeaderValue::from_static("b=2"));
        headers.append("x-utf8", HeaderValue::from_str("naïve ✓").unwrap());
        headers.append(
            "x-quote",
            HeaderValue::from_static("\"quoted\" \\ back\tslash"),
        );
        StoredResponse {
            status: StatusCode::NON_AUTHORITATIVE_INFORMATION,
            headers,
            body: Bytes::copy_from_slice(body),
            request_time: UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            response_time: UNIX_EPOCH + Duration::new(1_700_000_001, 987_654_321),
            varied: vec![
                (
                    HeaderName::from_static("accept-encoding"),
                    Some(HeaderValue::from_static("gzip, br")),
                ),
                (HeaderName::from_static("accept-language"), None),
                (
                    HeaderName::from_static("x-raw"),
                    Some(HeaderValue::from_bytes(b"\x80\xfe").unwrap()),
                ),
            ],
        }
    }

    fn binary_body() -> Vec<u8> {
        (0..=255u8).cycle().take(1000).collect()
    }

    fn assert_same(got: &[StoredResponse], want: &[StoredResponse]) {
        assert_eq!(got.len(), want.len());
        for (got, want) in got.iter().zip(want) {
            assert_eq!(got.status, want.status);
            let got_fields: Vec<_> = got.headers.iter().collect();
            let want_fields: Vec<_> = want.headers.iter().collect();
            assert_eq!(got_fields, want_fields);
            assert_eq!(got.body, want.body);
            assert_eq!(got.request_time, want.request_time);
            assert_eq!(got.response_time, want.response_time);
            assert_eq!(got.varied, want.varied);
        }
    }

    fn open_store(dir: &tempfile::TempDir, max_bytes: u64) -> DiskStore {
        DiskStore::open(&dir.path().join("cache.redb"), max_bytes).unwrap()
    }

    /// Writes `value` as the record of `key` directly, bypassing the encoding.
    fn put_raw(store: &DiskStore, key: &str, value: &[u8]) {
        let txn = store.db.begin_write().unwrap();
        txn.open_table(RECORDS).unwrap().insert(key, value).unwrap();
        txn.commit().unwrap();
    }

    fn table_lens(store: &DiskStore) -> (u64, u64, u64) {
        use redb::ReadableTableMetadata;
        let txn = store.db.begin_read().unwrap();
        (
            txn.open_table(RECORDS).unwrap().len().unwrap(),
            txn.open_table(SIZES).unwrap().len().unwrap(),
            txn.open_table(WRITE_ORDER).unwrap().len().unwrap(),
        )
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<DiskStore>();
        check::<DiskError>();
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir, 1 << 20);
        let mut second = response(b"");
        second.status = StatusCode::OK;
        second.varied.clear();
        second.request_time = UNIX_EPOCH - Duration::new(5, 250_000_000);
        second.response_time = UNIX_EPOCH - Duration::from_secs(7);
        let variants = vec![response(&binary_body()), second];

        assert!(store.get("https://a.test/x").unwrap().is_none());
        assert!(store.put("https://a.test/x", &variants).unwrap());
        let got = store.get("https://a.test/x").unwrap().unwrap();
        assert_same(&got, &variants);
        assert_eq!(store.len(), 1);
        let record_len = Encoded::new(&variants).unwrap().len() as u64;
        assert_eq!(store.bytes(), record_len + "https://a.test/x".len() as u64);

        // Replacing keeps one key and counts the new record only.
        let one = vec![response(b"short")];
        assert!(store.put("https://a.test/x", &one).unwrap());
        assert_same(&store.get("https://a.test/x").unwrap().unwrap(), &one);
        assert_eq!(store.len(), 1);
        let record_len = Encoded::new(&one).unwrap().len() as u64;
        assert_eq!(store.bytes(), record_len + "https://a.test/x".len() as u64);
        assert_eq!(table_lens(&store), (1, 1, 1));
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let variants = vec![response(&binary_body())];
        let (len, bytes) = {
            let store = open_store(&dir, 1 << 20);
            assert!(store.put("k1", &variants).unwrap());
            assert!(store.put("k2", &variants).unwrap());
            (store.len(), store.bytes())
        };
        let store = open_store(&dir, 1 << 20);
        assert_eq!((store.len(), store.bytes()), (len, bytes));
        assert_eq!(len, 2);
        assert_same(&store.get("k1").unwrap().unwrap(), &variants);
        assert_same(&store.get("k2").unwrap().unwrap(), &variants);
        // Write order survives too: k3 evicts k1, the oldest.
        drop(store);
        let store = open_store(&dir, bytes);
        assert!(store.put("k3", &variants).unwrap());
        assert!(store.get("k1").unwrap().is_none());
        assert!(store.get("k2").unwrap().is_some());
    }

    #[test]
    fn reopening_with_a_lower_bound_evicts() {
        let dir = tempfile::tempdir().unwrap();
        let variants = vec![response(b"body")];
        let one = {
            let store = open_store(&dir, 1 << 20);
            for key in ["a", "b", "c"] {
                assert!(store.put(key, &variants).unwrap());
            }
            store.bytes() / 3
        };
        let store = open_store(&dir, one);
        assert_eq!((store.len(), store.bytes()), (1, one));
        assert!(store.get("c").unwrap().is_some());
        assert_eq!(table_lens(&store), (1, 1, 1));
    }

    #[test]
    fn second_open_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.redb");
        let first = DiskStore::open(&path, 1 << 20).unwrap();
        let error = DiskStore::open(&path, 1 << 20).unwrap_err();
        assert!(matches!(error, DiskError::InUse { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("is in use by another process"),
            "{message}"
        );
        assert!(message.contains(&path.display().to_string()), "{message}");
        drop(first);
        DiskStore::open(&path, 1 << 20).unwrap();
    }

    #[test]
    fn missing_parent_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("cache.redb");
        let error = DiskStore::open(&path, 1 << 20).unwrap_err();
        assert!(matches!(error, DiskError::Open { .. }), "{error:?}");
        assert!(
            error.to_string().starts_with("cannot create or open "),
            "{error}"
        );
    }

    #[test]
    fn eviction_keeps_the_newest_writes() {
        let dir = tempfile::tempdir().unwrap();
        let variants = vec![response(&binary_body())];
        // Keys of the same length, so every record counts the same.
        let one = Encoded::new(&variants).unwrap().len() as u64 + 2;
        let max = one * 3 + one / 2;
        let store = open_store(&dir, max);
        for i in 0..10 {
            assert!(store.put(&format!("k{i}"), &variants).unwrap());
            assert!(store.bytes() <= max);
        }
        assert_eq!((store.len(), store.bytes()), (3, one * 3));
        for i in 0..7 {
            assert!(store.get(&format!("k{i}")).unwrap().is_none(), "k{i}");
        }
        for i in 7..10 {
            assert!(store.get(&format!("k{i}")).unwrap().is_some(), "k{i}");
        }
        // Rewriting k7 makes it the newest: k8 goes next.
        assert!(store.put("k7", &variants).unwrap());
        assert!(store.put("kA", &variants).unwrap());
        assert!(store.get("k8").unwrap().is_none());
        for key in ["k7", "k9", "kA"] {
            assert!(store.get(key).unwrap().is_some(), "{key}");
        }
        assert_eq!(table_lens(&store), (3, 3, 3));
    }

    #[test]
    fn oversize_record_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir, 4096);
        assert!(store.put("small", &[response(b"ok")]).unwrap());
        assert!(store.put("big", &[response(b"ok")]).unwrap());
        let bytes = store.bytes();
        assert!(!store.put("big", &[response(&[7; 5000])]).unwrap());
        // The variants it was to replace are gone; other keys are untouched.
        assert!(store.get("big").unwrap().is_none());
        assert!(store.get("small").unwrap().is_some());
        assert_eq!(store.len(), 1);
        assert!(store.bytes() < bytes);
        assert_eq!(table_lens(&store), (1, 1, 1));
    }

    #[test]
    fn undecodable_records_are_misses_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir, 1 << 20);
        let variants = vec![response(b"body")];
        let good = {
            let record = Encoded::new(&variants).unwrap();
            let mut out = vec![0; record.len()];
            record.write_to(&mut out);
            out
        };
        let mut other_version = good.clone();
        other_version[0] = FORMAT_VERSION + 1;
        let mut truncated = good.clone();
        truncated.pop();
        let mut extended = good.clone();
        extended.push(0);
        let mut bad_json = good.clone();
        bad_json[PREFIX_LEN] = b'!';
        let cases: [(&str, &[u8]); 6] = [
            ("garbage", b"\x01this is not a record"),
            ("empty", b""),
            ("other-version", &other_version),
            ("truncated", &truncated),
            ("extended", &extended),
            ("bad-json", &bad_json),
        ];
        for (key, raw) in cases {
            assert!(store.put(key, &variants).unwrap());
            put_raw(&store, key, raw);
            assert!(store.get(key).unwrap().is_none(), "{key}");
            let txn = store.db.begin_read().unwrap();
            assert!(txn.open_table(RECORDS).unwrap().get(key).unwrap().is_none());
        }
        assert_eq!((store.len(), store.bytes()), (0, 0));
        assert_eq!(table_lens(&store), (0, 0, 0));

        // The unchanged encoding does decode (the cases above fail for their damage alone).
        put_raw(&store, "good", &good);
        assert_same(&store.get("good").unwrap().unwrap(), &variants);
    }

    #[test]
    fn remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir, 1 << 20);
        assert!(store.put("a", &[response(b"a")]).unwrap());
        assert!(store.put("b", &[response(b"b")]).unwrap());
        store.remove("a").unwrap();
        store.remove("never-stored").unwrap();
        assert!(store.get("a").unwrap().is_none());
        assert!(store.get("b").unwrap().is_some());
        assert_eq!(store.len(), 1);
        // An empty slice removes too.
        assert!(store.put("b", &[]).unwrap());
        assert!(store.get("b").unwrap().is_none());
        assert_eq!((store.len(), store.bytes()), (0, 0));
        assert!(store.is_empty());
        assert_eq!(table_lens(&store), (0, 0, 0));
    }

    #[test]
    fn entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir, 1 << 20);
        let a = vec![response(b"robots a")];
        let b = vec![response(b"robots b"), response(b"other")];
        assert!(store.put("a.example", &a).unwrap());
        assert!(store.put("b.example", &b).unwrap());
        assert!(store.put("c.example", &a).unwrap());
        put_raw(&store, "c.example", b"damaged");
        let mut entries = store.entries().unwrap();
        entries.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0, "a.example");
        assert_same(&entries[0].1, &a);
        assert_eq!(entries[1].0, "b.example");
        assert_same(&entries[1].1, &b);
        // The damaged one was removed.
        assert_eq!(store.len(), 2);
        assert_eq!(table_lens(&store), (2, 2, 2));
    }

    #[test]
    fn damaged_page_is_detected_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.redb");
        {
            let store = open_store(&dir, 1 << 20);
            assert!(store.put("k", &[response(&[0xab; 20_000])]).unwrap());
        }
        let mut content = std::fs::read(&path).unwrap();
        let mut damaged = 0;
        for chunk in content.chunks_mut(64) {
            if chunk.iter().all(|&byte| byte == 0xab) {
                chunk.fill(0);
                damaged += 1;
            }
        }
        assert!(damaged > 0);
        std::fs::write(&path, &content).unwrap();
        let error = DiskStore::open(&path, 1 << 20).unwrap_err();
        assert!(matches!(error, DiskError::Damaged { .. }), "{error:?}");
    }

    #[test]
    fn not_a_database_is_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.redb");
        let content = b"this is not a redb database, just some text\n".repeat(200);
        std::fs::write(&path, &content).unwrap();
        let error = DiskStore::open(&path, 1 << 20).unwrap_err();
        assert!(matches!(error, DiskError::Damaged { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("is damaged"), "{message}");
        assert!(message.ends_with("delete it to start empty"), "{message}");
        // Left as it was.
        assert_eq!(std::fs::read(&path).unwrap(), content);

        std::fs::write(&path, b"x").unwrap();
        let error = DiskStore::open(&path, 1 << 20).unwrap_err();
        assert!(matches!(error, DiskError::Damaged { .. }), "{error:?}");
    }
}
