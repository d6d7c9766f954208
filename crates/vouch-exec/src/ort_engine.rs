//! ONNX Runtime through `ort`, loaded at run time from a shared library (`ORT_DYLIB_PATH` or the
//! path in config), so the build never downloads anything. The fast default engine.

use parking_lot::{Condvar, Mutex};
use std::borrow::Cow;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use ort::AsPointer;
use ort::environment::Environment;
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{RunOptions, Session, SessionInputValue};
use ort::value::{DynValue, TensorElementType, TensorRef, ValueType};
use vouch_core::{ExecProfile, ModelSignature, Tensor, TensorData, TensorMap};

use crate::engine::{Engine, EngineKind, ExecError, LoadedModel};
use crate::model_file::ModelFile;
use crate::run_control::RunControl;

pub struct OrtEngine {
    env: Environment,
    version: String,
    threads: usize,
    sessions: usize,
    /// Most bytes all runs' tensors may hold at once (the shared arena's cap).
    arena_bytes: usize,
}

impl OrtEngine {
    /// Loads the ONNX Runtime library at `dylib`. Fails (without panicking) when the file is
    /// missing or is not a compatible ONNX Runtime. ONNX Runtime allows one environment per
    /// process, so the first successful load is shared by every engine made later, and so is
    /// its tensor arena, capped at `arena_bytes`: a run whose tensors would take more (a
    /// `ConstantOfShape` told by its input to make 10 GB) fails with an error instead of
    /// taking the node's memory.
    pub fn load(dylib: &Path, threads: usize, arena_bytes: usize) -> Result<Self, String> {
        static ENV: OnceLock<Result<(Environment, String, usize), String>> = OnceLock::new();
        let (env, version, arena_bytes) = ENV
            .get_or_init(|| {
                if !dylib.is_file() {
                    return Err(format!("no ONNX Runtime library at {}", dylib.display()));
                }
                let builder = ort::init_from(dylib).map_err(|e| e.to_string())?;
                let env = builder
                    .with_name("vouch")
                    .build()
                    .map_err(|e| e.to_string())?;
                register_capped_arena(&env, arena_bytes)?;
                let version = library_version(dylib)
                    .or_else(|| version_from_build_info(ort::info()))
                    .unwrap_or_else(|| "unknown".into());
                Ok((env, version, arena_bytes))
            })
            .clone()?;
        Ok(OrtEngine {
            env,
            version,
            threads: threads.max(1),
            sessions: 1,
            arena_bytes,
        })
    }

    /// Lets up to `n` runs of one loaded model proceed at once (one ONNX Runtime session each:
    /// `Session::run` needs `&mut`). Set it to the executor's worker count so that every worker
    /// can run the same hot model. Sessions beyond the first are built only when a run finds
    /// all existing ones busy; the cache weighs a model as if all `n` existed.
    pub fn with_sessions(mut self, n: usize) -> Self {
        self.sessions = n.max(1);
        self
    }

    fn session(&self, model_bytes: &[u8]) -> Result<Session, String> {
        Session::builder(&self.env)
            .map_err(|e| e.to_string())?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| e.to_string())?
            .with_intra_threads(self.threads)
            .map_err(|e| e.to_string())?
            .with_inter_threads(1)
            .map_err(|e| e.to_string())?
            // Activations come from the process's capped arena; weights stay outside it, so
            // loaded models do not eat the budget of runs.
            .with_env_allocators()
            .map_err(|e| e.to_string())?
            .with_device_allocated_initializers()
            .map_err(|e| e.to_string())?
            .commit_from_memory(model_bytes)
            .map_err(|e| e.to_string())
    }
}

