//! The order of a run of rows under a sort, from one packed integer key per row.
//!
//! Each sort column becomes an order-preserving integer code — integers, dates and times offset
//! from the run's minimum, doubles by their IEEE total-order bits (the order DataFusion's sorts
//! use), strings and binaries by their rank among the run's distinct values — with NULLs placed
//! first or last and descending columns mirrored. The codes take as many bits as the run's
//! range needs (a panel's `security_id` ~13 bits, its dates ~11), so a `(security_id, date)`
//! key and the row's position fit in one `u64`: a least-significant-digit radix sort on the key
//! bits (three 8-bit passes there) orders the run, and equal keys keep their input order. Keys
//! wider than 128 bits, or columns of other types, fall back to Arrow's `lexsort_to_indices`.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::{SortColumn, SortOptions, concat, lexsort_to_indices};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Date64Type, DurationMicrosecondType,
    DurationMillisecondType, DurationNanosecondType, DurationSecondType, Float32Type, Float64Type,
    Int8Type, Int16Type, Int32Type, Int64Type, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use datafusion::common::{HashMap, Result};

/// Whether a column of this type gets an integer code (otherwise the sort is not replaced).
pub fn encodable(data_type: &DataType) -> bool {
    use DataType::*;
    matches!(
        data_type,
        Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float32
            | Float64
            | Date32
            | Date64
            | Time32(_)
            | Time64(_)
            | Timestamp(_, _)
            | Duration(_)
            | Utf8
            | LargeUtf8
            | Utf8View
            | Binary
            | LargeBinary
            | BinaryView
    )
}

/// The sorted order of a run given as batches: `(batch, row)` per output row, or `None` when
/// the rows already stand in that order (an empty run included).
///
/// `columns[k][b]` is sort column `k` evaluated on batch `b`; `options[k]` its direction.
pub fn sorted_order(
    columns: &[Vec<ArrayRef>],
    options: &[SortOptions],
) -> Result<Option<Vec<(u32, u32)>>> {
    let Some(first) = columns.first() else {
        return Ok(None);
    };
    let lengths: Vec<usize> = first.iter().map(|a| a.len()).collect();
    let rows: usize = lengths.iter().sum();
    if rows == 0 {
        return Ok(None);
    }
    let row_bits = bits_for(lengths.iter().copied().max().unwrap_or(1) as u128 - 1);
    let index_bits = row_bits + bits_for(lengths.len() as u128 - 1);
    let mut codes = Vec::with_capacity(columns.len());
    for (arrays, opts) in columns.iter().zip(options) {
        match ColumnCodes::try_new(arrays, *opts)? {
            Some(c) => codes.push(c),
            None => return lexsorted(columns, options, &lengths),
        }
    }
    let key_bits: u32 = codes.iter().map(|c| c.bits).sum();
    if key_bits + index_bits <= 64 {
        Ok(radix_order::<u64>(
            &codes, &lengths, row_bits, index_bits, key_bits,
        ))
    } else if key_bits + index_bits <= 128 {
        Ok(radix_order::<u128>(
            &codes, &lengths, row_bits, index_bits, key_bits,
        ))
    } else {
        lexsorted(columns, options, &lengths)
    }
}

/// Bits needed to hold every value up to `max`.
fn bits_for(max: u128) -> u32 {
    128 - max.leading_zeros()
}

/// One sort column's final codes: `bits` wide, in the direction and NULL placement asked for.
struct ColumnCodes {
    codes: Vec<u64>,
    bits: u32,
}

impl ColumnCodes {
    /// `None` when the type has no code (the caller falls back).
    fn try_new(arrays: &[ArrayRef], options: SortOptions) -> Result<Option<Self>> {
        let Some(raw) = raw_codes(arrays) else {
            return Ok(None);
        };
        let mut codes = raw.codes;
        let has_nulls = arrays.iter().any(|a| a.null_count() > 0);
        let distinct = raw.values + u128::from(has_nulls);
        if distinct > 1 << 64 {
            // A full 64-bit range and NULLs: 65 bits.
            return Ok(None);
        }
        // Values get 0..values (mirrored when descending); a NULL goes below or above them.
        // Every code fits in 64 bits: the largest is `distinct - 1`.
        let top = (raw.values - 1) as u64;
        let null_code = if options.nulls_first {
            0
        } else {
            top.wrapping_add(1)
        };
        let offset = u64::from(has_nulls && options.nulls_first);
        if options.descending {
            codes.iter_mut().for_each(|c| *c = top - *c + offset);
        } else if offset > 0 {
            codes.iter_mut().for_each(|c| *c += offset);
        }
        if has_nulls {
            let mut at = 0;
            for array in arrays {
                if let Some(nulls) = array.nulls() {
                    for i in nulls.iter().enumerate().filter(|(_, v)| !v).map(|(i, _)| i) {
                        codes[at + i] = null_code;
                    }
                }
                at += array.len();
            }
        }
        Ok(Some(Self {
            codes,
            bits: bits_for(distinct.max(1) - 1),
        }))
    }
}

