//! Job handlers: the code behind each job `type`, and what a handler may do while it runs.

use std::{collections::HashMap, sync::Arc, time::Duration};

use entity::{JobKind, job};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{EventBus, JobSettings, NewJob, lifecycle::Finish, queue, queue::Lease};
use crate::storage::Storage;

/// Why a handler stopped without a result.
#[derive(Debug, Clone)]
pub struct JobFailure {
    /// What the job's owner reads in `Job.error` (paths and addresses are taken out before
    /// it is stored, see [`for_clients`]).
    pub message: String,
    /// Worth another attempt (a flaky dependency), as opposed to bad input.
    pub retryable: bool,
    pub(super) kind: FailureKind,
    /// Infrastructure detail for the server's log only (database and storage errors).
    pub(super) detail: Option<String>,
    /// A service the job needs did not answer ([`JobFailure::unavailable`]).
    pub(super) outage: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailureKind {
    Error,
    /// The job was cancelled while the handler ran.
    Cancelled,
    /// Another worker owns the job now; stop without writing anything.
    LeaseLost,
}

impl JobFailure {
    /// A failure that another attempt will not fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
            kind: FailureKind::Error,
            detail: None,
            outage: false,
        }
    }

    /// A failure that may go away on another attempt.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            kind: FailureKind::Error,
            detail: None,
            outage: false,
        }
    }

    /// An infrastructure failure (database, storage, local files), worth another attempt:
    /// the owner reads `public`, the server's log gets `detail` (which may hold SQL, paths or
    /// the storage service's answer).
    pub fn internal(public: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Self {
            detail: Some(detail.to_string()),
            ..Self::transient(public)
        }
    }

    /// A service the job needs (object storage, the database) did not answer: tried again
    /// with backoff, and for [`super::lifecycle::OUTAGE_GRACE`] from the job's start without
    /// using up its attempts, so that a storage restart of a minute does not fail every render
    /// in flight (three attempts 1 s and 2 s apart were gone in seconds).
    pub fn unavailable(public: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Self {
            outage: true,
            ..Self::internal(public, detail)
        }
    }

    fn cancelled() -> Self {
        Self {
            message: "cancelled".into(),
            retryable: false,
            kind: FailureKind::Cancelled,
            detail: None,
            outage: false,
        }
    }

    fn lease_lost() -> Self {
        Self {
            message: "lease lost".into(),
            retryable: false,
            kind: FailureKind::LeaseLost,
            detail: None,
            outage: false,
        }
    }
}

/// A failure message as the job's owner may read it: absolute paths cut to their file name
/// (tools name their work files: `/tmp/reelgraph-…/scene_3.mp4` → `scene_3.mp4`), memory
/// addresses taken out of `[h264 @ 0x55…]` prefixes, at most 1,000 characters
/// (the start, which says what failed, and the end, which says why).
pub fn for_clients(message: &str) -> String {
    let cleaned: Vec<String> = message
        .lines()
        .map(|line| crate::media::encode::strip_addresses(&without_paths(line)))
        .collect();
    let text = cleaned.join("\n");
    let chars = text.chars().count();
    if chars <= MAX_ERROR_CHARS {
        return text;
    }
    let head: String = text.chars().take(MAX_ERROR_CHARS / 4).collect();
    let tail: String = text
        .chars()
        .skip(chars - (MAX_ERROR_CHARS * 3 / 4 - 1))
        .collect();
    format!("{head}…{tail}")
}

/// Longest `Job.error`.
const MAX_ERROR_CHARS: usize = 1000;