/// Registers one CPU arena for every session of this process, capped at `max_bytes`, that
/// sessions use instead of their own (`session.use_env_allocators`). Past the cap ONNX Runtime
/// fails the allocation with an error status, which fails the run and nothing else.
#[allow(unsafe_code)]
fn register_capped_arena(env: &Environment, max_bytes: usize) -> Result<(), String> {
    let api = ort::api();
    let info = MemoryInfo::new(
        AllocationDevice::CPU,
        0,
        AllocatorType::Arena,
        MemoryType::Default,
    )
    .map_err(|e| e.to_string())?;
    // kSameAsRequested (1): grow by what a run asks for, not by doubling past the cap.
    let keys = [c"max_mem".as_ptr(), c"arena_extend_strategy".as_ptr()];
    let values = [max_bytes, 1usize];
    let mut cfg: *mut ort_sys::OrtArenaCfg = std::ptr::null_mut();
    // SAFETY: the key and value arrays outlive the call and have `keys.len()` entries; `cfg`
    // is an out-pointer ONNX Runtime fills. Statuses are checked and released by `status`.
    unsafe {
        status((api.CreateArenaCfgV2)(
            keys.as_ptr(),
            values.as_ptr(),
            keys.len(),
            &mut cfg,
        ))?;
        let registered = status((api.CreateAndRegisterAllocator)(
            env.ptr().cast_mut(),
            info.ptr(),
            cfg,
        ));
        (api.ReleaseArenaCfg)(cfg);
        registered
    }
}

/// An ONNX Runtime status as a result (null is success), releasing it.
#[allow(unsafe_code)]
unsafe fn status(s: ort_sys::OrtStatusPtr) -> Result<(), String> {
    if s.0.is_null() {
        return Ok(());
    }
    let api = ort::api();
    // SAFETY: a non-null status from the API; its message lives until it is released.
    unsafe {
        let msg = (api.GetErrorMessage)(s.0);
        let text = if msg.is_null() {
            "unknown ONNX Runtime error".to_string()
        } else {
            std::ffi::CStr::from_ptr(msg).to_string_lossy().into_owned()
        };
        (api.ReleaseStatus)(s.0);
        Err(text)
    }
}

/// Asks the library itself (`OrtGetApiBase()->GetVersionString()`): release builds leave the
/// branch out of the build-info string, and receipts must name the exact runtime version.
#[allow(unsafe_code)]
fn library_version(dylib: &Path) -> Option<String> {
    // SAFETY: `ort::init_from` has just loaded this same file as ONNX Runtime and checked its
    // API; `OrtGetApiBase` takes no arguments and returns a pointer to a static table whose
    // `GetVersionString` returns a static NUL-terminated string. The library stays loaded
    // (ort keeps its own handle) for the life of the process.
    unsafe {
        let lib = libloading::Library::new(dylib).ok()?;
        let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort_sys::OrtApiBase> =
            lib.get(b"OrtGetApiBase").ok()?;
        let base = get_base();
        if base.is_null() {
            return None;
        }
        let s = ((*base).GetVersionString)();
        if s.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr(s)
            .to_str()
            .ok()
            .map(str::to_string)
    }
}

/// Fallback: `ort::info()` reads like "ORT Build Info: git-branch=rel-1.32.0, ..."; the release branch
/// names the version.
fn version_from_build_info(info: &str) -> Option<String> {
    let start = info.find("rel-")? + 4;
    let rest = &info[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    (end > 0).then(|| rest[..end].to_string())
}

impl Engine for OrtEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::OnnxRuntime
    }

    fn version(&self) -> String {
        self.version.clone()
    }

    fn load_file(&self, model: &ModelFile) -> Result<Arc<dyn LoadedModel>, ExecError> {
        let err = |reason: String| ExecError::Load {
            engine: EngineKind::OnnxRuntime,
            reason,
        };
        let model_bytes = model.bytes();
        let session = self.session(model_bytes).map_err(err)?;
        // Kept only when more sessions may be built later, from these bytes.
        let spare = (self.sessions > 1).then(|| SessionSource {
            engine: OrtEngine {
                env: self.env.clone(),
                version: self.version.clone(),
                threads: self.threads,
                sessions: self.sessions,
                arena_bytes: self.arena_bytes,
            },
            bytes: model_bytes.into(),
        });
        Ok(Arc::new(OrtModel {
            pool: Mutex::new(Pool {
                idle: vec![PooledSession::new(session).map_err(err)?],
                built: 1,
                failed: false,
            }),
            returned: Condvar::new(),
            max_sessions: self.sessions,
            spare,
            signature: model.signature().clone(),
            row_independence: model.row_independence().clone(),
            bytes: model_bytes.len(),
            threads: self.threads as u32,
            arena_bytes: self.arena_bytes,
        }))
    }
}

/// What a model needs to build another session of itself.
struct SessionSource {
    engine: OrtEngine,
    bytes: Box<[u8]>,
}