/// Ascending codes `0..values` of a column's non-NULL rows (NULL rows hold any code below
/// `values`); `values` is at most 2^64.
struct RawCodes {
    codes: Vec<u64>,
    values: u128,
}

fn raw_codes(arrays: &[ArrayRef]) -> Option<RawCodes> {
    let data_type = arrays.first()?.data_type().clone();
    use DataType::*;
    Some(match data_type {
        Boolean => {
            let mut codes = Vec::new();
            for a in arrays {
                let a = a.as_boolean();
                codes.extend(a.values().iter().map(u64::from));
            }
            offset_codes(codes, arrays)
        }
        Int8 => signed::<Int8Type>(arrays),
        Int16 => signed::<Int16Type>(arrays),
        Int32 => signed::<Int32Type>(arrays),
        Int64 => signed::<Int64Type>(arrays),
        Date32 => signed::<Date32Type>(arrays),
        Date64 => signed::<Date64Type>(arrays),
        Time32(TimeUnit::Second) => signed::<Time32SecondType>(arrays),
        Time32(TimeUnit::Millisecond) => signed::<Time32MillisecondType>(arrays),
        Time64(TimeUnit::Microsecond) => signed::<Time64MicrosecondType>(arrays),
        Time64(TimeUnit::Nanosecond) => signed::<Time64NanosecondType>(arrays),
        Timestamp(TimeUnit::Second, _) => signed::<TimestampSecondType>(arrays),
        Timestamp(TimeUnit::Millisecond, _) => signed::<TimestampMillisecondType>(arrays),
        Timestamp(TimeUnit::Microsecond, _) => signed::<TimestampMicrosecondType>(arrays),
        Timestamp(TimeUnit::Nanosecond, _) => signed::<TimestampNanosecondType>(arrays),
        Duration(TimeUnit::Second) => signed::<DurationSecondType>(arrays),
        Duration(TimeUnit::Millisecond) => signed::<DurationMillisecondType>(arrays),
        Duration(TimeUnit::Microsecond) => signed::<DurationMicrosecondType>(arrays),
        Duration(TimeUnit::Nanosecond) => signed::<DurationNanosecondType>(arrays),
        UInt8 => unsigned::<UInt8Type>(arrays),
        UInt16 => unsigned::<UInt16Type>(arrays),
        UInt32 => unsigned::<UInt32Type>(arrays),
        UInt64 => unsigned::<UInt64Type>(arrays),
        Float32 => primitive::<Float32Type>(arrays, |v| {
            let bits = u64::from(v.to_bits());
            if bits >> 31 == 1 {
                !bits & 0xffff_ffff
            } else {
                bits | (1 << 31)
            }
        }),
        Float64 => primitive::<Float64Type>(arrays, |v| {
            let bits = v.to_bits();
            if bits >> 63 == 1 {
                !bits
            } else {
                bits | (1 << 63)
            }
        }),
        Utf8 => ranks(arrays, |a, out| {
            out.extend(a.as_string::<i32>().iter().map(|v| v.map(str::as_bytes)))
        }),
        LargeUtf8 => ranks(arrays, |a, out| {
            out.extend(a.as_string::<i64>().iter().map(|v| v.map(str::as_bytes)))
        }),
        Utf8View => ranks(arrays, |a, out| {
            out.extend(a.as_string_view().iter().map(|v| v.map(str::as_bytes)))
        }),
        Binary => ranks(arrays, |a, out| out.extend(a.as_binary::<i32>().iter())),
        LargeBinary => ranks(arrays, |a, out| out.extend(a.as_binary::<i64>().iter())),
        BinaryView => ranks(arrays, |a, out| out.extend(a.as_binary_view().iter())),
        _ => return None,
    })
}

