"""Meeting scheduling: team calendars, agendas, consultations (ConsultationHeld)."""
