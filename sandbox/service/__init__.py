"""The reference service the runbooks diagnose: `sandbox.service.app:app`."""