fn signed<T: ArrowPrimitiveType>(arrays: &[ArrayRef]) -> RawCodes
where
    T::Native: Into<i64>,
{
    primitive::<T>(arrays, |v| (v.into() as u64) ^ (1 << 63))
}

fn unsigned<T: ArrowPrimitiveType>(arrays: &[ArrayRef]) -> RawCodes
where
    T::Native: Into<u64>,
{
    primitive::<T>(arrays, |v| v.into())
}

/// Monotone codes of every row (NULL slots included), offset to the non-NULL minimum.
fn primitive<T: ArrowPrimitiveType>(
    arrays: &[ArrayRef],
    code: impl Fn(T::Native) -> u64,
) -> RawCodes {
    let mut codes = Vec::with_capacity(arrays.iter().map(|a| a.len()).sum());
    for a in arrays {
        codes.extend(a.as_primitive::<T>().values().iter().map(|v| code(*v)));
    }
    offset_codes(codes, arrays)
}

/// Subtract the smallest non-NULL code; NULL slots become 0. A column of only NULLs has one
/// value.
fn offset_codes(mut codes: Vec<u64>, arrays: &[ArrayRef]) -> RawCodes {
    let mut at = 0;
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    for a in arrays {
        let slice = &codes[at..at + a.len()];
        match a.nulls() {
            None => {
                for c in slice {
                    lo = lo.min(*c);
                    hi = hi.max(*c);
                }
            }
            Some(nulls) => {
                for (c, valid) in slice.iter().zip(nulls.iter()) {
                    if valid {
                        lo = lo.min(*c);
                        hi = hi.max(*c);
                    }
                }
            }
        }
        at += a.len();
    }
    if lo > hi {
        codes.iter_mut().for_each(|c| *c = 0);
        return RawCodes { codes, values: 1 };
    }
    let mut at = 0;
    for a in arrays {
        let slice = &mut codes[at..at + a.len()];
        match a.nulls() {
            None => slice.iter_mut().for_each(|c| *c -= lo),
            Some(nulls) => {
                for (c, valid) in slice.iter_mut().zip(nulls.iter()) {
                    *c = if valid { *c - lo } else { 0 };
                }
            }
        }
        at += a.len();
    }
    RawCodes {
        codes,
        values: u128::from(hi - lo) + 1,
    }
}

/// Each row's rank among the distinct byte strings of the run (byte-wise order, as Arrow
/// compares strings); NULL rows get 0.
fn ranks<'a>(
    arrays: &'a [ArrayRef],
    values_of: impl Fn(&'a ArrayRef, &mut Vec<Option<&'a [u8]>>),
) -> RawCodes {
    let mut ids: HashMap<&[u8], u32> = HashMap::new();
    let mut distinct: Vec<&[u8]> = Vec::new();
    let mut codes = Vec::with_capacity(arrays.iter().map(|a| a.len()).sum());
    let mut values = Vec::new();
    for a in arrays {
        values.clear();
        values_of(a, &mut values);
        for v in &values {
            codes.push(match v {
                None => 0,
                Some(bytes) => u64::from(*ids.entry(bytes).or_insert_with(|| {
                    distinct.push(bytes);
                    (distinct.len() - 1) as u32
                })),
            });
        }
    }
    let mut by_value: Vec<u32> = (0..distinct.len() as u32).collect();
    by_value.sort_unstable_by(|a, b| distinct[*a as usize].cmp(distinct[*b as usize]));
    let mut rank_of = vec![0u64; distinct.len()];
    for (rank, id) in by_value.iter().enumerate() {
        rank_of[*id as usize] = rank as u64;
    }
    // NULL slots hold 0, a valid rank: they are overwritten by the caller.
    codes
        .iter_mut()
        .for_each(|c| *c = rank_of.get(*c as usize).copied().unwrap_or(0));
    RawCodes {
        codes,
        values: (distinct.len() as u128).max(1),
    }
}

/// An unsigned integer a radix sort can take apart a byte at a time.
trait RadixKey: Copy + Default + Ord {
    fn byte(self, shift: u32) -> usize;
    fn pack(codes: &[&ColumnCodes], row: usize, index: u64, index_bits: u32) -> Self;
    fn index(self, index_bits: u32) -> u64;
}