/// Replaces each absolute path in `line` (a `/` at the start of a word with another `/` in
/// the word) by its last component.
fn without_paths(line: &str) -> String {
    let is_boundary = |c: char| c.is_whitespace() || "'\"()[]=,;:<>".contains(c);
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    let mut previous: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        // A web address (a webhook's callback) is the client's own: kept whole.
        let scheme = out.as_bytes()[out.len().saturating_sub(6)..].to_ascii_lowercase();
        if c == '/'
            && rest.starts_with("//")
            && (scheme.ends_with(b"http:") || scheme.ends_with(b"https:"))
        {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push_str(&rest[..end]);
            previous = rest[..end].chars().last();
            rest = &rest[end..];
            continue;
        }
        if c == '/' && previous.is_none_or(is_boundary) {
            // A word ends at a boundary; a `:` ends it only before a space or the line's end
            // (`/tmp/a.mp4: No such file`), so a `:` inside a path (`/a/b:c`) stays in it.
            let end = rest
                .char_indices()
                .find(|&(i, ch)| {
                    (ch.is_whitespace() || "'\"()[],;<>".contains(ch))
                        || (ch == ':'
                            && rest[i + 1..].chars().next().is_none_or(char::is_whitespace))
                })
                .map_or(rest.len(), |(i, _)| i);
            let word = &rest[..end];
            if word[1..].contains('/') {
                out.push_str(word.rsplit('/').next().unwrap_or_default());
                previous = word.chars().last();
                rest = &rest[end..];
                continue;
            }
        }
        out.push(c);
        previous = Some(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// What a handler produced.
#[derive(Debug)]
pub enum Outcome {
    Done {
        output: Value,
        output_ref: Option<String>,
    },
    /// Run `children`, then `then` (if any) once they are all done.
    Wait {
        children: Vec<NewJob>,
        then: Option<NewJob>,
    },
}

impl From<Outcome> for Finish {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Done { output, output_ref } => Finish::Done { output, output_ref },
            Outcome::Wait { children, then } => Finish::Wait { children, then },
        }
    }
}

/// The code behind one job type.
#[async_trait::async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn run(&self, ctx: &JobContext) -> Result<Outcome, JobFailure>;
}

/// Maps job types to handlers. A pool claims only the types its registry has; a job that
/// reaches one without a handler all the same fails with a clear error.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn JobHandler>>,
}

impl Registry {
    pub fn register(&mut self, job_type: &str, handler: impl JobHandler) -> &mut Self {
        self.handlers.insert(job_type.to_owned(), Arc::new(handler));
        self
    }

    pub fn get(&self, job_type: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers.get(job_type).cloned()
    }

    /// The job types this registry runs, sorted.
    pub fn types(&self) -> Vec<String> {
        let mut types: Vec<String> = self.handlers.keys().cloned().collect();
        types.sort();
        types
    }

    /// The handlers every Reelgraph process runs.
    pub fn builtin() -> Self {
        let mut registry = Self::default();
        registry
            .register("diagnostics.sleep", DiagnosticsSleep)
            .register("diagnostics.fanout", DiagnosticsFanout);
        crate::render::jobs::register(&mut registry);
        crate::media::register(&mut registry);
        crate::shorts::render::register(&mut registry);
        registry
    }
}

/// Progress writes are throttled to this interval, except phase changes and completion.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

struct ProgressState {
    last_write: Option<tokio::time::Instant>,
    /// Highest progress reported by the handler this attempt.
    reported: f64,
    /// Highest progress written to the row.
    written: f64,
    phase: Option<String>,
}

/// What a running handler sees of its job.
pub struct JobContext {
    pub job: job::Model,
    pub(super) lease: Lease,
    pub(super) db: DatabaseConnection,
    pub(super) bus: EventBus,
    /// Where inputs come from and outputs go.
    pub storage: Storage,
    pub(super) settings: JobSettings,
    pub(super) cancel: CancellationToken,
    /// This process's metrics (handlers count what they skip or reuse).
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    progress: Mutex<ProgressState>,
}

