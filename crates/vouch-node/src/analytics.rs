//! Request analytics: Prometheus metrics for scrapers (`/metrics`) and in-memory per-model,
//! per-tier figures for the status page and the assurance advisor.
//!
//! A request is filed under its *level*, the strongest tier it asked for (`none` for an
//! unsigned receipt), so shares add up to 100 %; Prometheus also gets the exact tier set.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use vouch_core::{ModelDigest, Tier};

/// Latencies kept per (model, level) for percentiles: recent traffic, bounded memory.
const RECENT: usize = 512;

/// Models figured separately, in `/status` and as `/metrics` labels. Only registered models are
/// recorded at all (the handler checks first); past this many, further models are pooled under
/// [`OTHER`], so neither memory nor the number of Prometheus series grows without bound.
pub const MAX_TRACKED_MODELS: usize = 1000;

/// The label and digest of the pool for models beyond [`MAX_TRACKED_MODELS`].
pub const OTHER: &str = "other";

/// Levels in display order.
pub const LEVELS: [&str; 4] = ["none", "signed", "tee", "zk"];

/// The strongest tier of a request, as a label.
pub fn level(tiers: &[Tier]) -> &'static str {
    tiers.iter().max().map(|t| t.as_str()).unwrap_or("none")
}

/// The label for a tier set: `signed+tee`, or `none`.
pub fn tier_set(tiers: &[Tier]) -> String {
    if tiers.is_empty() {
        return "none".into();
    }
    tiers
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join("+")
}

/// The process-wide Prometheus recorder (the `metrics` facade has one global recorder; the
/// first node in a process installs it and later ones share it).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("vouch_request_duration_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0,
                    ],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics will be empty");
            }
            // Series that say something went wrong exist from the start, at 0.
            metrics::counter!("vouch_log_write_errors_total").increment(0);
            metrics::counter!("vouch_unknown_model_requests_total").increment(0);
            handle
        })
        .clone()
}

#[derive(Default, Clone, Debug)]
pub struct Stats {
    pub requests: u64,
    pub errors: u64,
    /// Sum of quoted prices of successful requests.
    pub revenue: u64,
    /// Latencies of recent successful requests, in seconds.
    pub recent: VecDeque<f64>,
}

impl Stats {
    pub fn percentile(&self, p: f64) -> Option<f64> {
        percentile(self.recent.iter().copied().collect(), p)
    }

    fn merge(&mut self, o: &Stats) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.revenue = self.revenue.saturating_add(o.revenue);
        self.recent.extend(o.recent.iter().copied());
    }
}

pub fn percentile(mut v: Vec<f64>, p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let idx = ((v.len() - 1) as f64 * p).round() as usize;
    v.get(idx.min(v.len() - 1)).copied()
}

#[derive(Default)]
struct Inner {
    /// Keyed by model (`None`: the pool of models beyond [`MAX_TRACKED_MODELS`]) and level.
    by: HashMap<(Option<ModelDigest>, &'static str), Stats>,
    /// The tracked models and how people call them; never more than [`MAX_TRACKED_MODELS`].
    labels: HashMap<ModelDigest, String>,
    timeline: Timeline,
}

/// Seconds one timeline bucket covers.
pub const BUCKET_SECS: u64 = 60;
/// Buckets kept: one day of minutes.
pub const TIMELINE_BUCKETS: u64 = 1440;
/// Latency bins per bucket: bin `k` holds latencies in `[2^(k/4), 2^((k+1)/4))` µs, so a
/// percentile is known within a factor of 2^(1/4) (19 %) in 384 bytes whatever the traffic.
const LATENCY_BINS: usize = 96;

/// Per-minute figures per tier set, for the explorer's charts: the last
/// [`TIMELINE_BUCKETS`] minutes, bounded by the (few) tier sets a request can ask for.
#[derive(Default)]
struct Timeline {
    buckets: BTreeMap<(u64, String), Bucket>,
}

/// One minute of one tier set.
#[derive(Clone, Debug)]
pub struct Bucket {
    pub requests: u64,
    pub errors: u64,
    pub revenue: u128,
    bins: [u32; LATENCY_BINS],
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket {
            requests: 0,
            errors: 0,
            revenue: 0,
            bins: [0; LATENCY_BINS],
        }
    }
}

