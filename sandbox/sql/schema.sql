-- Reference service schema and seed data.
-- Applied by the sandbox driver at every `up`: every statement is idempotent.

CREATE TABLE IF NOT EXISTS skills (
    id                 bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name               text        NOT NULL UNIQUE,
    enabled            boolean     NOT NULL DEFAULT true,
    rollout_percentage integer     NOT NULL DEFAULT 100
                                   CHECK (rollout_percentage BETWEEN 0 AND 100),
    max_tokens         integer     NOT NULL CHECK (max_tokens > 0),
    created_at         timestamptz NOT NULL DEFAULT now()
);

INSERT INTO skills (name, enabled, rollout_percentage, max_tokens) VALUES
    ('contract-review', true,  100, 8000),
    ('summarise',       true,  100, 2000),
    ('classify-ticket', true,  100,  512),
    ('extract-entities', true,  50, 1024),
    ('draft-reply',     false,   0, 1500)
ON CONFLICT (name) DO NOTHING;
