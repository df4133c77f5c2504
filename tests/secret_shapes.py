"""A corpus of secret shapes: each must be masked wherever drillbook writes or prints text.

Every entry is (name, text as it would appear, the secret in it). The values are made
up for this corpus; none was ever issued.
"""

from __future__ import annotations

SHAPES: tuple[tuple[str, str, str], ...] = (
    ("dsn password", "postgresql://app:hunter22-example@db:5432/app", "hunter22-example"),
    ("redis password without a user", "redis://:r3dis-example-pw@cache:6379/0", "r3dis-example-pw"),
    ("url password without a user", "https://:url-example-pw@api.example.internal/", "url-example-pw"),
    ("sql role password", "ALTER ROLE app PASSWORD 'sql-Example-pw1'", "sql-Example-pw1"),
    ("bearer token", "Authorization: Bearer abcdefghijklmnopEXAMPLE", "abcdefghijklmnopEXAMPLE"),
    ("basic auth", "Authorization: Basic dXNlcjpleGFtcGxlLXB3ZA==", "dXNlcjpleGFtcGxlLXB3ZA=="),
    (
        "json web token",
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJleGFtcGxlIn0.c2lnbmF0dXJlLWV4YW1wbGU",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJleGFtcGxlIn0.c2lnbmF0dXJlLWV4YW1wbGU",
    ),
    ("slack bot token", "SLACK=xoxb-123456789012-EXAMPLEtoken", "xoxb-123456789012-EXAMPLEtoken"),
    (
        "slack webhook",
        "https://hooks.slack.com/services/T00EXAMPLE/B00EXAMPLE/XXXXexampleXXXX",
        "T00EXAMPLE/B00EXAMPLE/XXXXexampleXXXX",
    ),
    (
        "github fine-grained token",
        "github_pat_11EXAMPLE0000000000000000_abcdef",
        "github_pat_11EXAMPLE0000000000000000_abcdef",
    ),
    (
        "github classic token",
        "ghp_EXAMPLEexampleEXAMPLEexample012345",
        "ghp_EXAMPLEexampleEXAMPLEexample012345",
    ),
    (
        "google api key",
        "key=AIzaSyEXAMPLE-example_EXAMPLE-012345678",
        "AIzaSyEXAMPLE-example_EXAMPLE-012345678",
    ),
    ("stripe live key", "sk_live_EXAMPLE0123456789abcdef", "sk_live_EXAMPLE0123456789abcdef"),
    ("openai-style key", "sk-EXAMPLEexampleEXAMPLE0123", "sk-EXAMPLEexampleEXAMPLE0123"),
    ("aws access key id", "AKIAEXAMPLE000000000", "AKIAEXAMPLE000000000"),
    ("aws secret access key", "aws_secret_access_key = wJalrEXAMPLEexampleKEY", "wJalrEXAMPLEexampleKEY"),
    ("password assignment", "password=letmein", "letmein"),
    (
        "pagerduty routing key",
        "routing_key: 0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef",
    ),
    (
        "pem private key",
        "-----BEGIN PRIVATE KEY-----\nMIIEvEXAMPLEexampleEXAMPLE\n-----END PRIVATE KEY-----",
        "MIIEvEXAMPLEexampleEXAMPLE",
    ),
)

# Text that looks a little like the above and must come out unchanged.
PROSE = (
    "no secret named admin_token: add it under secrets in environments.yml",
    "the token: a bearer token is read from DRILLBOOK_ADMIN_TOKEN",
    "PostgreSQL 15.18 on 127.0.0.1:5432",
    "slow_skill_max_tokens = 1000",
    "token_budget = 5000",
)