/// A session with the run options its runs use: made once, so a run costs no allocation for
/// them; a stopped run's terminate flag is reset before the session goes back to the pool.
struct PooledSession {
    session: Session,
    options: Arc<RunOptions>,
}

impl PooledSession {
    fn new(session: Session) -> Result<Self, String> {
        Ok(PooledSession {
            session,
            options: Arc::new(RunOptions::new().map_err(|e| e.to_string())?),
        })
    }
}

struct Pool {
    idle: Vec<PooledSession>,
    /// Sessions in existence, idle or running.
    built: usize,
    /// Building another session failed once: stay with the ones there are.
    failed: bool,
}

struct OrtModel {
    /// Idle sessions. `Session::run` needs `&mut`, so a run takes one out and puts it back;
    /// up to `max_sessions` runs of this model proceed at once.
    pool: Mutex<Pool>,
    returned: Condvar,
    max_sessions: usize,
    spare: Option<SessionSource>,
    signature: ModelSignature,
    row_independence: Result<(), String>,
    bytes: usize,
    threads: u32,
    arena_bytes: usize,
}

impl OrtModel {
    fn run_with(
        &self,
        inputs: &TensorMap,
        pooled: &mut PooledSession,
    ) -> Result<TensorMap, ExecError> {
        let run_err = |reason: String| ExecError::Run {
            engine: EngineKind::OnnxRuntime,
            reason,
        };
        let mut values: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(inputs.len());
        for (name, t) in inputs.iter() {
            values.push((Cow::Borrowed(name.as_str()), to_ort(t).map_err(run_err)?));
        }
        let outputs = pooled
            .session
            .run_with_options(values, &pooled.options)
            .map_err(|e| run_err(e.to_string()))?;
        let mut map = TensorMap::new();
        for spec in &self.signature.outputs {
            let v = outputs
                .get(&spec.name)
                .ok_or_else(|| run_err(format!("output {:?} missing from the run", spec.name)))?;
            map.insert(spec.name.clone(), from_ort(v).map_err(run_err)?);
        }
        Ok(map)
    }

    /// An idle session, a new one when all are busy and the pool may grow, else waits.
    fn checkout(&self) -> SessionGuard<'_> {
        let mut pool = self.pool.lock();
        loop {
            if let Some(s) = pool.idle.pop() {
                return SessionGuard {
                    model: self,
                    session: Some(s),
                };
            }
            if let Some(src) = &self.spare
                && !pool.failed
                && pool.built < self.max_sessions
            {
                pool.built += 1;
                drop(pool);
                match src.engine.session(&src.bytes).and_then(PooledSession::new) {
                    Ok(s) => {
                        return SessionGuard {
                            model: self,
                            session: Some(s),
                        };
                    }
                    Err(e) => {
                        tracing::warn!("cannot build another ONNX Runtime session: {e}");
                        pool = self.pool.lock();
                        pool.built -= 1;
                        pool.failed = true;
                        continue;
                    }
                }
            }
            self.returned.wait(&mut pool);
        }
    }
}

/// A session taken from the pool, returned when dropped (also on unwinding).
struct SessionGuard<'a> {
    model: &'a OrtModel,
    session: Option<PooledSession>,
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            self.model.pool.lock().idle.push(s);
            self.model.returned.notify_one();
        }
    }
}

impl LoadedModel for OrtModel {
    fn engine(&self) -> EngineKind {
        EngineKind::OnnxRuntime
    }

    fn signature(&self) -> &ModelSignature {
        &self.signature
    }

    fn row_independence(&self) -> &Result<(), String> {
        &self.row_independence
    }

