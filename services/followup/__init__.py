"""Follow-up: plan checks and six-month outcome follow-ups."""
