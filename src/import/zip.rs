//! A minimal ZIP reader, enough for NumPy's `.npz` files: `np.savez` writes stored members,
//! `np.savez_compressed` deflated ones, and both write ZIP64 extra fields in the local headers (and
//! ZIP64 end records for archives past 4 GiB or 65535 members).
//!
//! Supported: one-disk archives, methods 0 (stored) and 8 (deflate), ZIP64 end-of-central-directory
//! records and ZIP64 extra fields, data descriptors (sizes and CRC are taken from the central
//! directory). Every member's CRC-32 is verified. Refused with an error naming the member: encryption,
//! other compression methods, split archives, duplicate names, anything pointing outside the file,
//! and members declaring (or inflating to) more than [`MAX_MEMBER_BYTES`].

use super::npy::read_npy_budget;
use super::raw::{RawTensor, MAX_VALUES};
use crate::{Error, Result};
use std::borrow::Cow;
use std::collections::HashSet;

/// The largest member (uncompressed) this reader inflates: as many bytes as [`MAX_VALUES`] f64s.
pub const MAX_MEMBER_BYTES: u64 = MAX_VALUES as u64 * 8;

const SIG_LOCAL: u32 = 0x0403_4b50;
const SIG_CENTRAL: u32 = 0x0201_4b50;
const SIG_EOCD: u32 = 0x0605_4b50;
const SIG_EOCD64: u32 = 0x0606_4b50;
const SIG_EOCD64_LOCATOR: u32 = 0x0706_4b50;

const EOCD_LEN: usize = 22;
const EOCD64_LEN: u64 = 56;
const LOCATOR_LEN: usize = 20;
const CENTRAL_LEN: u64 = 46;
const LOCAL_LEN: u64 = 30;
/// The end record is followed by a comment of at most 65535 bytes.
const MAX_COMMENT: usize = 0xffff;
const ZIP64_EXTRA_ID: u16 = 0x0001;

/// One member, as the central directory describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    /// The member's name (UTF-8; invalid bytes replaced).
    pub name: String,
    /// 0 stored, 8 deflate.
    pub method: u16,
    /// General-purpose flags (bit 3: sizes and CRC in a data descriptor after the data).
    pub flags: u16,
    pub crc32: u32,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    /// Byte offset of the member's local header.
    pub local_header_offset: u64,
    /// Byte offset of the member's central-directory record.
    pub central_offset: u64,
    raw_name: Vec<u8>,
}

/// A parsed archive: the central directory, over the file's bytes.
#[derive(Debug, Clone)]
pub struct ZipArchive<'a> {
    bytes: &'a [u8],
    entries: Vec<ZipEntry>,
}

fn zip_err(msg: impl std::fmt::Display) -> Error {
    Error::input(format!("zip: {msg}"))
}

/// Little-endian unsigned integer of `n` bytes (2, 4 or 8) at `off`, or a truncation error naming it.
fn le(bytes: &[u8], off: u64, n: usize, field: &str) -> Result<u64> {
    let slice = usize::try_from(off)
        .ok()
        .and_then(|o| Some((o, o.checked_add(n)?)))
        .and_then(|(o, end)| bytes.get(o..end))
        .ok_or_else(|| {
            zip_err(format!(
                "truncated: {field} at byte offset {off} needs {n} bytes, but the file has {} bytes",
                bytes.len()
            ))
        })?;
    Ok(slice.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

fn le16(bytes: &[u8], off: u64, field: &str) -> Result<u16> {
    le(bytes, off, 2, field).map(|v| v as u16)
}

fn le32(bytes: &[u8], off: u64, field: &str) -> Result<u32> {
    le(bytes, off, 4, field).map(|v| v as u32)
}

fn le64(bytes: &[u8], off: u64, field: &str) -> Result<u64> {
    le(bytes, off, 8, field)
}

/// `bytes[start..start + len]`, or an error saying what lies outside the file.
fn span<'b>(bytes: &'b [u8], start: u64, len: u64, what: &str) -> Result<&'b [u8]> {
    start
        .checked_add(len)
        .and_then(|end| Some((usize::try_from(start).ok()?, usize::try_from(end).ok()?)))
        .and_then(|(s, e)| bytes.get(s..e))
        .ok_or_else(|| {
            zip_err(format!(
                "{what} (bytes {start}..{}) lies outside the file ({} bytes): the archive is truncated or damaged",
                start.saturating_add(len),
                bytes.len()
            ))
        })
}

/// The end-of-central-directory numbers that matter.
struct EndRecord {
    entries: u64,
    cd_size: u64,
    cd_offset: u64,
    /// Where the central directory must end: the first byte of the end record(s).
    cd_limit: u64,
}

