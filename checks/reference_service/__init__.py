"""The reference service's own checks and actions: what only a service like the sandbox's
reference service has. Its admin API (`admin`: rollout, skills, circuit breaker, cache, keys,
users), its rollout flag (`flags`), its usage and audit tables (`usage_log`, `costs`, `audit`),
and its upstream provider's counters (`upstream`).

Nothing in the generic backends (`checks.http`, `prometheus`, `postgres`, `redis`, ...) imports
from here. Each check here says "not applicable here" on an environment that lacks what it
needs: the `reference-admin` or `reference-tables` capability, or a signal only this service
exports (see `checks.signals`).

    from checks.reference_service import admin, flags
"""
