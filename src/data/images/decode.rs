//! Decoding an image folder's files: their headers (the default size and channels), then every
//! image, in parallel, to `[C, H, W]` bytes of one size.

use super::{ByteStore, Decoded, Entry, Listing, Pixels, SPLITS};
use crate::config::DataConfig;
use crate::data::progress::Progress;
use crate::data::{err, DataError};
use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, GrayImage, ImageDecoder, ImageReader};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;

/// What an image's header says: its size and whether it is stored in colour.
struct Header {
    height: usize,
    width: usize,
    colour: bool,
}

fn header(path: &Path) -> Result<Header, String> {
    let decoder = ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| e.to_string())?
        .into_decoder()
        .map_err(|e| e.to_string())?;
    let (width, height) = decoder.dimensions();
    Ok(Header {
        height: height as usize,
        width: width as usize,
        colour: decoder.color_type().has_color(),
    })
}

/// An image that cannot be read: skipped and counted with `data.skip_bad`, else refused.
fn bad(cfg: &DataConfig, path: &Path, why: String, skipped: &mut usize) -> Result<(), DataError> {
    if !cfg.skip_bad {
        return Err(err(
            path.display(),
            format!("cannot decode this image ({why}); data.skip_bad = true skips such files"),
        ));
    }
    *skipped += 1;
    Ok(())
}

/// The images to decode and how: those whose headers could be read, at one size and number of
/// channels.
pub(in crate::data) struct Plan<'a> {
    pub entries: Vec<&'a Entry>,
    pub size: [usize; 2],
    pub channels: usize,
    pub skipped: usize,
}

impl Plan<'_> {
    pub fn chw(&self) -> usize {
        self.channels * self.size[0] * self.size[1]
    }
}

/// The size and channels of the preset, else of the images' headers: the most common size
/// (ties: the larger), 3 channels if any image is in colour. With `headers`, or without both
/// settings, every header is read, and images whose headers cannot be are refused or skipped.
pub(super) fn plan<'a>(
    listing: &'a Listing,
    cfg: &DataConfig,
    headers: bool,
) -> Result<Plan<'a>, DataError> {
    let mut skipped = 0;
    let mut entries: Vec<&Entry> = listing.entries.iter().collect();
    let (size, channels) = match (cfg.size, cfg.channels) {
        (Some(size), Some(channels)) if !headers => (size, channels),
        _ => {
            let what = format!("reading the headers of {} images", entries.len());
            let progress = Progress::start(what, entries.len());
            let headers: Vec<Result<Header, String>> = entries
                .par_iter()
                .map(|e| {
                    let read = header(&e.path);
                    progress.tick();
                    read
                })
                .collect();
            progress.finish();
            let mut kept = Vec::with_capacity(entries.len());
            let mut sizes: HashMap<[usize; 2], usize> = HashMap::new();
            let mut colour = false;
            for (e, h) in entries.iter().zip(headers) {
                match h {
                    Ok(h) => {
                        *sizes.entry([h.height, h.width]).or_default() += 1;
                        colour |= h.colour;
                        kept.push(*e);
                    }
                    Err(why) => bad(cfg, &e.path, why, &mut skipped)?,
                }
            }
            entries = kept;
            let common = sizes.into_iter().max_by_key(|&([h, w], n)| (n, h * w, h));
            let size = cfg.size.or(common.map(|(s, _)| s)).unwrap_or([1, 1]);
            (size, cfg.channels.unwrap_or(if colour { 3 } else { 1 }))
        }
    };
    Ok(Plan {
        entries,
        size,
        channels,
        skipped,
    })
}

/// Images decoded in one parallel batch: enough to keep every core busy, few enough that a
/// folder larger than memory streams through.
const CHUNK_BYTES: usize = 64 << 20;

/// Takes a split's decoded images in order: `(split, [n, C, H, W] bytes, n labels)`.
pub(in crate::data) type Sink<'a> = dyn FnMut(usize, &[u8], &[i64]) -> Result<(), DataError> + 'a;