impl<'a> ZipArchive<'a> {
    /// Parses the end record(s) and the central directory. Member data is read by [`Self::read`].
    pub fn parse(bytes: &'a [u8]) -> Result<ZipArchive<'a>> {
        let end = find_end_record(bytes)?;
        let file_len = bytes.len() as u64;
        let cd_end = end.cd_offset.checked_add(end.cd_size).filter(|&e| e <= end.cd_limit).ok_or_else(|| {
            zip_err(format!(
                "the central directory (offset {}, {} bytes) lies outside the file ({file_len} bytes) or overlaps its \
                 end record at offset {}: the archive is truncated or damaged",
                end.cd_offset, end.cd_size, end.cd_limit
            ))
        })?;
        if end.entries > end.cd_size / CENTRAL_LEN {
            return Err(zip_err(format!(
                "the end record declares {} members, but a {}-byte central directory holds at most {}",
                end.entries,
                end.cd_size,
                end.cd_size / CENTRAL_LEN
            )));
        }
        // Bounded by cd_size / 46 above, so by the file size.
        let mut entries = Vec::with_capacity(usize::try_from(end.entries).unwrap_or(0));
        let mut seen = HashSet::new();
        let mut pos = end.cd_offset;
        for i in 0..end.entries {
            let (entry, next) = parse_central_entry(bytes, pos, cd_end, i)?;
            if !seen.insert(entry.raw_name.clone()) {
                return Err(zip_err(format!(
                    "member name {:?} appears twice (second time in the central directory at offset {pos})",
                    entry.name
                )));
            }
            entries.push(entry);
            pos = next;
        }
        Ok(ZipArchive { bytes, entries })
    }

    /// The members, in central-directory order.
    pub fn entries(&self) -> &[ZipEntry] {
        &self.entries
    }

    /// The uncompressed bytes of one member, CRC-checked. Stored members are borrowed from the file.
    pub fn read(&self, entry: &ZipEntry) -> Result<Cow<'a, [u8]>> {
        let bytes = self.bytes;
        let name = &entry.name;
        let off = entry.local_header_offset;
        let member = |msg: String| zip_err(format!("member {name:?} (local header at offset {off}): {msg}"));

        let sig = le32(bytes, off, &format!("the local header of member {name:?}"))?;
        if sig != SIG_LOCAL {
            return Err(member(format!(
                "expected the local header signature PK\\x03\\x04, found {sig:#010x}: the central directory points \
                 to the wrong place"
            )));
        }
        let header = span(bytes, off, LOCAL_LEN, &format!("the local header of member {name:?}"))?;
        let field = |at: usize, n: usize| {
            header.get(at..at + n).unwrap_or_default().iter().rev().fold(0u64, |a, &b| (a << 8) | u64::from(b))
        };
        let flags = field(6, 2) as u16;
        let method = field(8, 2) as u16;
        let crc = field(14, 4) as u32;
        let mut csize = field(18, 4);
        let mut usize_ = field(22, 4);
        let name_len = field(26, 2);
        let extra_len = field(28, 2);

        let name_at = off + LOCAL_LEN;
        let local_name = span(bytes, name_at, name_len, &format!("the local name of member {name:?}"))?;
        if local_name != entry.raw_name.as_slice() {
            return Err(member(format!(
                "the local header names {:?}, the central directory {name:?}",
                String::from_utf8_lossy(local_name)
            )));
        }
        let extra_at = name_at + name_len;
        let extra = span(bytes, extra_at, extra_len, &format!("the local extra field of member {name:?}"))?;
        if flags & 0x41 != 0 {
            return Err(member("the local header marks it as encrypted; encrypted archives are not supported".into()));
        }
        if method != entry.method {
            return Err(member(format!(
                "the local header says compression method {method}, the central directory {}",
                entry.method
            )));
        }
        // ZIP64: both sizes move to the extra field when either is saturated.
        if csize == 0xffff_ffff || usize_ == 0xffff_ffff {
            let z = find_zip64_extra(extra, extra_at)?
                .ok_or_else(|| member("sizes are 0xFFFFFFFF but there is no ZIP64 extra field (id 0x0001)".into()))?;
            let (at, data) = z;
            let mut fields = data.chunks_exact(8).map(|c| c.iter().rev().fold(0u64, |a, &b| (a << 8) | u64::from(b)));
            if usize_ == 0xffff_ffff {
                usize_ = fields
                    .next()
                    .ok_or_else(|| member(format!("the ZIP64 extra field at offset {at} has no uncompressed size")))?;
            }
            if csize == 0xffff_ffff {
                csize = fields
                    .next()
                    .ok_or_else(|| member(format!("the ZIP64 extra field at offset {at} has no compressed size")))?;
            }
        }
        // With a data descriptor (flag bit 3) the local header holds zeros; otherwise it must agree.
        if flags & 0x08 == 0 {
            for (what, local, central) in [
                ("CRC-32", u64::from(crc), u64::from(entry.crc32)),
                ("compressed size", csize, entry.compressed_size),
                ("uncompressed size", usize_, entry.uncompressed_size),
            ] {
                if local != central {
                    return Err(member(format!(
                        "the local header says {what} {local}, the central directory {central}: the archive is damaged"
                    )));
                }
            }
        }

        let data_at = extra_at + extra_len;
        let data = span(bytes, data_at, entry.compressed_size, &format!("the data of member {name:?}"))?;
        let declared = entry.uncompressed_size;
        let out: Cow<'a, [u8]> = match entry.method {
            0 => {
                if entry.compressed_size != declared {
                    return Err(member(format!(
                        "stored (uncompressed) but its sizes differ: {} bytes in the file, {declared} declared",
                        entry.compressed_size
                    )));
                }
                Cow::Borrowed(data)
            }
            8 => {
                // Bounded by MAX_MEMBER_BYTES (checked when parsing the central directory); one byte
                // more than declared tells a lying size apart from an exact fit.
                let limit = usize::try_from(declared)
                    .ok()
                    .and_then(|d| d.checked_add(1))
                    .ok_or_else(|| member(format!("declared size {declared} is too large for this machine")))?;
                let inflated = miniz_oxide::inflate::decompress_to_vec_with_limit(data, limit).map_err(|e| {
                    if e.status == miniz_oxide::inflate::TINFLStatus::HasMoreOutput {
                        member(format!(
                            "inflates to more than its declared {declared} bytes; refusing it (a damaged archive or a \
                             zip bomb)"
                        ))
                    } else {
                        member(format!("the deflate data (at offset {data_at}) is damaged: {e}"))
                    }
                })?;
                if inflated.len() as u64 != declared {
                    return Err(member(format!(
                        "inflates to {} bytes, but {declared} are declared: the archive is damaged",
                        inflated.len()
                    )));
                }
                Cow::Owned(inflated)
            }
            m => return Err(member(format!("compression method {m} is not supported (only 0 stored and 8 deflate)"))),
        };
        let actual = crc32(&out);
        if actual != entry.crc32 {
            return Err(member(format!(
                "CRC-32 mismatch: the archive says {:#010x}, the data gives {actual:#010x}: the file is damaged",
                entry.crc32
            )));
        }
        Ok(out)
    }
}