impl Bucket {
    fn add(&mut self, o: &Bucket) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.revenue = self.revenue.saturating_add(o.revenue);
        for (a, b) in self.bins.iter_mut().zip(o.bins.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    fn record_latency(&mut self, secs: f64) {
        let micros = (secs * 1e6).max(1.0);
        let k = (micros.log2() * 4.0).floor();
        let k = if k.is_finite() { k as usize } else { 0 };
        let bin = &mut self.bins[k.min(LATENCY_BINS - 1)];
        *bin = bin.saturating_add(1);
    }

    /// The `p` quantile of successful requests' latency in milliseconds (the geometric middle
    /// of its bin), or `None` with no successful request.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        let total: u64 = self.bins.iter().map(|&b| u64::from(b)).sum();
        if total == 0 {
            return None;
        }
        let rank = ((total - 1) as f64 * p).round() as u64;
        let mut seen = 0u64;
        for (k, &b) in self.bins.iter().enumerate() {
            seen += u64::from(b);
            if seen > rank {
                return Some(2f64.powf((k as f64 + 0.5) / 4.0) / 1000.0);
            }
        }
        None
    }
}

/// The timeline of a window: per tier set, one bucket per minute (empty ones included).
#[derive(Debug, Default)]
pub struct TimelineView {
    /// Unix seconds where the first bucket starts.
    pub start: u64,
    pub series: BTreeMap<String, Vec<Bucket>>,
}

/// In-memory figures since the node started.
#[derive(Default)]
pub struct Analytics {
    inner: Mutex<Inner>,
}

/// One outcome to record, for a registered model.
pub struct Outcome<'a> {
    pub model: ModelDigest,
    /// How people call the model (its name), for display.
    pub label: &'a str,
    pub tiers: &'a [Tier],
    pub ok: bool,
    pub latency: Duration,
    pub price: u64,
}

impl Analytics {
    pub fn record(&self, o: &Outcome<'_>) {
        let lvl = level(o.tiers);
        let secs = o.latency.as_secs_f64();
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let tracked = inner.labels.contains_key(&o.model)
            || (inner.labels.len() < MAX_TRACKED_MODELS
                && inner.labels.insert(o.model, o.label.to_string()).is_none());
        let key = tracked.then_some(o.model);
        let minute = unix_secs() / BUCKET_SECS;
        let t = &mut inner.timeline.buckets;
        let b = t.entry((minute, tier_set(o.tiers))).or_default();
        b.requests += 1;
        if o.ok {
            b.revenue = b.revenue.saturating_add(u128::from(o.price));
            b.record_latency(secs);
        } else {
            b.errors += 1;
        }
        // Drop what fell out of the window (the map is ordered by minute first).
        while let Some(entry) = t.first_entry() {
            if entry.key().0 + TIMELINE_BUCKETS > minute {
                break;
            }
            entry.remove();
        }
        let s = inner.by.entry((key, lvl)).or_default();
        s.requests += 1;
        if o.ok {
            s.revenue = s.revenue.saturating_add(o.price);
            if s.recent.len() == RECENT {
                s.recent.pop_front();
            }
            s.recent.push_back(secs);
        } else {
            s.errors += 1;
        }
        drop(inner);
        let status = if o.ok { "ok" } else { "error" };
        let model = key.map_or_else(|| OTHER.to_string(), |m| m.to_string());
        let tiers = tier_set(o.tiers);
        metrics::counter!("vouch_requests_total", "model" => model.clone(), "tiers" => tiers.clone(), "level" => lvl, "status" => status).increment(1);
        if o.ok {
            metrics::histogram!("vouch_request_duration_seconds", "model" => model.clone(), "tiers" => tiers.clone(), "level" => lvl).record(secs);
            metrics::counter!("vouch_revenue_total", "model" => model, "tiers" => tiers, "level" => lvl).increment(o.price);
        }
    }

