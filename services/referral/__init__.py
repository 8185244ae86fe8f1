"""Referral intake: agency commands in, cases (CaseReferred) out. Owns the privacy-sensitive data."""