/// Finds the end-of-central-directory record (searching backwards over the comment) and, when
/// present, the ZIP64 end record it points to.
fn find_end_record(bytes: &[u8]) -> Result<EndRecord> {
    let len = bytes.len();
    if len < EOCD_LEN {
        return Err(zip_err(format!(
            "not a ZIP (.npz) file: it is {len} bytes, smaller than the {EOCD_LEN}-byte end-of-central-directory record"
        )));
    }
    let lowest = len.saturating_sub(EOCD_LEN + MAX_COMMENT);
    let mut found = None;
    let mut fallback = None;
    for p in (lowest..=len - EOCD_LEN).rev() {
        if bytes.get(p..p + 4) != Some(&b"PK\x05\x06"[..]) {
            continue;
        }
        let comment_len =
            bytes.get(p + 20..p + 22).map(|b| usize::from(b[0]) | usize::from(b[1]) << 8).unwrap_or(usize::MAX);
        let end = p.saturating_add(EOCD_LEN).saturating_add(comment_len);
        if end == len {
            found = Some(p);
            break;
        }
        if end <= len && fallback.is_none() {
            fallback = Some(p);
        }
    }
    let Some(p) = found.or(fallback) else {
        let hint = if bytes.starts_with(b"\x93NUMPY") { " (this looks like a .npy file, not an .npz)" } else { "" };
        return Err(zip_err(format!(
            "not a ZIP (.npz) file{hint}: no end-of-central-directory record (PK\\x05\\x06) in its last {} bytes",
            len - lowest
        )));
    };
    let p64 = p as u64;
    debug_assert_eq!(le32(bytes, p64, "end record signature").ok(), Some(SIG_EOCD));
    let disk = le16(bytes, p64 + 4, "end record: disk number")?;
    let cd_disk = le16(bytes, p64 + 6, "end record: central directory disk")?;
    let on_disk = le16(bytes, p64 + 8, "end record: entries on this disk")?;
    let total = le16(bytes, p64 + 10, "end record: total entries")?;
    let cd_size = le32(bytes, p64 + 12, "end record: central directory size")?;
    let cd_offset = le32(bytes, p64 + 16, "end record: central directory offset")?;

    let mut rec = EndRecord {
        entries: u64::from(total),
        cd_size: u64::from(cd_size),
        cd_offset: u64::from(cd_offset),
        cd_limit: p64,
    };
    let (mut disk, mut cd_disk, mut on_disk) = (u64::from(disk), u64::from(cd_disk), u64::from(on_disk));

    // ZIP64 end-of-central-directory locator, right before the end record.
    let locator_at = p.checked_sub(LOCATOR_LEN).map(|l| l as u64);
    if let Some(l) = locator_at.filter(|&l| le32(bytes, l, "ZIP64 locator").ok() == Some(SIG_EOCD64_LOCATOR)) {
        let record_disk = le32(bytes, l + 4, "ZIP64 locator: disk of the ZIP64 end record")?;
        let record_at = le64(bytes, l + 8, "ZIP64 locator: offset of the ZIP64 end record")?;
        let disks = le32(bytes, l + 16, "ZIP64 locator: number of disks")?;
        if record_disk != 0 || disks > 1 {
            return Err(zip_err(format!(
                "the ZIP64 locator at offset {l} describes a multi-disk (split) archive ({disks} disks); only \
                 single-file archives are supported"
            )));
        }
        if record_at.checked_add(EOCD64_LEN).is_none_or(|e| e > l) {
            return Err(zip_err(format!(
                "the ZIP64 locator at offset {l} points to a ZIP64 end record at offset {record_at}, which does not \
                 fit before the locator: the archive is damaged"
            )));
        }
        let sig = le32(bytes, record_at, "ZIP64 end record signature")?;
        if sig != SIG_EOCD64 {
            return Err(zip_err(format!(
                "expected the ZIP64 end record signature PK\\x06\\x06 at offset {record_at} (from the locator at \
                 offset {l}), found {sig:#010x}"
            )));
        }
        disk = u64::from(le32(bytes, record_at + 16, "ZIP64 end record: disk number")?);
        cd_disk = u64::from(le32(bytes, record_at + 20, "ZIP64 end record: central directory disk")?);
        on_disk = le64(bytes, record_at + 24, "ZIP64 end record: entries on this disk")?;
        rec.entries = le64(bytes, record_at + 32, "ZIP64 end record: total entries")?;
        rec.cd_size = le64(bytes, record_at + 40, "ZIP64 end record: central directory size")?;
        rec.cd_offset = le64(bytes, record_at + 48, "ZIP64 end record: central directory offset")?;
        rec.cd_limit = record_at;
    }
    if disk != 0 || cd_disk != 0 || on_disk != rec.entries {
        return Err(zip_err(format!(
            "the end record at offset {p} describes a multi-disk (split) archive (disk {disk}, central directory on \
             disk {cd_disk}, {on_disk} of {} entries here); only single-file archives are supported",
            rec.entries
        )));
    }
    Ok(rec)
}

