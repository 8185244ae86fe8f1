"""The platform every service runs on: runtime, consumer, outbox, topology, database, logging,
configuration, sign-in. Mechanisms only: no service's rules and no contracts."""