/// Decodes every image of the plan, in parallel, a chunk at a time, and gives `sink` each
/// split's readable images in order: `(split, [n, C, H, W] bytes, n labels)`. Returns how many
/// images were skipped (with `data.skip_bad`; else an unreadable image is an error).
pub(in crate::data) fn decode_each(
    dir: &Path,
    listing: &Listing,
    cfg: &DataConfig,
    plan: &Plan,
    sink: &mut Sink,
) -> Result<usize, DataError> {
    decode_chunked(dir, listing, cfg, plan, CHUNK_BYTES, sink)
}

/// `decode_each` in chunks of at most `chunk_bytes` (at least one image).
pub(super) fn decode_chunked(
    dir: &Path,
    listing: &Listing,
    cfg: &DataConfig,
    plan: &Plan,
    chunk_bytes: usize,
    sink: &mut Sink,
) -> Result<usize, DataError> {
    let (chw, [h, w], channels) = (plan.chw(), plan.size, plan.channels);
    let mut skipped = plan.skipped;
    let what = format!(
        "decoding {} images of {}",
        plan.entries.len(),
        dir.display()
    );
    let progress = Progress::start(what, plan.entries.len());
    for split in (0..SPLITS.len()).filter(|&s| listing.present[s]) {
        let these: Vec<&Entry> = plan
            .entries
            .iter()
            .copied()
            .filter(|e| e.split == split)
            .collect();
        let chunk = (chunk_bytes / chw).clamp(1, these.len().max(1));
        let mut bytes = vec![0u8; chunk * chw];
        let mut kept = 0;
        for group in these.chunks(chunk) {
            let bytes = &mut bytes[..group.len() * chw];
            let results: Vec<Result<(), String>> = bytes
                .par_chunks_mut(chw)
                .zip(group.par_iter())
                .map(|(out, e)| {
                    let decoded = decode_into(&e.path, channels, [h, w], out);
                    progress.tick();
                    decoded
                })
                .collect();
            // Rows of images that failed are closed up, in order.
            let mut labels = Vec::with_capacity(group.len());
            for (i, (e, result)) in group.iter().zip(results).enumerate() {
                match result {
                    Ok(()) => {
                        let row = labels.len();
                        if row != i {
                            bytes.copy_within(i * chw..(i + 1) * chw, row * chw);
                        }
                        labels.push(e.class as i64);
                    }
                    Err(why) => bad(cfg, &e.path, why, &mut skipped)?,
                }
            }
            sink(split, &bytes[..labels.len() * chw], &labels)?;
            kept += labels.len();
        }
        if kept == 0 {
            return Err(err(
                dir.join(SPLITS[split]).display(),
                format!("holds no readable images ({skipped} skipped)"),
            ));
        }
    }
    progress.finish();
    Ok(skipped)
}

/// Decodes every image of the plan into memory (the caller has checked that they fit).
pub(super) fn decode(
    dir: &Path,
    listing: &Listing,
    cfg: &DataConfig,
    plan: Plan,
) -> Result<Decoded, DataError> {
    let chw = plan.chw();
    let mut splits: [Option<(Vec<i64>, Vec<u8>)>; 3] = Default::default();
    let skipped = decode_each(dir, listing, cfg, &plan, &mut |split, pixels, labels| {
        let (l, p) = splits[split].get_or_insert_with(|| {
            let n = plan.entries.iter().filter(|e| e.split == split).count();
            (Vec::with_capacity(n), Vec::with_capacity(n * chw))
        });
        l.extend_from_slice(labels);
        p.extend_from_slice(pixels);
        Ok(())
    })?;
    Ok(Decoded {
        shape: [plan.channels, plan.size[0], plan.size[1]],
        splits: splits.map(|s| {
            s.map(|(labels, bytes)| Pixels {
                labels,
                bytes: ByteStore::Owned(bytes),
            })
        }),
        skipped,
        common_size: cfg.size.is_none(),
    })
}