impl JobContext {
    /// The context of `job`, run under `lease` by `pool`.
    pub(super) fn new(
        job: job::Model,
        lease: Lease,
        pool: &super::worker::WorkerPool,
        cancel: CancellationToken,
    ) -> Self {
        let phase = job.current_phase.clone();
        Self {
            job,
            lease,
            db: pool.db.clone(),
            bus: pool.bus.clone(),
            storage: pool.storage.clone(),
            settings: pool.settings.clone(),
            cancel,
            metrics: pool.metrics.clone(),
            progress: Mutex::new(ProgressState {
                last_write: None,
                reported: 0.0,
                written: 0.0,
                phase,
            }),
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Cancelled when the job is cancelled; long steps should watch it (child processes are
    /// killed anyway when the handler is dropped).
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// A condition true only while this run still holds the job: for the handler's writes to
    /// other rows (see [`super::queue::held`]).
    pub fn held(&self) -> sea_orm::Condition {
        super::queue::held(self.lease)
    }

    /// The job's input, parsed; bad input is a permanent failure.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, JobFailure> {
        serde_json::from_value(self.job.input.clone()).map_err(|e| {
            JobFailure::permanent(format!("invalid input for {}: {e}", self.job.job_type))
        })
    }

    /// Reports progress (0–1, never backwards within an attempt) and optionally a phase.
    /// Writes are throttled; a phase change is always written. Fails when the job was
    /// cancelled or taken over, which the handler should pass on with `?`.
    pub async fn progress(&self, progress: f64, phase: Option<&str>) -> Result<(), JobFailure> {
        if self.cancel.is_cancelled() {
            return Err(JobFailure::cancelled());
        }
        let mut state = self.progress.lock().await;
        let progress = progress.clamp(0.0, 1.0).max(state.reported);
        state.reported = progress;
        let phase_changed = phase.is_some_and(|p| state.phase.as_deref() != Some(p));
        let due = state
            .last_write
            .is_none_or(|t| t.elapsed() >= PROGRESS_INTERVAL);
        let advanced = progress > state.written;
        if !(phase_changed || (advanced && (due || progress >= 1.0))) {
            return Ok(());
        }
        // A progress write the database refuses for a moment (a pool timeout, a busy SQLite)
        // is not worth the work done so far: the job goes on, and the next report writes again.
        // Losing the lease or a cancel still stops it (the heartbeat notices both).
        let row = match queue::progress(&self.db, self.lease, progress, phase, self.settings.lease)
            .await
        {
            Ok(row) => row,
            Err(err) => {
                tracing::warn!(job_id = %self.job.id, error = ?err, "could not record progress; going on");
                return Ok(());
            }
        };
        let Some(row) = row else {
            return Err(JobFailure::lease_lost());
        };
        state.last_write = Some(tokio::time::Instant::now());
        state.written = progress;
        if phase_changed {
            state.phase = phase.map(str::to_owned);
        }
        drop(state);
        self.bus.publish(&[queue::event_of(&row)]).await;
        if row.cancel_requested {
            self.cancel.cancel();
            return Err(JobFailure::cancelled());
        }
        self.roll_up_to_parent().await;
        Ok(())
    }

    /// Moves the parent's progress along with this child's (see [`queue::ParentProgress`]).
    async fn roll_up_to_parent(&self) {
        let Some(parent_id) = self.job.parent_id else {
            return;
        };
        let Some(share) = self
            .job
            .input
            .get("parent_progress")
            .and_then(|p| serde_json::from_value::<queue::ParentProgress>(p.clone()).ok())
        else {
            return;
        };
        match queue::roll_up(&self.db, parent_id, self.job.parent_attempt, &share).await {
            Ok(Some(parent)) => self.bus.publish(&[queue::event_of(&parent)]).await,
            Ok(None) => {}
            Err(err) => tracing::warn!(error = ?err, "could not update the parent's progress"),
        }
    }

    /// Records that the job was served from a cache (`Job.cached`).
    pub async fn mark_cached(&self) -> Result<(), JobFailure> {
        match queue::mark_cached(&self.db, self.lease).await {
            Ok(Some(row)) => {
                self.bus.publish(&[queue::event_of(&row)]).await;
                Ok(())
            }
            Ok(None) => Err(JobFailure::lease_lost()),
            Err(_) => Err(JobFailure::transient("could not record the cache hit")),
        }
    }
}

#[derive(Deserialize)]
struct SleepInput {
    /// Total run time.
    #[serde(default = "default_sleep_ms")]
    ms: u64,
    /// Progress reports along the way.
    #[serde(default = "default_steps")]
    steps: u32,
    /// Fail (retryably) on attempts up to this number.
    #[serde(default)]
    fail_attempts: i32,
    /// Fail permanently.
    #[serde(default)]
    fail: bool,
    /// Returned as the job's output.
    #[serde(default)]
    output: Value,
}

fn default_sleep_ms() -> u64 {
    100
}

fn default_steps() -> u32 {
    4
}

/// `diagnostics.sleep`: waits, reporting progress — a smoke test of a deployment's workers,
/// and the job the engine's own tests run.
struct DiagnosticsSleep;

#[async_trait::async_trait]
impl JobHandler for DiagnosticsSleep {
    async fn run(&self, ctx: &JobContext) -> Result<Outcome, JobFailure> {
        let input: SleepInput = ctx.input()?;
        if input.fail {
            return Err(JobFailure::permanent("failed on purpose (diagnostics)"));
        }
        if ctx.job.attempts <= input.fail_attempts {
            return Err(JobFailure::transient(format!(
                "attempt {} failed on purpose",
                ctx.job.attempts
            )));
        }
        let steps = input.steps.max(1);
        let step = Duration::from_millis(input.ms / u64::from(steps));
        for i in 1..=steps {
            tokio::time::sleep(step).await;
            ctx.progress(f64::from(i) / f64::from(steps), Some("sleeping"))
                .await?;
        }
        Ok(Outcome::Done {
            output: input.output,
            output_ref: None,
        })
    }
}

#[derive(Deserialize)]
struct FanoutInput {
    children: u32,
    #[serde(default = "default_sleep_ms")]
    child_ms: u64,
    /// Index of a child that fails permanently.
    #[serde(default)]
    failing_child: Option<u32>,
}

/// `diagnostics.fanout`: a parent with `children` sleeping children and a final step — the
/// shape of a movie render (scenes, then assembly).
struct DiagnosticsFanout;

#[async_trait::async_trait]
impl JobHandler for DiagnosticsFanout {
    async fn run(&self, ctx: &JobContext) -> Result<Outcome, JobFailure> {
        let input: FanoutInput = ctx.input()?;
        let child = |i: u32| {
            let fail = input.failing_child == Some(i);
            NewJob::new(
                JobKind::Workflow,
                "diagnostics.sleep",
                ctx.job.owner_id,
                json!({ "ms": input.child_ms, "steps": 2, "fail": fail, "output": { "child": i } }),
            )
        };
        let then = NewJob::new(
            JobKind::Workflow,
            "diagnostics.sleep",
            ctx.job.owner_id,
            json!({ "ms": 10, "steps": 1, "output": { "assembled": input.children } }),
        );
        Ok(Outcome::Wait {
            children: (0..input.children).map(child).collect(),
            then: Some(then),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::for_clients;

    #[test]
    fn failure_messages_lose_server_paths_and_addresses_but_keep_the_reason() {
        assert_eq!(
            for_clients(
                "ffmpeg failed (exit status: 1): /tmp/reelgraph-0190/scene_3.mp4: No such file or directory"
            ),
            "ffmpeg failed (exit status: 1): scene_3.mp4: No such file or directory"
        );
        assert_eq!(
            for_clients(
                "[png @ 0x55d1c0a0] Invalid PNG signature\nError opening input file '/var/lib/rg/objects/assets/u/a.png'."
            ),
            "[png] Invalid PNG signature\nError opening input file 'a.png'."
        );
        // A callback's address is the client's own, and says which one failed.
        assert_eq!(
            for_clients(
                "callback https://hooks.example.com/reelgraph/ingest?a=b answered HTTP 500"
            ),
            "callback https://hooks.example.com/reelgraph/ingest?a=b answered HTTP 500"
        );
        assert_eq!(
            for_clients("callback HTTP://[::1]:8080/a/b: could not connect"),
            "callback HTTP://[::1]:8080/a/b: could not connect"
        );
        assert_eq!(
            for_clients("Error opening file:/tmp/reelgraph-1/a.mp4"),
            "Error opening file:a.mp4"
        );
        // Not paths: ratios, rates, a lone slash, words with a slash inside.
        for kept in ["fps=30/1 and 16/9", "w/ h", "either /this or that", "a b/c"] {
            assert_eq!(for_clients(kept), kept);
        }
        let long = format!("ffmpeg failed: {}the real reason", "x".repeat(5_000));
        let cut = for_clients(&long);
        assert!(cut.chars().count() <= 1000, "{}", cut.len());
        assert!(cut.starts_with("ffmpeg failed: ") && cut.ends_with("the real reason"));
    }
}
