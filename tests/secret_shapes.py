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
    ("gitlab personal token", "GITLAB=glpat-Xq7vR2mKp9LwT4zNb8Yc", "glpat-Xq7vR2mKp9LwT4zNb8Yc"),
    (
        "pypi upload token",
        "pypi-AgEIcHlwaS5vcmcCJDk3ZmQ0ZTcxLWNhZTEtNDhkNy1hZjVjLTE4ZDk2Y2Q1ZTk0M"
        "wACKlszLCJkZWZhdWx0Il1dAAIsWzIsWyJ1cGxvYWQiXV0",
        "pypi-AgEIcHlwaS5vcmcCJDk3ZmQ0ZTcxLWNhZTEtNDhkNy1hZjVjLTE4ZDk2Y2Q1ZTk0M",
    ),
    (
        "sendgrid api key",
        "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",
        "Hn4Jd6Ks1Vg8Qe3Zr5Tx7Ub9Wc2Ya4Mf6Lp8Ni0Okq8",
    ),
    ("twilio api key", "SK7f3a9c2e5b8d1f4a6c9e2b5d8f1a4c7e", "SK7f3a9c2e5b8d1f4a6c9e2b5d8f1a4c7e"),
    ("mailchimp api key", "9c4e7a2f5b8d1e3a6c9f2b5e8a1d4c7f-us14", "9c4e7a2f5b8d1e3a6c9f2b5e8a1d4c7f"),
    (
        "telegram bot token",
        "bot 734602534:AAHq8Zf3kLm9TxVb2NcR7wYpAHn4Jd6Ks1V",
        "AAHq8Zf3kLm9TxVb2NcR7wYpAHn4Jd6Ks1V",
    ),
    (
        "azure storage account key",
        "AccountName=runbooks;AccountKey=q8Zf3kLm9TxVb2NcR7wYpAHn4Jd6Ks1Vg8Qe3Zr5Tx7Ub9Wc2Y"
        "a4Mf6Lp8Ni0Okq8Zf3kLm9TxVb2NcR7wYpAH==",
        "q8Zf3kLm9TxVb2NcR7wYpAHn4Jd6Ks1Vg8Qe3Zr5Tx7Ub9Wc2Y",
    ),
    (
        "square oauth secret",
        "sq0csp-q8Zf3kLm9TxVb2NcR7wYpAHn4Jd6Ks1Vg8Qe3Zr5Tx7",
        "q8Zf3kLm9TxVb2NcR7wYpAHn4Jd6Ks1Vg8Qe3Zr5Tx7",
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

# What only the lint rule finds, through detect-secrets (drillbook/lint/_secrets.py): (name,
# text, the kind the library names). A quoted string of high entropy may be a secret or a
# checksum; masking every such string at run time would hide what a responder needs to
# read, so it is kept out of the repository by lint instead.
LIBRARY_SHAPES: tuple[tuple[str, str, str], ...] = (
    (
        "quoted high-entropy value",
        'signing = "8dcd533a36a44cf9a74eff034dd1226aab5d765c"',
        "Hex High Entropy String",
    ),
)
