"""Trisam platform: what every service shares.

Event contracts (`events`, `vocabulary`), the messaging topology (`topology`), the transactional
outbox and idempotent inbox (`outbox`, `consumer`), configuration, logging, database helpers and
the service runtime that ties them together (`runtime`).
"""