/// The data of the ZIP64 extra field (id 0x0001) in an extra area starting at file offset `at`.
fn find_zip64_extra(extra: &[u8], at: u64) -> Result<Option<(u64, &[u8])>> {
    let mut i = 0usize;
    while i < extra.len() {
        let head = extra.get(i..i + 4).ok_or_else(|| {
            zip_err(format!("the extra field at offset {} is truncated (a field header needs 4 bytes)", at + i as u64))
        })?;
        let id = u16::from(head[0]) | u16::from(head[1]) << 8;
        let size = usize::from(head[2]) | usize::from(head[3]) << 8;
        let data = extra.get(i + 4..i + 4 + size).ok_or_else(|| {
            zip_err(format!(
                "the extra field with id {id:#06x} at offset {} declares {size} bytes, past the end of its extra area",
                at + i as u64
            ))
        })?;
        if id == ZIP64_EXTRA_ID {
            return Ok(Some((at + i as u64, data)));
        }
        i += 4 + size;
    }
    Ok(None)
}

/// One central-directory record at `pos` (which must end by `cd_end`), and where the next one starts.
fn parse_central_entry(bytes: &[u8], pos: u64, cd_end: u64, index: u64) -> Result<(ZipEntry, u64)> {
    let outside = || {
        zip_err(format!(
            "central directory record {index} at offset {pos} runs past the end of the central directory (offset \
             {cd_end})"
        ))
    };
    if pos.checked_add(CENTRAL_LEN).is_none_or(|e| e > cd_end) {
        return Err(outside());
    }
    let sig = le32(bytes, pos, "central directory record signature")?;
    if sig != SIG_CENTRAL {
        return Err(zip_err(format!(
            "expected central directory record {index} (signature PK\\x01\\x02) at offset {pos}, found {sig:#010x}"
        )));
    }
    let flags = le16(bytes, pos + 8, "flags")?;
    let method = le16(bytes, pos + 10, "compression method")?;
    let crc32 = le32(bytes, pos + 16, "CRC-32")?;
    let mut compressed_size = u64::from(le32(bytes, pos + 20, "compressed size")?);
    let mut uncompressed_size = u64::from(le32(bytes, pos + 24, "uncompressed size")?);
    let name_len = u64::from(le16(bytes, pos + 28, "name length")?);
    let extra_len = u64::from(le16(bytes, pos + 30, "extra length")?);
    let comment_len = u64::from(le16(bytes, pos + 32, "comment length")?);
    let disk_start = le16(bytes, pos + 34, "disk number start")?;
    let mut local_header_offset = u64::from(le32(bytes, pos + 42, "local header offset")?);
    // pos + 46 <= cd_end <= file length, so these sums cannot overflow.
    let next = pos + CENTRAL_LEN + name_len + extra_len + comment_len;
    if next > cd_end {
        return Err(outside());
    }
    let raw_name = span(bytes, pos + CENTRAL_LEN, name_len, "member name")?.to_vec();
    let name = String::from_utf8_lossy(&raw_name).into_owned();
    let extra_at = pos + CENTRAL_LEN + name_len;
    let extra = span(bytes, extra_at, extra_len, "extra field")?;
    let rec = |msg: String| zip_err(format!("member {name:?} (central directory at offset {pos}): {msg}"));

    if flags & 0x41 != 0 {
        return Err(rec("it is encrypted; encrypted archives are not supported".into()));
    }
    if method != 0 && method != 8 {
        return Err(rec(format!(
            "compression method {method} is not supported (only 0 stored and 8 deflate, as np.savez and \
             np.savez_compressed write)"
        )));
    }
    // ZIP64 extra: the saturated fields, in this order.
    let needs64 =
        uncompressed_size == 0xffff_ffff || compressed_size == 0xffff_ffff || local_header_offset == 0xffff_ffff;
    if needs64 || disk_start == 0xffff {
        let (z_at, data) = find_zip64_extra(extra, extra_at)?
            .ok_or_else(|| rec("has 0xFFFFFFFF sizes or offset but no ZIP64 extra field (id 0x0001)".into()))?;
        let mut off = 0usize;
        let mut next = |what: &str| -> Result<u64> {
            let v = data
                .get(off..off + 8)
                .map(|c| c.iter().rev().fold(0u64, |a, &b| (a << 8) | u64::from(b)))
                .ok_or_else(|| rec(format!("the ZIP64 extra field at offset {z_at} has no {what}")))?;
            off += 8;
            Ok(v)
        };
        if uncompressed_size == 0xffff_ffff {
            uncompressed_size = next("uncompressed size")?;
        }
        if compressed_size == 0xffff_ffff {
            compressed_size = next("compressed size")?;
        }
        if local_header_offset == 0xffff_ffff {
            local_header_offset = next("local header offset")?;
        }
        if disk_start == 0xffff {
            let d = data.get(off..off + 4).map(|c| c.iter().rev().fold(0u32, |a, &b| (a << 8) | u32::from(b)));
            if d != Some(0) {
                return Err(rec("it starts on another disk: split archives are not supported".into()));
            }
        }
    } else if disk_start != 0 {
        return Err(rec(format!("it starts on disk {disk_start}: split archives are not supported")));
    }
    if uncompressed_size > MAX_MEMBER_BYTES {
        return Err(rec(format!(
            "declares {uncompressed_size} uncompressed bytes, more than the {MAX_MEMBER_BYTES} paritylab reads from \
             one member"
        )));
    }
    let file_len = bytes.len() as u64;
    if local_header_offset.checked_add(LOCAL_LEN).is_none_or(|e| e > file_len) || compressed_size > file_len {
        return Err(rec(format!(
            "its local header offset {local_header_offset} or its compressed size {compressed_size} lies outside the \
             file ({file_len} bytes): the archive is truncated or damaged"
        )));
    }
    if method == 0 && compressed_size != uncompressed_size {
        return Err(rec(format!(
            "stored (uncompressed) but its sizes differ: {compressed_size} in the file, {uncompressed_size} declared"
        )));
    }
    let entry = ZipEntry {
        name,
        method,
        flags,
        crc32,
        compressed_size,
        uncompressed_size,
        local_header_offset,
        central_offset: pos,
        raw_name,
    };
    Ok((entry, next))
}

