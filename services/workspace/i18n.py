"""The workspace's words, in Swedish (the default) and English.

Texts are keyed; the services' codes (roles, statuses, reasons) are keys too, so a code the
services send shows in words. A refusal with its own texts (the referral service's rules give
``message_sv`` and ``message_en``) shows those: the same messages as the API."""

from __future__ import annotations

from typing import Literal

from .client import Reason

Lang = Literal["sv", "en"]
LANGS: tuple[Lang, ...] = ("sv", "en")

TEXTS: dict[str, tuple[str, str]] = {
    # the frame
    "app": ("Trisam arbetsyta", "Trisam workspace"),
    "skip": ("Hoppa till innehållet", "Skip to content"),
    "signed_in_as": ("Inloggad som", "Signed in as"),
    "in_role": ("roll", "role"),
    "teams": ("team", "teams"),
    "sign_out": ("Logga ut", "Sign out"),
    "sign_in": ("Logga in", "Sign in"),
    "other_lang": ("English", "Svenska"),
    "main_nav": ("Huvudmeny", "Main menu"),
    "none": ("inga", "none"),
    "yes": ("ja", "yes"),
    "no": ("nej", "no"),
    "save": ("Spara", "Save"),
    "show": ("Visa", "Show"),
    "errors_title": ("Det gick inte:", "That did not work:"),
    "saved": ("Sparat.", "Saved."),
    # sign-in
    "sign_in_title": ("Logga in", "Sign in"),
    "sign_in_oidc": ("Logga in med organisationens inloggning", "Sign in with your organisation's sign-in"),
    "dev_sign_in": ("Utvecklingsinloggning", "Development sign-in"),
    "dev_sign_in_help": (
        "Endast i utvecklingsläge: välj roll, part och team.",
        "Development only: choose a role, party and team.",
    ),
    "user_id": ("Användar-id", "User id"),
    "role": ("Roll", "Role"),
    "party": ("Part", "Party"),
    "team": ("Team", "Team"),
    "no_sign_in": ("Ingen inloggning är konfigurerad.", "No sign-in is configured."),
    # navigation
    "nav_team": ("Teamets möten", "The team's meetings"),
    "nav_agenda": ("Nästa möte", "Next meeting"),
    "nav_referral": ("Ny remiss", "New referral"),
    "nav_cases": ("Våra ärenden", "Our cases"),
    "nav_followups": ("Uppföljningar", "Follow-ups"),
    "nav_audit": ("Åtkomstlogg", "Access log"),
    "nav_figure_reads": ("Läsningar av exakta siffror", "Reads of exact figures"),
    # coordinator
    "team_title": ("Teamets kommande möten", "The team's coming meetings"),
    "meeting": ("Möte", "Meeting"),
    "date": ("Datum", "Date"),
    "status": ("Status", "Status"),
    "seats": ("Platser", "Seats"),
    "cutoff": ("Sista dag för dagordningen", "Agenda cut-off"),
    "agenda": ("Dagordning", "Agenda"),
    "agenda_empty": ("Inga ärenden på dagordningen.", "No cases on the agenda."),
    "queue": ("Kö", "Queue"),
    "queue_empty": ("Ingen väntar.", "Nobody is waiting."),
    "position": ("Plats", "Place"),
    "expected_date": ("Väntat datum", "Expected date"),
    "case": ("Ärende", "Case"),
    "referring_party": ("Remitterande part", "Referring party"),
    "referred_at": ("Remitterad", "Referred"),
    "consents": ("Samtycken", "Consents"),
    "postponed_title": ("Uppskjutna ärenden", "Postponed cases"),
    "postponed_none": ("Inga uppskjutna ärenden.", "No postponed cases."),
    "postponed_times": ("Uppskjutet (gånger)", "Postponed (times)"),
    "why": ("Varför", "Why"),
    "team_followups": ("Teamets uppföljningar som är aktuella eller försenade", "The team's follow-ups due or overdue"),
    "followups_none": ("Inga uppföljningar.", "No follow-ups."),
    "open_meeting": ("Öppna mötet", "Open the meeting"),
    "cancel_title": ("Ställ in mötet", "Cancel the meeting"),
    "cancel_reason": ("Orsak", "Reason"),
    "cancel_note": ("Kommentar (krävs för annan orsak)", "Note (required for other)"),
    "cancel_button": ("Ställ in mötet", "Cancel the meeting"),
    "cancelled": ("Mötet är inställt.", "The meeting is cancelled."),
    "pre_meeting_title": ("Förmöte", "Pre-meeting"),
    "pre_meeting_held_on": ("Förmötet hölls", "Pre-meeting held on"),
    "pre_meeting_button": ("Registrera förmötet", "Record the pre-meeting"),
    "consultation_title": ("Konsultation", "Consultation"),
    "record_consultation": ("Registrera konsultationen", "Record the consultation"),
    "held_on": ("Hölls", "Held on"),
    "parties_present": ("Närvarande parter", "Parties present"),
    "others_invited": ("Andra inbjudna", "Others invited"),
    "individual_attended": ("Individen deltog", "The individual attended"),
    "plan_actions": ("Planens åtgärder", "The plan's actions"),
    "action": ("Åtgärd", "Action"),
    "action_type": ("Typ", "Type"),
    "owner": ("Ansvarig part", "Owner"),
    "due_on": ("Klart senast", "Due"),
    "no_action": ("(ingen)", "(none)"),
    "outcome": ("Utfall", "Outcome"),
    "outcome_held": ("Konsulterat", "Consulted"),
    "outcome_not_consulted": ("Inte konsulterat", "Not consulted"),
    "consultation_recorded": ("Konsultationen är registrerad.", "The consultation is recorded."),
    # member
    "agenda_title": ("Dagordning för teamets nästa möte", "Agenda of the team's next meeting"),
    "no_meeting": ("Inget kommande möte.", "No coming meeting."),
    "purpose": ("Syfte med läsningen", "Purpose of the read"),
    "purpose_help": (
        "Anges en gång för mötet och loggas med varje läsning. Skriv inget personnummer.",
        "Given once for the meeting and logged with each read. Write no identity number.",
    ),
    "show_details": ("Visa uppgifterna", "Show the details"),
    "details_purpose": ("Läses med syftet", "Read with the purpose"),
    "personnummer": ("Personnummer", "Personal identity number"),
    "protected_identity": ("Skyddad identitet", "Protected identity"),
    "question": ("Frågeställning", "Question"),
    "erased": ("Uppgifterna är gallrade.", "The details are erased."),
    "notice_no_consent": (
        "Individen har inte gett samtycke till att uppgifterna delas med din part. Uppgifterna visas inte.",
        "The individual has not consented to sharing with your party. The details are not shown.",
    ),
    "notice_withdrawn": (
        "Individen har återkallat samtycket för din part. Uppgifterna visas inte.",
        "The individual has withdrawn the consent for your party. The details are not shown.",
    ),
    "notice_not_in_team": ("Ärendet hör inte till ditt team.", "The case is not your team's."),
    "notice_unavailable": (
        "Uppgifterna kan inte hämtas just nu. Försök igen.",
        "The details cannot be fetched right now. Try again.",
    ),
    "details_hidden": ("Ange syftet ovan för att visa uppgifterna.", "Give the purpose above to show the details."),
    # officer
    "referral_title": ("Ny remiss", "New referral"),
    "agency_ref": ("Er referens", "Your reference"),
    "personnummer_help": ("ÅÅÅÅMMDD-XXXX", "YYYYMMDD-XXXX"),
    "question_help": ("Vad ska teamet ta ställning till?", "What should the team consider?"),
    "purpose_referral": ("Syfte (valfritt)", "Purpose (optional)"),
    "income_source": ("Huvudsaklig försörjning", "Main income source"),
    "reason_codes": ("Skäl för remissen", "Reasons for the referral"),
    "wishes_to_attend": ("Individen vill delta i mötet", "The individual wishes to attend"),
    "violence_question_asked": ("Frågan om våld är ställd", "The question about violence was asked"),
    "consent_given": ("Samtycke givet för", "Consent given for"),
    "consent_given_on": ("Samtycket gavs", "Consent given on"),
    "form_ref": ("Blankettens referens", "Form reference"),
    "submit_referral": ("Skicka remissen", "Submit the referral"),
    "referral_accepted": ("Remissen är mottagen som ärende", "The referral is accepted as case"),
    "cases_title": ("Partens ärenden", "Your party's cases"),
    "cases_none": ("Inga ärenden.", "No cases."),
    "case_title": ("Ärende", "Case"),
    "record_consent": ("Registrera samtycke", "Record consent"),
    "withdraw_consent": ("Registrera återkallat samtycke", "Record a withdrawal"),
    "withdrawn_on": ("Återkallades", "Withdrawn on"),
    "on_behalf": ("På individens begäran", "On the individual's behalf"),
    "consent_history": ("Samtyckeshistorik", "Consent history"),
    "followups_title": ("Partens uppföljningar", "Your party's follow-ups"),
    "followup_title": ("Uppföljning", "Follow-up"),
    "kind": ("Slag", "Kind"),
    "record_followup": ("Registrera uppföljningen", "Record the follow-up"),
    "recorded_on": ("Registrerad", "Recorded on"),
    "reached": ("Individen nåddes", "The individual was reached"),
    "readiness": ("Redo för arbete eller studier", "Ready to work or study"),
    "plan_status": ("Planens status", "The plan's status"),
    "not_asked": ("(frågas inte)", "(not asked)"),
    "records": ("Registreringar", "Records"),
    "revision": ("Version", "Revision"),
    # auditor
    "audit_title": ("Åtkomstlogg för ett ärende", "Access log of a case"),
    "who": ("Vem", "Who"),
    "when": ("När", "When"),
    "figure_reads_title": ("Läsningar av exakta siffror", "Reads of exact figures"),
    "reads_none": ("Inga läsningar.", "No reads."),
    "via": ("Via", "Via"),
    "scope": ("Omfattning", "Scope"),
    # errors
    "forbidden": ("Din roll får inte se detta.", "Your role may not see this."),
    "not_found": ("Sidan finns inte.", "No such page."),
    "csrf_failed": (
        "Formuläret har gått ut. Ladda om sidan och försök igen.",
        "The form has expired. Reload the page and try again.",
    ),
    "session_expired": ("Du behöver logga in.", "Please sign in."),
    "service_unavailable": ("Tjänsten svarar inte just nu. Försök igen.", "The service does not answer. Try again."),
    "dev_only": ("Endast i utvecklingsläge.", "Development only."),
    "bad_input": ("Kontrollera fälten.", "Check the fields."),
    "invalid_date": ("Ange ett datum ÅÅÅÅ-MM-DD.", "Give a date YYYY-MM-DD."),
    "required": ("Fältet måste fyllas i.", "This field is required."),
    "choose_one": ("Välj minst ett alternativ.", "Choose at least one."),
    "action_incomplete": (
        "En åtgärd behöver typ, ansvarig part och datum.",
        "An action needs a type, an owner and a date.",
    ),
    "role_not_allowed": ("Din roll får inte göra detta.", "Your role may not do this."),
    "not_in_team": ("Du hör inte till teamet.", "You are not in the team."),
    "not_allowed": ("Din part får inte göra detta.", "Your party may not do this."),
    "case_not_found": ("Ärendet finns inte.", "No such case."),
    "meeting_not_found": ("Mötet finns inte.", "No such meeting."),
    "followup_not_found": ("Uppföljningen finns inte.", "No such follow-up."),
    "purpose_holds_identity": (
        "Syftet får inte innehålla ett personnummer.",
        "The purpose may not contain an identity number.",
    ),
    "team_missing": ("Välj ett team för den rollen.", "Choose a team for that role."),
    "party_missing": ("Välj en part.", "Choose a party."),
    # the meeting service's refusals
    "meeting_cancelled": ("Mötet är inställt.", "The meeting is cancelled."),
    "held_on_in_future": ("Datumet ligger efter i dag.", "The date is after today."),
    "pre_meeting_after_meeting": ("Förmötet hålls före mötet.", "The pre-meeting is held before the meeting."),
    "pre_meeting_too_early": (
        "Förmötet kan inte ligga mer än fyra veckor före mötet.",
        "The pre-meeting cannot be more than four weeks before the meeting.",
    ),
    "not_on_agenda": ("Ärendet står inte på mötets dagordning.", "The case is not on this meeting's agenda."),
    "agenda_open": (
        "Dagordningen är ännu öppen: konsultationen registreras efter mötet.",
        "The agenda is still open: the consultation is recorded after the meeting.",
    ),
    "held_before_meeting": ("Datumet ligger före mötesdagen.", "The date is before the meeting day."),
    "party_repeated": ("En part är angiven två gånger.", "A party is listed twice."),
    "action_due_before_consultation": (
        "En åtgärd kan inte vara klar före konsultationen.",
        "An action cannot be due before the consultation.",
    ),
    "meeting_held": ("Mötet är redan hållet.", "The meeting has been held."),
    "already_cancelled": ("Mötet är redan inställt.", "The meeting is cancelled already."),
    "followup_cancelled": ("Uppföljningen är avbruten (ärendet är avslutat).", "The follow-up is cancelled (closed)."),
    # income sources and reasons for a referral
    "LON": ("lön", "wages"),
    "SJUKPENNING": ("sjukpenning", "sickness benefit"),
    "SJUKERSATTNING": ("sjukersättning", "sickness compensation"),
    "AKTIVITETSERSATTNING": ("aktivitetsersättning", "activity compensation"),
    "AKTIVITETSSTOD": ("aktivitetsstöd", "activity support"),
    "A_KASSA": ("a-kassa", "unemployment insurance"),
    "FORSORJNINGSSTOD": ("försörjningsstöd", "income support"),
    "STUDIEMEDEL": ("studiemedel", "student finance"),
    "PENSION": ("pension", "pension"),
    "INGEN": ("ingen", "none"),
    "OKAND": ("okänd", "unknown"),
    "SJUKSKRIVEN_MED_INTYG": ("sjukskriven med läkarintyg", "sick-listed with a certificate"),
    "SJUKSKRIVEN_OVER_180_DAGAR": ("sjukskriven mer än 180 dagar", "sick-listed over 180 days"),
    "SOCIALA_HINDER": ("sociala hinder för arbete", "social obstacles to work"),
    "OKLAR_ARBETSFORMAGA": ("oklar arbetsförmåga", "unclear work capacity"),
    "ARBETSLOS_MED_OHALSA": ("arbetslös med ohälsa", "unemployed with ill health"),
    "LANG_TID_MED_FORSORJNINGSSTOD": ("lång tid med försörjningsstöd", "long on income support"),
    "OVRIGT": ("övrigt", "other"),
    # roles
    "officer": ("handläggare", "officer"),
    "member": ("teammedlem", "team member"),
    "coordinator": ("rehabkoordinator", "rehab coordinator"),
    "auditor": ("granskare", "auditor"),
    "admin": ("administratör", "administrator"),
    "board": ("styrelsen", "the board"),
    "analyst": ("analytiker", "analyst"),
    # parties
    "AF": ("Arbetsförmedlingen", "Swedish Public Employment Service"),
    "FK": ("Försäkringskassan", "Social Insurance Agency"),
    "KOMMUN": ("Kommunen", "The municipality"),
    "REGION": ("Regionen", "The region"),
    # statuses
    "open": ("öppet", "open"),
    "closed": ("dagordningen fastställd", "agenda fixed"),
    "queued": ("i kö", "queued"),
    "on_hold": ("vilande", "on hold"),
    "consulted": ("konsulterat", "consulted"),
    "not_consulted": ("inte konsulterat", "not consulted"),
    "case_closed": ("avslutat", "closed"),
    "accepted": ("mottaget", "accepted"),
    "scheduled_for": ("planerat till mötet", "scheduled for the meeting"),
    "waiting": ("väntar på möte", "waiting for a meeting"),
    "followup_due": ("uppföljning aktuell", "follow-up due"),
    "given": ("givet", "given"),
    "withdrawn": ("återkallat", "withdrawn"),
    "missing": ("saknas", "missing"),
    "granted": ("beviljad", "granted"),
    "denied": ("nekad", "denied"),
    "pending": ("kommande", "pending"),
    "due": ("aktuell", "due"),
    "overdue": ("försenad", "overdue"),
    "completed": ("registrerad", "completed"),
    # reasons
    "staff_absent": ("ordinarie ledamot frånvarande", "a fixed member absent"),
    "other": ("annat", "other"),
    "no_cases": ("inga ärenden", "no cases"),
    "holiday": ("helgdag", "holiday"),
    "rescheduled": ("ny mötesdag", "rescheduled"),
    "consent_missing": ("samtycke saknas", "consent missing"),
    "consent_withdrawn": ("samtycke återkallat", "consent withdrawn"),
    "displaced": ("platsen behövdes", "displaced"),
    "individual_withdrew": ("individen avstod", "the individual withdrew"),
    "not_in_target_group": ("inte i målgruppen", "not in the target group"),
    "handled_elsewhere": ("hanteras på annat sätt", "handled elsewhere"),
    # invitees and actions
    "physician": ("läkare", "physician"),
    "employer": ("arbetsgivare", "employer"),
    "municipal_unit": ("annan kommunal enhet", "another municipal unit"),
    "samhall": ("Samhall", "Samhall"),
    "prison_and_probation": ("Kriminalvården", "Prison and probation"),
    "multi_party_meeting": ("avstämningsmöte", "multi-party meeting"),
    "joint_mapping": ("gemensam kartläggning", "joint mapping"),
    "sip": ("SIP", "coordinated individual plan"),
    "return_to_work_plan": ("plan för återgång i arbete", "return-to-work plan"),
    "work_ability_assessment": ("arbetsförmågebedömning", "work ability assessment"),
    "work_training": ("arbetsträning", "work training"),
    "medical_certificate": ("läkarintyg", "medical certificate"),
    # follow-up
    "plan_check": ("planuppföljning", "plan check"),
    "six_months": ("sexmånadersuppföljning", "six-month follow-up"),
    "twelve_months": ("tolvmånadersuppföljning", "twelve-month follow-up"),
    "much_more": ("mycket mer", "much more"),
    "more": ("mer", "more"),
    "unchanged": ("oförändrat", "unchanged"),
    "less": ("mindre", "less"),
    "not_answered": ("vill inte svara", "not answered"),
    "done": ("genomförd", "done"),
    "partly": ("delvis", "partly"),
    "not_done": ("inte genomförd", "not done"),
    "revised": ("reviderad", "revised"),
}


def text(lang: str, key: str) -> str:
    """The text of ``key`` in ``lang``; an unknown key (a code the catalogue lacks) as itself."""
    found = TEXTS.get(key)
    if found is None:
        return key
    return found[1] if lang == "en" else found[0]


def reason_text(lang: str, reason: Reason) -> str:
    """A service's refusal in words: its own text in the language, else the catalogue's, else
    the code with the service's message."""
    own = reason.message_en if lang == "en" else reason.message_sv
    if own:
        return own
    if reason.code in TEXTS:
        return text(lang, reason.code)
    return f"{reason.code}: {reason.message}" if reason.message else reason.code


def field_label(lang: str, reason: Reason) -> str | None:
    """The label of the field a refusal is about (for the summary of a form's errors), if known."""
    name = (reason.field or "").split(".")[0]
    if name.startswith("action_"):
        return f"{text(lang, 'action')} {int(name.split('_')[1]) + 1}" if name[7:].isdigit() else None
    return text(lang, name) if name in TEXTS else None
