-- qa-sentinel schema, SQLite flavour.
--
-- Conventions shared with the PostgreSQL schema: ids are UUIDs (16-byte BLOBs here, so that
-- byte order is UUID order and v7 ids sort by creation), timestamps are epoch milliseconds
-- (INTEGER), enums are lowercase TEXT guarded by CHECK constraints, JSON is TEXT.

CREATE TABLE users (
    id          BLOB    PRIMARY KEY NOT NULL,
    name        TEXT    NOT NULL,
    role        TEXT    NOT NULL CHECK (role IN ('admin', 'member')),
    created_at  INTEGER NOT NULL
);

-- One row per API key. The SHA-256 digest is the lookup key (every authenticated request).
CREATE TABLE api_keys (
    digest      BLOB    PRIMARY KEY NOT NULL CHECK (length(digest) = 32),
    user_id     BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE sites (
    id          BLOB    PRIMARY KEY NOT NULL,
    name        TEXT    NOT NULL,
    base_url    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

-- The primary key (user_id, site_id) serves both the grant check of every request and the
-- "sites of a member" listing (keyset on site_id within one user).
CREATE TABLE grants (
    user_id     BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    site_id     BLOB    NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    role        TEXT    NOT NULL CHECK (role IN ('viewer', 'editor', 'owner')),
    PRIMARY KEY (user_id, site_id)
) WITHOUT ROWID;
CREATE INDEX grants_site ON grants (site_id);

CREATE TABLE scans (
    id          BLOB    PRIMARY KEY NOT NULL,
    site_id     BLOB    NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    url         TEXT    NOT NULL,
    check_type  TEXT    NOT NULL,
    options     TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER,
    summary     TEXT    CHECK (summary IS NULL OR json_valid(summary)),
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_by  BLOB    REFERENCES users (id) ON DELETE SET NULL
);
-- A site's scans newest first, keyset-paginated on (created_at, id).
CREATE INDEX scans_site_created ON scans (site_id, created_at, id);
-- ON DELETE SET NULL on created_by would otherwise scan the whole table per deleted user.
CREATE INDEX scans_created_by ON scans (created_by) WHERE created_by IS NOT NULL;

-- The live queue: one row per scan that is queued or running, deleted when the scan completes
-- or fails, so this table stays as small as the backlog.
CREATE TABLE jobs (
    scan_id      BLOB    PRIMARY KEY NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    check_type   TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('queued', 'running')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at       INTEGER NOT NULL,
    lease_token  BLOB,
    leased_by    TEXT,
    lease_until  INTEGER,
    last_error   TEXT
);
-- Due queued jobs, oldest first (the lease query), and expired leases (the reaper).
CREATE INDEX jobs_due ON jobs (run_at, scan_id) WHERE state = 'queued';
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE state = 'running';

-- Findings are only ever read per scan, in recording order (v7 ids are monotonic within the
-- writing process), so (scan_id, id) is the key and no other index is needed.
CREATE TABLE findings (
    scan_id     BLOB    NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    id          BLOB    NOT NULL,
    kind        TEXT    NOT NULL,
    severity    TEXT    NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
    url         TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    detail      TEXT    NOT NULL CHECK (json_valid(detail)),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (scan_id, id)
);

CREATE TABLE baselines (
    site_id      BLOB    NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    page_url     TEXT    NOT NULL,
    viewport     TEXT    NOT NULL CHECK (viewport IN ('desktop', 'tablet', 'mobile')),
    full_page    INTEGER NOT NULL CHECK (full_page IN (0, 1)),
    artifact_key TEXT    NOT NULL,
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    scan_id      BLOB    NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    approved_by  BLOB    REFERENCES users (id) ON DELETE SET NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (site_id, page_url, viewport, full_page)
);
CREATE INDEX baselines_scan ON baselines (scan_id);
