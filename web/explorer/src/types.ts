// Shapes of the node's JSON API (crates/vouch-api/src/*), only the fields the explorer reads.
export interface NodeInfo {
  vouch_version: string;
  node_key: string;
  engines: { name: string; version: string }[];
  tiers: string[];
  tee?: { platform: string; trust_assumption: string; simulated: boolean } | null;
  key_ephemeral?: boolean;
  log?: { origin: string; log_key: string; size: number } | null;
  price_unit?: string;
  payments?: boolean;
}

export interface ModelName {
  name: string;
  version: string;
  digest: string;
  updated_at: string;
}

export interface ModelInfo {
  digest: string;
  size_bytes: number;
  engine: string;
  created_at: string;
  names: ModelName[];
  signature?: { inputs: { name: string; dtype: string; shape: (string | number)[] }[]; outputs: { name: string; dtype: string; shape: (string | number)[] }[] };
  llm?: Record<string, unknown> | null;
  upstream?: unknown;
  zk?: { status: string; system?: string; reason?: string } | null;
}

export interface ModelList {
  models: ModelInfo[];
  total: number;
}

export interface TierAssurance {
  tier: string;
  available: boolean;
  unavailable_reason: string | null;
  meets_policy: boolean;
  proves: string;
  trusts: string;
  price: string;
  request_price: string;
  measured?: { requests: number; errors: number; samples: number; p50_ms: number | null; p95_ms: number | null } | null;
}

export interface Assurance {
  model: string;
  digest: string;
  policy: { min_tier: string; subject: string } | null;
  asset: string;
  tiers: TierAssurance[];
}

export interface LogInfo {
  origin: string;
  log_key: string;
  size: number;
  checkpoint: string | null;
  witnesses: string[];
}

export type EntryKind = 'receipt' | 'chat-receipt' | 'model-registered' | 'pointer-moved' | 'policy-changed' | 'config-changed';

export interface LogEntry {
  index: number;
  kind: EntryKind;
  leaf_hash: string;
  entry: string;
}

export interface EntriesPage {
  size: number;
  entries: LogEntry[];
}

export interface PointerChange {
  index: number;
  name: string;
  version?: string;
  from?: string;
  to?: string;
  at: string;
  unlogged_move_before: boolean;
}

export interface ConfigChange {
  seq: number;
  config_digest: string;
  config: unknown;
  changed_at: string;
  log_index: number | null;
}

export interface PolicyChange {
  seq: number;
  subject: string;
  min_tier: string | null;
  previous: string | null;
  changed_at: string;
  log_index: number | null;
}

export interface Bucket {
  start: string;
  requests: number;
  errors: number;
  p50_ms: number | null;
  p95_ms: number | null;
  revenue: string;
}

export interface Analytics {
  bucket_seconds: number;
  asset: string;
  series: { tiers: string; buckets: Bucket[] }[];
  totals: { tiers: string; requests: number; errors: number; share: number; p50_ms: number | null; p95_ms: number | null; revenue: string }[];
}