/// Decodes one image into `out` as `[C, H, W]` bytes.
pub(super) fn decode_into(
    path: &Path,
    channels: usize,
    [h, w]: [usize; 2],
    out: &mut [u8],
) -> Result<(), String> {
    let image = ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| e.to_string())?
        .decode()
        .map_err(|e| e.to_string())?;
    let (h, w) = (h as u32, w as u32);
    if channels == 1 {
        let gray = gray(image);
        let (from_w, from_h) = gray.dimensions();
        resize_into(
            gray.into_raw(),
            [from_w, from_h],
            PixelType::U8,
            [w, h],
            out,
        )?;
        return Ok(());
    }
    // Interleaved RGB to planes; alpha is dropped, as PIL's convert("RGB") does.
    let rgb = image.into_rgb8();
    let (from_w, from_h) = rgb.dimensions();
    let mut interleaved = vec![0u8; out.len()];
    resize_into(
        rgb.into_raw(),
        [from_w, from_h],
        PixelType::U8x3,
        [w, h],
        &mut interleaved,
    )?;
    let plane = out.len() / 3;
    for (i, px) in interleaved.chunks_exact(3).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            out[c * plane + i] = v;
        }
    }
    Ok(())
}

/// `pixels` (`from` = [width, height]) resized into `out` (`to`), with a bilinear (triangle)
/// filter whose support widens when shrinking, as PIL's `resize(..., BILINEAR)` does; SIMD
/// convolutions (fast_image_resize), several times faster than `image`'s generic resize.
fn resize_into(
    pixels: Vec<u8>,
    from: [u32; 2],
    kind: PixelType,
    to: [u32; 2],
    out: &mut [u8],
) -> Result<(), String> {
    if from == to {
        out.copy_from_slice(&pixels);
        return Ok(());
    }
    let source = Image::from_vec_u8(from[0], from[1], pixels, kind).map_err(|e| e.to_string())?;
    let mut target = Image::from_slice_u8(to[0], to[1], out, kind).map_err(|e| e.to_string())?;
    let bilinear = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize(&source, &mut target, &bilinear)
        .map_err(|e| e.to_string())
}

/// Gray as PIL's convert("L") makes it (ITU-R 601-2 luma, in its fixed point), so a teacher
/// trained through torchvision sees the values it was trained on.
fn gray(image: DynamicImage) -> GrayImage {
    if !image.color().has_color() {
        return image.into_luma8();
    }
    let rgb = image.into_rgb8();
    let (w, h) = rgb.dimensions();
    let luma = rgb
        .as_raw()
        .chunks_exact(3)
        .map(|p| {
            let [r, g, b] = [p[0], p[1], p[2]].map(u32::from);
            ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as u8
        })
        .collect();
    GrayImage::from_raw(w, h, luma).expect("one value per pixel")
}

/// `bytes` as GiB with one decimal, or as whole MiB below 1 GiB (where one decimal of GiB
/// would not tell 0.44 from 0.36).
pub(in crate::data) fn gib(bytes: u64) -> String {
    match bytes < 1 << 30 {
        true => format!("{} MiB", (bytes + (1 << 19)) >> 20),
        false => format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30)),
    }
}

/// Refuses images whose bytes do not fit twice in the memory this process may still take (its
/// cgroup's limit included, as for a model's parameters): the decoded images, and the splits
/// drawn from them, are both held for a moment. Batches are made floats one at a time.
pub(in crate::data) fn fits_in_memory(
    dir: &Path,
    images: usize,
    chw: usize,
) -> Result<(), DataError> {
    let bytes = images as u64 * chw as u64;
    let available = crate::memory::available_memory().map(|a| u64::try_from(a).unwrap_or(u64::MAX));
    match available {
        Some(available) if bytes.saturating_mul(2) > available => Err(err(
            dir.display(),
            format!(
                "{images} images of {chw} bytes take {} as bytes, held twice while the splits \
                 are drawn: more than the {} of memory available; choose a smaller data.size, \
                 data.channels = 1, or fewer images",
                gib(bytes),
                gib(available)
            ),
        )),
        _ => Ok(()),
    }
}
