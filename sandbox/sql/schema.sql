-- Reference service schema and seed data (PostgreSQL 13+).
-- Applied once to a new database: by the native driver at every `up` (it starts from an
-- empty cluster) and by the postgres image's init scripts under compose. Every statement
-- is idempotent all the same, so applying it twice changes nothing.
--
-- The seed is deterministic (setseed) and dated relative to now(): three days of usage at
-- a steady cost baseline, the audit trail of that traffic, a few dozen users with one API
-- key each, and one integration key (the support tool) allowed to read any user's usage.
--
-- Sandbox API keys are derived, not random: dbk_<md5('drillbook-sandbox-key:' || user id)>
-- (sandbox/service/keys.py computes the same), so the traffic generator can use them. Only
-- their SHA-256 is stored, as a real service would.

CREATE TABLE IF NOT EXISTS skills (
    id                 bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name               text          NOT NULL UNIQUE,
    description        text          NOT NULL DEFAULT '',
    model              text          NOT NULL,
    enabled            boolean       NOT NULL DEFAULT true,
    max_tokens         integer       NOT NULL CHECK (max_tokens > 0),
    cost_per_1k_tokens numeric(10,6) NOT NULL CHECK (cost_per_1k_tokens >= 0),
    created_at         timestamptz   NOT NULL DEFAULT now(),
    updated_at         timestamptz   NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS users (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       text        NOT NULL UNIQUE,
    plan        text        NOT NULL DEFAULT 'team',
    disabled    boolean     NOT NULL DEFAULT false,
    disabled_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS api_keys (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint      NOT NULL REFERENCES users (id),
    name         text        NOT NULL,
    prefix       text        NOT NULL UNIQUE,    -- the first 12 characters, safe to log
    key_sha256   text        NOT NULL UNIQUE,
    scopes       text[]      NOT NULL DEFAULT '{analyze,read:own}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE TABLE IF NOT EXISTS refresh_tokens (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint      NOT NULL REFERENCES users (id),
    token_sha256 text        NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);

CREATE TABLE IF NOT EXISTS usage_logs (
    id            bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    skill         text          NOT NULL,
    user_id       bigint        REFERENCES users (id),
    api_key_id    bigint        REFERENCES api_keys (id),
    tokens_input  integer       NOT NULL DEFAULT 0,
    tokens_output integer       NOT NULL DEFAULT 0,
    cost_usd      numeric(12,6) NOT NULL DEFAULT 0,
    duration_ms   integer       NOT NULL,
    success       boolean       NOT NULL,
    error_type    text,
    cached        boolean       NOT NULL DEFAULT false,
    created_at    timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS usage_logs_created_at ON usage_logs (created_at);
CREATE INDEX IF NOT EXISTS usage_logs_user_created ON usage_logs (user_id, created_at);

CREATE TABLE IF NOT EXISTS audit_logs (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint,                 -- whose data the request touched
    api_key_id bigint,                 -- which key made it (NULL: unauthenticated)
    method     text        NOT NULL DEFAULT 'GET',
    path       text        NOT NULL,
    status     integer,
    address    inet,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS audit_logs_created_at ON audit_logs (created_at);
CREATE INDEX IF NOT EXISTS audit_logs_key_created ON audit_logs (api_key_id, created_at);

-- ---------------------------------------------------------------------------- seed

INSERT INTO skills (name, description, model, enabled, max_tokens, cost_per_1k_tokens) VALUES
    ('contract-review',  'Flag risky clauses in a contract',            'atlas-1', true,  4000, 0.015),
    ('summarise',        'Summarise a document in five bullet points',  'atlas-1', true,  2000, 0.003),
    ('summarise-v2',     'Summarise, new prompt (behind the rollout flag)', 'atlas-2', true, 2000, 0.003),
    ('classify-ticket',  'Route a support ticket to a queue',           'atlas-1', true,   512, 0.0008),
    ('extract-entities', 'Pull parties, dates and amounts from text',   'atlas-1', true,  1024, 0.002),
    ('draft-reply',      'Draft a reply to a customer e-mail',          'atlas-1', false, 1500, 0.003)
ON CONFLICT (name) DO NOTHING;

SELECT setseed(0.42);

INSERT INTO users (email, plan, created_at)
SELECT format('user%s@customer-%s.example', lpad(n::text, 2, '0'), (n % 9) + 1),
       (ARRAY['free', 'team', 'team', 'enterprise'])[(n % 4) + 1],
       now() - make_interval(days => 30 + n)
FROM generate_series(1, 40) AS n
ON CONFLICT (email) DO NOTHING;

INSERT INTO users (email, plan, created_at)
VALUES ('support-tool@drillbook.example', 'internal', now() - interval '90 days')
ON CONFLICT (email) DO NOTHING;

INSERT INTO api_keys (user_id, name, prefix, key_sha256, scopes, created_at, last_used_at)
SELECT u.id,
       CASE WHEN u.plan = 'internal' THEN 'support tool integration' ELSE 'default' END,
       left('dbk_' || md5('drillbook-sandbox-key:' || u.id), 12),
       encode(sha256(convert_to('dbk_' || md5('drillbook-sandbox-key:' || u.id), 'UTF8')), 'hex'),
       CASE WHEN u.plan = 'internal' THEN '{read:any}'::text[] ELSE '{analyze,read:own}'::text[] END,
       u.created_at,
       now() - interval '1 hour'
FROM users AS u
ON CONFLICT (prefix) DO NOTHING;

INSERT INTO refresh_tokens (user_id, token_sha256, created_at, expires_at)
SELECT u.id,
       encode(sha256(convert_to('drillbook-sandbox-refresh:' || u.id || ':' || n, 'UTF8')), 'hex'),
       now() - make_interval(days => n),
       now() + make_interval(days => 30 - n)
FROM users AS u, generate_series(1, 2) AS n
ON CONFLICT (token_sha256) DO NOTHING;

-- Three days of usage, one row a minute on average; tokens and cost at the baseline.
INSERT INTO usage_logs (skill, user_id, api_key_id, tokens_input, tokens_output, cost_usd,
                        duration_ms, success, error_type, created_at)
SELECT s.name, k.user_id, k.id, r.tokens_input, r.tokens_output,
       round((r.tokens_input + r.tokens_output) / 1000.0 * s.cost_per_1k_tokens, 6),
       r.duration_ms, r.error_type IS NULL, r.error_type, r.created_at
FROM (
    SELECT now() - interval '3 days' + make_interval(mins => n) + random() * interval '50 seconds'
               AS created_at,
           (ARRAY['contract-review', 'summarise', 'summarise', 'classify-ticket', 'classify-ticket',
                  'extract-entities'])[1 + floor(random() * 6)::int] AS skill,
           1 + floor(random() * 40)::int AS user_n,
           400 + floor(random() * 800)::int AS tokens_input,
           150 + floor(random() * 250)::int AS tokens_output,
           600 + floor(random() * 1800)::int AS duration_ms,
           CASE WHEN random() < 0.01 THEN 'upstream_error' END AS error_type
    FROM generate_series(1, 3 * 24 * 60 - 60) AS n
) AS r
JOIN skills AS s ON s.name = r.skill
JOIN users AS u ON u.email = format('user%s@customer-%s.example', lpad(r.user_n::text, 2, '0'),
                                    (r.user_n % 9) + 1)
JOIN api_keys AS k ON k.user_id = u.id
WHERE NOT EXISTS (SELECT 1 FROM usage_logs LIMIT 1);

-- The audit trail of that traffic: each user from one of its usual addresses.
INSERT INTO audit_logs (user_id, api_key_id, method, path, status, address, created_at)
SELECT l.user_id, l.api_key_id, 'POST', '/api/analyze', CASE WHEN l.success THEN 200 ELSE 502 END,
       format('10.20.%s.%s', l.user_id % 7, 10 + l.user_id)::inet, l.created_at
FROM usage_logs AS l
WHERE NOT EXISTS (SELECT 1 FROM audit_logs LIMIT 1);

-- The support tool reads a handful of users' usage a day.
INSERT INTO audit_logs (user_id, api_key_id, method, path, status, address, created_at)
SELECT 1 + floor(random() * 40)::int, k.id, 'GET', '/api/usage', 200, '10.30.0.5'::inet,
       now() - interval '3 days' + make_interval(hours => n)
FROM generate_series(1, 70) AS n, api_keys AS k
WHERE k.name = 'support tool integration'
  AND NOT EXISTS (SELECT 1 FROM audit_logs WHERE path = '/api/usage' LIMIT 1);
