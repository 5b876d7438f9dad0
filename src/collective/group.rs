//! A c10d process group through the C++ shim (`csrc/dist.cpp`): PyTorch's TCPStore for the
//! rendezvous and small messages, Gloo (or NCCL) for the collectives.

use std::ffi::{c_char, c_int, c_void, CString};
use std::time::Duration;
use tch::Tensor;

#[repr(C)]
struct KdGroup {
    _opaque: [u8; 0],
}

#[repr(C)]
struct KdStore {
    _opaque: [u8; 0],
}

extern "C" {
    fn kd_gloo_built() -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn kd_group_new(
        backend: *const c_char,
        host: *const c_char,
        port: c_int,
        rank: c_int,
        size: c_int,
        timeout_ms: i64,
        nccl_create: *mut c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> *mut KdGroup;
    fn kd_group_free(g: *mut KdGroup);
    fn kd_allreduce_sum(g: *mut KdGroup, t: *mut c_void, err: *mut c_char, len: usize) -> c_int;
    fn kd_group_store(g: *mut KdGroup) -> *mut KdStore;
    fn kd_store_clone(s: *mut KdStore, err: *mut c_char, len: usize) -> *mut KdStore;
    fn kd_store_free(s: *mut KdStore);
    fn kd_store_set(
        s: *mut KdStore,
        key: *const c_char,
        data: *const u8,
        n: usize,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
    fn kd_store_check(s: *mut KdStore, key: *const c_char, err: *mut c_char, len: usize) -> c_int;
    fn kd_store_get(
        s: *mut KdStore,
        key: *const c_char,
        data: *mut *mut u8,
        n: *mut usize,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
}

/// Whether this build has the Gloo backend (it needs libgloo-dev's headers at build time).
pub fn gloo_built() -> bool {
    // SAFETY: a constant from the shim.
    unsafe { kd_gloo_built() != 0 }
}

/// A failed collective or store operation, in libtorch's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GroupError(pub String);

/// Runs a shim call with an error buffer.
fn call(f: impl FnOnce(*mut c_char, usize) -> c_int) -> Result<(), GroupError> {
    let mut err = vec![0 as c_char; 1024];
    let rc = f(err.as_mut_ptr(), err.len());
    if rc == 0 {
        return Ok(());
    }
    // SAFETY: the shim wrote a NUL-terminated message into the buffer.
    let message = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) };
    Err(GroupError(tidy(&message.to_string_lossy())))
}

/// Gloo's message without its source location and its advice to file a bug: `[.../pair.cc:537]
/// Read error [127.0.0.1]:19877: Connection reset by peer. This is typically caused by ...`.
fn tidy(message: &str) -> String {
    let message = message.lines().next().unwrap_or(message);
    let message = match message.strip_prefix('[').and_then(|m| m.split_once("] ")) {
        Some((location, rest)) if location.contains(".cc:") || location.contains(".cpp:") => rest,
        _ => message,
    };
    let message = message
        .split(". This is typically")
        .next()
        .unwrap_or(message)
        .trim();
    match message.to_lowercase().contains("timed out") {
        true => format!(
            "{message} (after distributed.timeout_s: a rank is stuck, or gone without closing its \
             connections)"
        ),
        false => message.to_string(),
    }
}

fn c_string(s: &str) -> CString {
    CString::new(s).expect("no NUL in keys and hosts")
}

pub struct Group {
    raw: *mut KdGroup,
    /// The group's own client of the job's store (freed with the group).
    store: Store,
}

// SAFETY: c10d stores and backends are thread-safe; the group is used by one thread at a time.
unsafe impl Send for Group {}

impl Group {
    /// Joins the group: rank 0 serves the store at `host:port`, the others connect to it; returns
    /// once all `size` ranks are there (or `timeout` passes).
    pub fn join(
        backend: &str,
        host: &str,
        port: u16,
        rank: usize,
        size: usize,
        timeout: Duration,
        nccl_create: Option<*mut c_void>,
    ) -> Result<Group, GroupError> {
        let (backend, host) = (c_string(backend), c_string(host));
        let mut raw = std::ptr::null_mut();
        call(|err, len| {
            // SAFETY: valid C strings and an error buffer of `len` bytes.
            raw = unsafe {
                kd_group_new(
                    backend.as_ptr(),
                    host.as_ptr(),
                    c_int::from(port),
                    rank as c_int,
                    size as c_int,
                    timeout.as_millis() as i64,
                    nccl_create.unwrap_or(std::ptr::null_mut()),
                    err,
                    len,
                )
            };
            i32::from(raw.is_null())
        })?;
        Ok(Group {
            raw,
            // SAFETY: the group's store lives as long as the group.
            store: Store {
                raw: unsafe { kd_group_store(raw) },
                owned: false,
            },
        })
    }

    /// Sums `t` over all ranks, in place.
    pub fn all_reduce_sum(&self, t: &mut Tensor) -> Result<(), GroupError> {
        // SAFETY: tch's tensor pointer is an `at::Tensor*`, alive for the call.
        call(|err, len| unsafe { kd_allreduce_sum(self.raw, t.as_mut_ptr().cast(), err, len) })
    }

    /// The job's key-value store, through the group's connection.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// A client of the job's TCPStore (rank 0 serves it): small messages between ranks.
pub struct Store {
    raw: *mut KdStore,
    /// A clone frees its client; the group's own is freed with the group.
    owned: bool,
}

// SAFETY: a c10d store client serialises its own operations; each `Store` has one user at a time.
unsafe impl Send for Store {}

impl Store {
    /// Another client of the same store, with its own connection: for a thread that must not
    /// queue behind this one's calls.
    pub fn connect_again(&self) -> Result<Store, GroupError> {
        let mut raw = std::ptr::null_mut();
        call(|err, len| {
            // SAFETY: a live store client and an error buffer of `len` bytes.
            raw = unsafe { kd_store_clone(self.raw, err, len) };
            i32::from(raw.is_null())
        })?;
        Ok(Store { raw, owned: true })
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), GroupError> {
        let key = c_string(key);
        // SAFETY: valid key and value for the call.
        call(|err, len| unsafe {
            kd_store_set(
                self.raw,
                key.as_ptr(),
                value.as_ptr(),
                value.len(),
                err,
                len,
            )
        })
    }

    /// Whether `key` is set (an error when the store's server, rank 0, is gone).
    pub fn has(&self, key: &str) -> Result<bool, GroupError> {
        let key = c_string(key);
        let mut found = false;
        call(|err, len| {
            // SAFETY: valid key and error buffer.
            let rc = unsafe { kd_store_check(self.raw, key.as_ptr(), err, len) };
            found = rc == 1;
            i32::from(rc < 0)
        })?;
        Ok(found)
    }

    /// The value of `key`, waiting for it up to the group's timeout.
    pub fn get(&self, key: &str) -> Result<Vec<u8>, GroupError> {
        let key = c_string(key);
        let (mut data, mut n) = (std::ptr::null_mut(), 0usize);
        // SAFETY: out-pointers valid for the call; the buffer is malloc'd by the shim.
        call(|err, len| unsafe {
            kd_store_get(self.raw, key.as_ptr(), &mut data, &mut n, err, len)
        })?;
        // SAFETY: the shim malloc'd `n` bytes at `data` (at least 1), freed here.
        let value = unsafe { std::slice::from_raw_parts(data, n).to_vec() };
        unsafe { libc::free(data.cast()) };
        Ok(value)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: made by kd_store_clone, freed once.
            unsafe { kd_store_free(self.raw) }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: created by kd_group_new, freed once.
        unsafe { kd_group_free(self.raw) }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn gloo_messages_lose_their_source_location_and_advice() {
        assert_eq!(
            super::tidy("[/__w/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:19877: Connection reset by peer. This is typically caused by a remote worker hanging. GLHF!"),
            "Read error [127.0.0.1]:19877: Connection reset by peer"
        );
        assert!(
            super::tidy("Timed out waiting 10000ms\nException raised from").starts_with(
                "Timed out waiting 10000ms (after distributed.timeout_s: a rank is stuck"
            )
        );
    }
}