    fn run_controlled(
        &self,
        inputs: &TensorMap,
        control: &RunControl,
    ) -> Result<TensorMap, ExecError> {
        let run_err = |reason: String| ExecError::Run {
            engine: EngineKind::OnnxRuntime,
            reason,
        };
        control.check()?;
        let mut guard = self.checkout();
        let pooled = guard
            .session
            .as_mut()
            .ok_or_else(|| run_err("no session".into()))?;
        {
            let options = pooled.options.clone();
            control.on_stop(move || {
                // ONNX Runtime checks the flag between nodes and inside Loop/Scan bodies.
                let _ = options.terminate();
            });
        }
        let result = self.run_with(inputs, pooled);
        // After this no hook can fire (it runs under the lock `clear_on_stop` takes), so a
        // raised flag is reset before the session serves anyone else.
        control.clear_on_stop();
        if let Some(reason) = control.stopped() {
            pooled
                .options
                .unterminate()
                .map_err(|e| run_err(e.to_string()))?;
            if result.is_err() {
                return Err(control.error(reason));
            }
        }
        match result {
            // The arena's refusal: "Available memory of N is smaller than requested bytes of M".
            Err(ExecError::Run { reason, .. }) if reason.contains("Available memory") => {
                Err(ExecError::MemoryLimit {
                    limit_mib: self.arena_bytes >> 20,
                    detail: reason,
                })
            }
            other => other,
        }
    }

    fn profile(&self) -> ExecProfile {
        // ORT picks kernels by CPU features and batch shape: reproducible on one machine at one
        // batch size, but not promised bit-exact elsewhere, so verifiers compare with a tolerance.
        ExecProfile {
            threads: self.threads,
            deterministic: false,
            batch: 1,
        }
    }

    fn max_concurrency(&self) -> usize {
        self.max_sessions
    }

    fn memory_bytes(&self) -> usize {
        // Per session: the weights it holds plus a fixed overhead; once more for the parsed file
        // (and the bytes kept to build further sessions). Counts sessions not yet built, so
        // growing the pool never exceeds the cache's budget. The overhead is 1 MiB: 50 loaded
        // small models grew the process by 34–41 MiB in all (BENCHMARKS.md, memory with 1,000
        // registered models), registry and caches included — under 1 MiB a session.
        self.max_sessions * (self.bytes + (1 << 20)) + self.bytes
    }
}

fn to_ort(t: &Tensor) -> Result<SessionInputValue<'_>, String> {
    let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
    macro_rules! view {
        ($v:expr) => {
            TensorRef::from_array_view((shape, $v.as_slice()))
                .map(|r| SessionInputValue::from(r.into_dyn()))
                .map_err(|e| e.to_string())
        };
    }
    match t.data() {
        TensorData::Float32(v) => view!(v),
        TensorData::Float64(v) => view!(v),
        TensorData::Int8(v) => view!(v),
        TensorData::Int16(v) => view!(v),
        TensorData::Int32(v) => view!(v),
        TensorData::Int64(v) => view!(v),
        TensorData::Uint8(v) => view!(v),
        TensorData::Uint16(v) => view!(v),
        TensorData::Uint32(v) => view!(v),
        TensorData::Uint64(v) => view!(v),
        TensorData::Bool(v) => view!(v),
    }
}

fn from_ort(v: &DynValue) -> Result<Tensor, String> {
    let ty = match v.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        other => return Err(format!("output of type {other:?} is not a tensor")),
    };
    macro_rules! take {
        ($t:ty, $variant:ident) => {{
            let (shape, data) = v.try_extract_tensor::<$t>().map_err(|e| e.to_string())?;
            (
                shape.iter().map(|&d| d as u64).collect::<Vec<u64>>(),
                TensorData::$variant(data.to_vec()),
            )
        }};
    }
    let (shape, data) = match ty {
        TensorElementType::Float32 => take!(f32, Float32),
        TensorElementType::Float64 => take!(f64, Float64),
        TensorElementType::Int8 => take!(i8, Int8),
        TensorElementType::Int16 => take!(i16, Int16),
        TensorElementType::Int32 => take!(i32, Int32),
        TensorElementType::Int64 => take!(i64, Int64),
        TensorElementType::Uint8 => take!(u8, Uint8),
        TensorElementType::Uint16 => take!(u16, Uint16),
        TensorElementType::Uint32 => take!(u32, Uint32),
        TensorElementType::Uint64 => take!(u64, Uint64),
        TensorElementType::Bool => take!(bool, Bool),
        other => {
            return Err(format!(
                "output element type {other:?} is not supported yet"
            ));
        }
    };
    Tensor::new(shape, data).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_is_read_from_the_release_branch() {
        assert_eq!(
            super::version_from_build_info(
                "ORT Build Info: git-branch=rel-1.32.0, git-commit-id=abc"
            )
            .as_deref(),
            Some("1.32.0")
        );
        assert_eq!(super::version_from_build_info("no branch"), None);
    }
}
