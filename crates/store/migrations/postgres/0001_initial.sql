-- qa-sentinel schema, PostgreSQL flavour.
--
-- Conventions shared with the SQLite schema: ids are UUIDs (v7 ids sort by creation),
-- timestamps are epoch milliseconds (BIGINT, stamped by the application's clock so that both
-- backends compare the same way), enums are lowercase TEXT guarded by CHECK constraints.
-- Counters and sizes are BIGINT so that one row type decodes on both backends.

CREATE TABLE users (
    id          UUID    PRIMARY KEY,
    name        TEXT    NOT NULL,
    role        TEXT    NOT NULL CHECK (role IN ('admin', 'member')),
    created_at  BIGINT  NOT NULL
);

-- One row per API key. The SHA-256 digest is the lookup key (every authenticated request).
CREATE TABLE api_keys (
    digest      BYTEA   PRIMARY KEY CHECK (length(digest) = 32),
    user_id     UUID    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE sites (
    id          UUID    PRIMARY KEY,
    name        TEXT    NOT NULL,
    base_url    TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);

-- The primary key (user_id, site_id) serves both the grant check of every request and the
-- "sites of a member" listing (keyset on site_id within one user).
CREATE TABLE grants (
    user_id     UUID    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    site_id     UUID    NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    role        TEXT    NOT NULL CHECK (role IN ('viewer', 'editor', 'owner')),
    PRIMARY KEY (user_id, site_id)
);
CREATE INDEX grants_site ON grants (site_id);

CREATE TABLE scans (
    id          UUID    PRIMARY KEY,
    site_id     UUID    NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    url         TEXT    NOT NULL,
    check_type  TEXT    NOT NULL,
    -- The canonical JSON text (byte-exact: it is what deduplication hashes), hence not jsonb.
    options     TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    created_at  BIGINT  NOT NULL,
    started_at  BIGINT,
    finished_at BIGINT,
    summary     JSONB,
    error       TEXT,
    attempts    BIGINT  NOT NULL DEFAULT 0,
    created_by  UUID    REFERENCES users (id) ON DELETE SET NULL
);
-- A site's scans newest first, keyset-paginated on (created_at, id).
CREATE INDEX scans_site_created ON scans (site_id, created_at, id);
-- ON DELETE SET NULL on created_by would otherwise scan the whole table per deleted user.
CREATE INDEX scans_created_by ON scans (created_by) WHERE created_by IS NOT NULL;

-- The live queue: one row per scan that is queued or running, deleted when the scan completes
-- or fails, so this table stays as small as the backlog.
CREATE TABLE jobs (
    scan_id      UUID    PRIMARY KEY REFERENCES scans (id) ON DELETE CASCADE,
    check_type   TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('queued', 'running')),
    attempts     BIGINT  NOT NULL DEFAULT 0,
    max_attempts BIGINT  NOT NULL,
    run_at       BIGINT  NOT NULL,
    lease_token  UUID,
    leased_by    TEXT,
    lease_until  BIGINT,
    last_error   TEXT
);
-- Due queued jobs, oldest first: the partial index holds only waiting rows, so the lease
-- query's cost follows the backlog, not the table's churn.
CREATE INDEX jobs_due ON jobs (run_at, scan_id) WHERE state = 'queued';
-- Expired leases (the reaper).
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE state = 'running';
-- Every job row is inserted, updated two or three times and deleted: vacuum it early so
-- dead tuples do not pile up in the indexes the lease query walks.
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.0,
    autovacuum_analyze_threshold = 1000
);

-- Findings are only ever read per scan, in recording order (v7 ids are monotonic within the
-- writing process), so (scan_id, id) is the key and no other index is needed.
CREATE TABLE findings (
    scan_id     UUID    NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    id          UUID    NOT NULL,
    kind        TEXT    NOT NULL,
    severity    TEXT    NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
    url         TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    detail      JSONB   NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (scan_id, id)
);

CREATE TABLE baselines (
    site_id      UUID    NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    page_url     TEXT    NOT NULL,
    viewport     TEXT    NOT NULL CHECK (viewport IN ('desktop', 'tablet', 'mobile')),
    full_page    BOOLEAN NOT NULL,
    artifact_key TEXT    NOT NULL,
    width        BIGINT  NOT NULL,
    height       BIGINT  NOT NULL,
    scan_id      UUID    NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    approved_by  UUID    REFERENCES users (id) ON DELETE SET NULL,
    updated_at   BIGINT  NOT NULL,
    PRIMARY KEY (site_id, page_url, viewport, full_page)
);
CREATE INDEX baselines_scan ON baselines (scan_id);
