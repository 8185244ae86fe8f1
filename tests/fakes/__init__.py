"""In-memory stand-ins for the services' units of work, for unit tests of their use cases."""
