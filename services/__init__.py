"""The four Trisam services. Each owns its database and talks to the others only through events."""