/// A shift by the type's full width (a 64-bit code alone in a `u64`) leaves nothing.
macro_rules! radix_key {
    ($t:ty) => {
        impl RadixKey for $t {
            fn byte(self, shift: u32) -> usize {
                ((self >> shift) & 0xff) as usize
            }
            fn pack(codes: &[&ColumnCodes], row: usize, index: u64, index_bits: u32) -> Self {
                let mut key: $t = 0;
                for c in codes {
                    key = key.checked_shl(c.bits).unwrap_or(0) | <$t>::from(c.codes[row]);
                }
                key.checked_shl(index_bits).unwrap_or(0) | <$t>::from(index)
            }
            fn index(self, index_bits: u32) -> u64 {
                (self
                    & (1 as $t)
                        .checked_shl(index_bits)
                        .map_or(<$t>::MAX, |b| b - 1)) as u64
            }
        }
    };
}

radix_key!(u64);
radix_key!(u128);

/// Pack `codes` above each row's `(batch, row)` position, radix-sort on the code bits, and
/// unpack the positions; `None` when the rows are in order already.
fn radix_order<K: RadixKey>(
    codes: &[ColumnCodes],
    lengths: &[usize],
    row_bits: u32,
    index_bits: u32,
    key_bits: u32,
) -> Option<Vec<(u32, u32)>> {
    let codes: Vec<&ColumnCodes> = codes.iter().collect();
    let rows: usize = lengths.iter().sum();
    let mut keys: Vec<K> = Vec::with_capacity(rows);
    let mut at = 0;
    for (batch, len) in lengths.iter().enumerate() {
        for row in 0..*len {
            let index = ((batch as u64) << row_bits) | row as u64;
            keys.push(K::pack(&codes, at + row, index, index_bits));
        }
        at += len;
    }
    // Input already in order (a partition read in the order it was written): the positions
    // are ascending, so keys that never decrease are the sorted order as they stand.
    if keys.windows(2).all(|pair| pair[0] <= pair[1]) {
        return None;
    }
    radix_sort(&mut keys, index_bits, index_bits + key_bits);
    let row_mask = (1u64 << row_bits) - 1;
    Some(
        keys.iter()
            .map(|k| {
                let index = k.index(index_bits);
                ((index >> row_bits) as u32, (index & row_mask) as u32)
            })
            .collect(),
    )
}

/// Stable least-significant-digit radix sort on bits `from..to` of the keys, a byte at a time;
/// a byte every key shares costs one counting pass and no move.
fn radix_sort<K: RadixKey>(keys: &mut Vec<K>, from: u32, to: u32) {
    let n = keys.len();
    let mut spare = vec![K::default(); n];
    let mut shift = from;
    while shift < to {
        let mut counts = [0usize; 256];
        for k in keys.iter() {
            counts[k.byte(shift)] += 1;
        }
        if !counts.contains(&n) {
            let mut next = [0usize; 256];
            let mut sum = 0;
            for (slot, count) in next.iter_mut().zip(counts) {
                *slot = sum;
                sum += count;
            }
            for k in keys.iter() {
                let b = k.byte(shift);
                spare[next[b]] = *k;
                next[b] += 1;
            }
            std::mem::swap(keys, &mut spare);
        }
        shift += 8;
    }
}

/// Arrow's comparison sort over the concatenated sort columns, for keys too wide to pack.
fn lexsorted(
    columns: &[Vec<ArrayRef>],
    options: &[SortOptions],
    lengths: &[usize],
) -> Result<Option<Vec<(u32, u32)>>> {
    let sort_columns = columns
        .iter()
        .zip(options)
        .map(|(arrays, opts)| {
            let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
            Ok(SortColumn {
                values: concat(&refs)?,
                options: Some(*opts),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let order = lexsort_to_indices(&sort_columns, None)?;
    if order
        .values()
        .iter()
        .enumerate()
        .all(|(k, &i)| i as usize == k)
    {
        return Ok(None);
    }
    let mut starts = Vec::with_capacity(lengths.len());
    let mut at = 0;
    for len in lengths {
        starts.push(at);
        at += len;
    }
    Ok(Some(
        order
            .values()
            .iter()
            .map(|i| {
                let i = *i as usize;
                let batch = starts.partition_point(|s| *s <= i) - 1;
                (batch as u32, (i - starts[batch]) as u32)
            })
            .collect(),
    ))
}