/// The CRC-32 table (reflected polynomial 0xEDB88320), built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 as ZIP (and zlib, PNG) computes it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[usize::from((c as u8) ^ b)] ^ (c >> 8);
    }
    !c
}

/// Reads a NumPy `.npz` archive: each member `name.npy` becomes a tensor named `name`, in
/// central-directory order. A member that is not a `.npy` file is an error naming it.
pub fn read_npz(bytes: &[u8]) -> Result<Vec<RawTensor>> {
    let archive = ZipArchive::parse(bytes)?;
    let mut out = Vec::with_capacity(archive.entries().len());
    let mut values = 0usize;
    for entry in archive.entries() {
        let name = entry.name.strip_suffix(".npy").filter(|n| !n.is_empty()).ok_or_else(|| {
            Error::input(format!(
                "npz: member {:?} is not a .npy array (an .npz made by np.savez holds only <name>.npy members)",
                entry.name
            ))
        })?;
        let data = archive.read(entry)?;
        let tensor = read_npy_budget(name, &data, values)
            .map_err(|e| Error::input(format!("{e} (in .npz member {:?})", entry.name)))?;
        values = values.saturating_add(tensor.values.known());
        out.push(tensor);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::raw::RawDtype;

    fn dense(t: &RawTensor) -> &[f64] {
        t.values.dense().expect("dense values")
    }

    fn err<T: std::fmt::Debug>(r: Result<T>) -> String {
        match r {
            Ok(t) => panic!("expected an error, got {t:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn crc32_known_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b"The quick brown fox jumps over the lazy dog"), 0x414f_a339);
    }

    fn check_pair(tensors: &[RawTensor]) {
        assert_eq!(tensors.len(), 2);
        assert_eq!(tensors[0].name, "a");
        assert_eq!(tensors[0].shape, vec![8, 8]);
        assert_eq!(tensors[0].dtype, RawDtype::F32);
        let want: Vec<f64> = (0..64).map(|i| f64::from(i) - 10.0).collect();
        assert_eq!(dense(&tensors[0]), &want[..]);
        assert_eq!(tensors[1].name, "b");
        assert_eq!(tensors[1].shape, vec![2]);
        assert_eq!(tensors[1].dtype, RawDtype::F64);
        assert_eq!(dense(&tensors[1]), &[1.5, -2.25]);
    }

    const PAIR: &[u8] = include_bytes!("../../tests/data/import/pair.npz");
    const PAIR_COMPRESSED: &[u8] = include_bytes!("../../tests/data/import/pair_compressed.npz");

    #[test]
    fn fixture_savez_stored() {
        let archive = ZipArchive::parse(PAIR).unwrap();
        assert!(archive.entries().iter().all(|e| e.method == 0));
        check_pair(&read_npz(PAIR).unwrap());
    }

    #[test]
    fn fixture_savez_compressed() {
        let archive = ZipArchive::parse(PAIR_COMPRESSED).unwrap();
        assert!(archive.entries().iter().all(|e| e.method == 8));
        check_pair(&read_npz(PAIR_COMPRESSED).unwrap());
    }

    /// A small ZIP writer for the tests.
    struct Member {
        name: Vec<u8>,
        data: Vec<u8>,
        method: u16,
        flags: u16,
    }

    fn member(name: &str, data: &[u8], method: u16) -> Member {
        Member { name: name.as_bytes().to_vec(), data: data.to_vec(), method, flags: 0 }
    }

    #[derive(Default, Clone, Copy)]
    struct Opts {
        zip64_local: bool,
        zip64_central: bool,
        zip64_end: bool,
        comment: &'static [u8],
        other_extra_first: bool,
    }

    fn p16(v: &mut Vec<u8>, x: u16) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    fn p32(v: &mut Vec<u8>, x: u32) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    fn p64(v: &mut Vec<u8>, x: u64) {
        v.extend_from_slice(&x.to_le_bytes());
    }

    fn build(members: &[Member], o: Opts) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for m in members {
            let packed = if m.method == 8 { miniz_oxide::deflate::compress_to_vec(&m.data, 6) } else { m.data.clone() };
            let crc = crc32(&m.data);
            let offset = out.len() as u64;
            let mut extra = Vec::new();
            if o.other_extra_first {
                p16(&mut extra, 0x5455);
                p16(&mut extra, 5);
                extra.extend_from_slice(&[1, 0, 0, 0, 0]);
            }
            let mut local_extra = extra.clone();
            if o.zip64_local {
                p16(&mut local_extra, 1);
                p16(&mut local_extra, 16);
                p64(&mut local_extra, m.data.len() as u64);
                p64(&mut local_extra, packed.len() as u64);
            }
            p32(&mut out, SIG_LOCAL);
            p16(&mut out, 45);
            p16(&mut out, m.flags);
            p16(&mut out, m.method);
            p32(&mut out, 0);
            p32(&mut out, crc);
            let (c, u) = if o.zip64_local { (u32::MAX, u32::MAX) } else { (packed.len() as u32, m.data.len() as u32) };
            p32(&mut out, c);
            p32(&mut out, u);
            p16(&mut out, m.name.len() as u16);
            p16(&mut out, local_extra.len() as u16);
            out.extend_from_slice(&m.name);
            out.extend_from_slice(&local_extra);
            out.extend_from_slice(&packed);

            let mut central_extra = extra;
            if o.zip64_central {
                p16(&mut central_extra, 1);
                p16(&mut central_extra, 24);
                p64(&mut central_extra, m.data.len() as u64);
                p64(&mut central_extra, packed.len() as u64);
                p64(&mut central_extra, offset);
            }
            p32(&mut central, SIG_CENTRAL);
            p16(&mut central, 45);
            p16(&mut central, 45);
            p16(&mut central, m.flags);
            p16(&mut central, m.method);
            p32(&mut central, 0);
            p32(&mut central, crc);
            if o.zip64_central {
                p32(&mut central, u32::MAX);
                p32(&mut central, u32::MAX);
            } else {
                p32(&mut central, packed.len() as u32);
                p32(&mut central, m.data.len() as u32);
            }
            p16(&mut central, m.name.len() as u16);
            p16(&mut central, central_extra.len() as u16);
            p16(&mut central, 0);
            p16(&mut central, 0);
            p16(&mut central, 0);
            p32(&mut central, 0);
            p32(&mut central, if o.zip64_central { u32::MAX } else { offset as u32 });
            central.extend_from_slice(&m.name);
            central.extend_from_slice(&central_extra);
        }
        let cd_offset = out.len() as u64;
        out.extend_from_slice(&central);
        let n = members.len() as u64;
        if o.zip64_end {
            let record_at = out.len() as u64;
            p32(&mut out, SIG_EOCD64);
            p64(&mut out, 44);
            p16(&mut out, 45);
            p16(&mut out, 45);
            p32(&mut out, 0);
            p32(&mut out, 0);
            p64(&mut out, n);
            p64(&mut out, n);
            p64(&mut out, central.len() as u64);
            p64(&mut out, cd_offset);
            p32(&mut out, SIG_EOCD64_LOCATOR);
            p32(&mut out, 0);
            p64(&mut out, record_at);
            p32(&mut out, 1);
        }
        p32(&mut out, SIG_EOCD);
        p16(&mut out, 0);
        p16(&mut out, 0);
        let (n16, size32, off32) = if o.zip64_end {
            (u16::MAX, u32::MAX, u32::MAX)
        } else {
            (n as u16, central.len() as u32, cd_offset as u32)
        };
        p16(&mut out, n16);
        p16(&mut out, n16);
        p32(&mut out, size32);
        p32(&mut out, off32);
        p16(&mut out, o.comment.len() as u16);
        out.extend_from_slice(o.comment);
        out
    }

    /// A small .npy file holding `values` as '<f4' with shape (len,).
    fn npy(values: &[f32]) -> Vec<u8> {
        let mut h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}", values.len()).into_bytes();
        while !(h.len() + 11).is_multiple_of(64) {
            h.push(b' ');
        }
        h.push(b'\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(&h);
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    #[test]
    fn every_layout_round_trips() {
        let x = npy(&[1.0, 2.0, 3.0]);
        let y = npy(&(0..300).map(|i| (i % 7) as f32).collect::<Vec<_>>());
        for method in [0u16, 8] {
            for bits in 0..32u32 {
                let o = Opts {
                    zip64_local: bits & 1 != 0,
                    zip64_central: bits & 2 != 0,
                    zip64_end: bits & 4 != 0,
                    comment: if bits & 8 != 0 { b"a comment with PK\x05\x06 inside" } else { b"" },
                    other_extra_first: bits & 16 != 0,
                };
                let zip = build(&[member("x.npy", &x, method), member("dir/y.npy", &y, method)], o);
                let t = read_npz(&zip).unwrap_or_else(|e| panic!("method {method} bits {bits}: {e}"));
                assert_eq!(t.len(), 2);
                assert_eq!((t[0].name.as_str(), t[1].name.as_str()), ("x", "dir/y"));
                assert_eq!(dense(&t[0]), &[1.0, 2.0, 3.0]);
                assert_eq!(dense(&t[1]).len(), 300);
            }
        }
        // Empty archive.
        assert!(read_npz(&build(&[], Opts::default())).unwrap().is_empty());
    }

    #[test]
    fn data_descriptor_flag_uses_central_sizes() {
        let x = npy(&[4.0]);
        let mut m = member("x.npy", &x, 8);
        m.flags = 0x08;
        let mut zip = build(&[m], Opts::default());
        // Zero the local CRC and sizes, as a streaming writer does.
        zip[14..26].fill(0);
        assert_eq!(dense(&read_npz(&zip).unwrap()[0]), &[4.0]);
    }

    #[test]
    fn hostile_archives() {
        let x = npy(&[1.0, 2.0]);
        let good = build(&[member("x.npy", &x, 0)], Opts::default());
        let eocd = good.len() - 22;
        let cd = u32::from_le_bytes(good[eocd + 16..eocd + 20].try_into().unwrap()) as usize;

        // Not a zip at all.
        assert!(err(read_npz(&x)).contains("looks like a .npy"));
        assert!(err(read_npz(b"PK")).contains("not a ZIP"));
        // Bad CRC: flip a data byte of a stored member.
        let mut bad = good.clone();
        bad[cd - 1] ^= 0x40;
        let e = err(read_npz(&bad));
        assert!(e.contains("CRC-32 mismatch") && e.contains("x.npy"), "{e}");
        // Central directory outside the file.
        let mut bad = good.clone();
        bad[eocd + 16..eocd + 20].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
        assert!(err(read_npz(&bad)).contains("central directory (offset 2147418112"));
        // More entries than the central directory can hold.
        let mut bad = good.clone();
        bad[eocd + 8..eocd + 12].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert!(err(read_npz(&bad)).contains("declares 65535 members"));
        // Multi-disk.
        let mut bad = good.clone();
        bad[eocd + 4] = 1;
        assert!(err(read_npz(&bad)).contains("multi-disk"));
        // Local header offset outside the file / pointing at the wrong place.
        let mut bad = good.clone();
        bad[cd + 42..cd + 46].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
        assert!(err(read_npz(&bad)).contains("outside the file"));
        let mut bad = good.clone();
        bad[cd + 42] = 1;
        assert!(err(read_npz(&bad)).contains("local header signature"));
        // Encrypted.
        let mut bad = good.clone();
        bad[cd + 8] |= 1;
        assert!(err(read_npz(&bad)).contains("encrypted"));
        // Unsupported method (central and local agree on 12, bzip2).
        let mut bad = good.clone();
        bad[cd + 10] = 12;
        bad[8] = 12;
        assert!(err(read_npz(&bad)).contains("method 12"));
        // Local and central disagree.
        let mut bad = good.clone();
        bad[30] = b'z';
        assert!(err(read_npz(&bad)).contains("local header names"));
        // Duplicate names.
        let dup = build(&[member("x.npy", &x, 0), member("x.npy", &x, 8)], Opts::default());
        assert!(err(read_npz(&dup)).contains("appears twice"));
        // Non-.npy members.
        for name in ["readme.txt", ".npy", "dir/"] {
            let e = err(read_npz(&build(&[member(name, b"hi", 0)], Opts::default())));
            assert!(e.contains(&format!("{name:?}")) && e.contains("not a .npy"), "{e}");
        }
        // A member that is not a valid .npy names the member.
        let e = err(read_npz(&build(&[member("w.npy", b"garbage", 0)], Opts::default())));
        assert!(e.contains("w.npy") && e.contains("not a NumPy"), "{e}");
    }

    /// Patches a member's declared uncompressed size in both headers (single member, no ZIP64).
    fn declare_size(zip: &mut [u8], size: u32) {
        let eocd = zip.len() - 22;
        let cd = u32::from_le_bytes(zip[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
        zip[22..26].copy_from_slice(&size.to_le_bytes());
        zip[cd + 24..cd + 28].copy_from_slice(&size.to_le_bytes());
    }

    #[test]
    fn zip_bombs_and_lying_sizes() {
        // 16 MiB of zeros deflates to a few KiB; declared as 1000 bytes.
        let zeros = vec![0u8; 16 << 20];
        let mut bomb = build(&[member("x.npy", &zeros, 8)], Opts::default());
        assert!(bomb.len() < 100_000);
        declare_size(&mut bomb, 1000);
        let e = err(read_npz(&bomb));
        assert!(e.contains("more than its declared 1000 bytes"), "{e}");
        // Declared larger than it inflates to.
        let x = npy(&[1.0]);
        let mut lie = build(&[member("x.npy", &x, 8)], Opts::default());
        declare_size(&mut lie, x.len() as u32 + 5);
        let e = err(read_npz(&lie));
        assert!(e.contains(&format!("inflates to {} bytes", x.len())), "{e}");
        // Declared beyond the budget (ZIP64 central size of 1 TiB).
        let mut huge = build(&[member("x.npy", &x, 8)], Opts { zip64_central: true, ..Opts::default() });
        let eocd = huge.len() - 22;
        let cd = u32::from_le_bytes(huge[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
        let z = cd + 46 + 5 + 4; // after the name and the extra header: uncompressed size first
        huge[z..z + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let e = err(read_npz(&huge));
        assert!(e.contains("1099511627776") && e.contains("more than"), "{e}");
        // ZIP64 sizes without the extra field.
        let mut bad = build(&[member("x.npy", &x, 0)], Opts::default());
        let eocd = bad.len() - 22;
        let cd = u32::from_le_bytes(bad[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
        bad[cd + 20..cd + 28].fill(0xff);
        assert!(err(read_npz(&bad)).contains("no ZIP64 extra field"));
        // A ZIP64 locator pointing nowhere.
        let mut bad = build(&[member("x.npy", &x, 0)], Opts { zip64_end: true, ..Opts::default() });
        let loc = bad.len() - 22 - 20;
        bad[loc + 8..loc + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(err(read_npz(&bad)).contains("does not fit"));
        let mut bad = build(&[member("x.npy", &x, 0)], Opts { zip64_end: true, ..Opts::default() });
        let record_at = u64::from_le_bytes(bad[loc + 8..loc + 16].try_into().unwrap());
        bad[loc + 8..loc + 16].copy_from_slice(&(record_at - 8).to_le_bytes());
        assert!(err(read_npz(&bad)).contains("ZIP64 end record signature"));
    }

    fn mutate_all(file: &[u8]) {
        for len in 0..file.len() {
            assert!(read_npz(&file[..len]).is_err(), "truncation at {len} accepted");
        }
        let mut m = file.to_vec();
        for i in 0..m.len() {
            for flip in [0x01u8, 0x10, 0x80, 0xff] {
                m[i] ^= flip;
                let _ = read_npz(&m);
                m[i] ^= flip;
            }
        }
    }

    #[test]
    fn no_panic_on_any_truncation_or_byte_flip() {
        mutate_all(PAIR);
        mutate_all(PAIR_COMPRESSED);
        let x = npy(&[1.0, 2.0]);
        mutate_all(&build(
            &[member("x.npy", &x, 8)],
            Opts { zip64_local: true, zip64_central: true, zip64_end: true, ..Opts::default() },
        ));
    }
}
