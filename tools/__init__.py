"""Tools around the services: the launcher (make run, make demo), broker users, the event catalogue."""