    /// Figures of one model at one level.
    pub fn model_level(&self, model: &ModelDigest, lvl: &'static str) -> Stats {
        self.inner
            .lock()
            .ok()
            .and_then(|i| i.by.get(&(Some(*model), lvl)).cloned())
            .unwrap_or_default()
    }

    /// The last `minutes` minutes (at most [`TIMELINE_BUCKETS`]) per tier set, ending with the
    /// current minute.
    pub fn timeline(&self, minutes: u64) -> TimelineView {
        let minutes = minutes.clamp(1, TIMELINE_BUCKETS);
        let now = unix_secs() / BUCKET_SECS;
        let first = now + 1 - minutes;
        let mut view = TimelineView {
            start: first * BUCKET_SECS,
            series: BTreeMap::new(),
        };
        let Ok(inner) = self.inner.lock() else {
            return view;
        };
        for ((minute, set), b) in inner.timeline.buckets.range((first, String::new())..) {
            let Some(i) = minute
                .checked_sub(first)
                .and_then(|i| usize::try_from(i).ok())
            else {
                continue;
            };
            let series = view
                .series
                .entry(set.clone())
                .or_insert_with(|| vec![Bucket::default(); minutes as usize]);
            if let Some(slot) = series.get_mut(i) {
                slot.add(b);
            }
        }
        view
    }

    /// Everything: per level overall, and per (model label, level).
    pub fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot::default();
        let Ok(inner) = self.inner.lock() else {
            return snap;
        };
        for ((model, lvl), s) in &inner.by {
            snap.by_level.entry(lvl).or_default().merge(s);
            let (label, digest) = match model {
                Some(m) => (
                    inner
                        .labels
                        .get(m)
                        .cloned()
                        .unwrap_or_else(|| m.to_string()),
                    m.to_string(),
                ),
                None => (OTHER.to_string(), OTHER.to_string()),
            };
            snap.by_model
                .entry((label, digest, lvl))
                .or_default()
                .merge(s);
        }
        snap
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TimelineView {
    /// Every bucket of one tier set merged: the window's totals.
    pub fn total(buckets: &[Bucket]) -> Bucket {
        let mut t = Bucket::default();
        for b in buckets {
            t.add(b);
        }
        t
    }
}

impl crate::Node {
    /// `GET /v1/analytics`: the last `minutes` minutes per tier set, and their totals.
    pub fn tier_analytics(
        &self,
        minutes: Option<u32>,
    ) -> Result<vouch_api::TierAnalytics, crate::NodeError> {
        let minutes = u64::from(minutes.unwrap_or(60));
        if !(1..=TIMELINE_BUCKETS).contains(&minutes) {
            return Err(crate::NodeError::new(
                vouch_core::ErrorCode::BadRequest,
                format!("minutes must be 1 to {TIMELINE_BUCKETS}, not {minutes}"),
            ));
        }
        let view = self.analytics.timeline(minutes);
        let time = |secs: u64| {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs))
                .to_string()
        };
        let amount = |v: u128| vouch_api::Amount::from_digits(v);
        let sums: Vec<Bucket> = view
            .series
            .values()
            .map(|b| TimelineView::total(b))
            .collect();
        let all: u64 = sums.iter().map(|t| t.requests).sum();
        let mut series = Vec::new();
        let mut totals = Vec::new();
        for ((tiers, buckets), total) in view.series.iter().zip(sums) {
            totals.push(vouch_api::TierTotal {
                tiers: tiers.clone(),
                requests: total.requests,
                errors: total.errors,
                share: if all == 0 {
                    0.0
                } else {
                    total.requests as f64 / all as f64
                },
                p50_ms: total.percentile_ms(0.5),
                p95_ms: total.percentile_ms(0.95),
                revenue: amount(total.revenue),
            });
            series.push(vouch_api::TierSeries {
                tiers: tiers.clone(),
                buckets: buckets
                    .iter()
                    .zip(0u64..)
                    .map(|(b, i)| vouch_api::TierBucket {
                        start: time(view.start + i * BUCKET_SECS),
                        requests: b.requests,
                        errors: b.errors,
                        p50_ms: b.percentile_ms(0.5),
                        p95_ms: b.percentile_ms(0.95),
                        revenue: amount(b.revenue),
                    })
                    .collect(),
            });
        }
        Ok(vouch_api::TierAnalytics {
            bucket_seconds: BUCKET_SECS,
            since: time(view.start),
            asset: self.prices.unit(),
            series,
            totals,
        })
    }
}

#[derive(Default)]
pub struct Snapshot {
    pub by_level: BTreeMap<&'static str, Stats>,
    /// (label, digest, level) → stats.
    pub by_model: BTreeMap<(String, String, &'static str), Stats>,
}

impl Snapshot {
    pub fn total_requests(&self) -> u64 {
        self.by_level.values().map(|s| s.requests).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_percentiles() {
        assert_eq!(level(&[]), "none");
        assert_eq!(level(&[Tier::Signed, Tier::Tee]), "tee");
        assert_eq!(tier_set(&[Tier::Signed, Tier::Tee]), "signed+tee");
        assert_eq!(percentile(vec![3.0, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(percentile(vec![], 0.5), None);
        let a = Analytics::default();
        let m = ModelDigest(vouch_core::Digest::of(b"m"));
        for (i, tiers) in [vec![Tier::Signed], vec![Tier::Signed, Tier::Tee], vec![]]
            .iter()
            .enumerate()
        {
            a.record(&Outcome {
                model: m,
                label: "mlp",
                tiers,
                ok: i != 2,
                latency: Duration::from_millis(10 * (i as u64 + 1)),
                price: 7,
            });
        }
        let snap = a.snapshot();
        assert_eq!(snap.total_requests(), 3);
        let view = a.timeline(5);
        assert_eq!(
            view.series.keys().collect::<Vec<_>>(),
            ["none", "signed", "signed+tee"]
        );
        let signed = TimelineView::total(&view.series["signed"]);
        assert_eq!((signed.requests, signed.errors, signed.revenue), (1, 0, 7));
        assert_eq!(view.series["signed"].len(), 5);
        // 10 ms lands in the bin [2^53/4, 2^54/4) µs: reported within 19 %.
        let p50 = signed.percentile_ms(0.5).unwrap();
        assert!((8.4..=11.9).contains(&p50), "{p50}");
        let none = TimelineView::total(&view.series["none"]);
        assert_eq!((none.requests, none.errors, none.revenue), (1, 1, 0));
        assert_eq!(none.percentile_ms(0.5), None);
        assert_eq!(snap.by_level["tee"].revenue, 7);
        assert_eq!(snap.by_level["none"].errors, 1);
        assert_eq!(a.model_level(&m, "tee").percentile(0.5), Some(0.02));
    }

    #[test]
    fn models_past_the_cap_are_pooled_so_figures_and_series_stay_bounded() {
        let handle = prometheus();
        let a = Analytics::default();
        let model = |i: usize| ModelDigest(vouch_core::Digest::of(&i.to_le_bytes()));
        let outcome = |m: ModelDigest| Outcome {
            model: m,
            label: "m",
            tiers: &[Tier::Signed],
            ok: true,
            latency: Duration::from_millis(1),
            price: 1,
        };
        for i in 0..MAX_TRACKED_MODELS + 50 {
            a.record(&outcome(model(i)));
        }
        // A tracked model keeps being figured on its own.
        a.record(&outcome(model(0)));
        let snap = a.snapshot();
        assert_eq!(snap.total_requests(), MAX_TRACKED_MODELS as u64 + 51);
        assert_eq!(snap.by_model.len(), MAX_TRACKED_MODELS + 1);
        let pooled = &snap.by_model[&(OTHER.to_string(), OTHER.to_string(), "signed")];
        assert_eq!(pooled.requests, 50);
        assert_eq!(a.model_level(&model(0), "signed").requests, 2);
        assert_eq!(
            a.model_level(&model(MAX_TRACKED_MODELS + 1), "signed")
                .requests,
            0
        );
        let text = handle.render();
        assert!(text.contains(&model(0).to_string()));
        assert!(!text.contains(&model(MAX_TRACKED_MODELS + 1).to_string()));
        assert!(text.contains("model=\"other\""), "{text}");
    }
}
