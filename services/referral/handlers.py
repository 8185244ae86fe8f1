"""Referral intake handlers (thin: rules in domain.py, SQL in store.py)."""

from __future__ import annotations

from datetime import datetime, timezone

from shared.config import Settings
from shared.consumer import HandlerContext
from shared.events import CaseReferred, PoisonMessage, SubmitReferral
from shared.vocabulary import AgeBand, Gender

from . import domain, store


def make_handlers(settings: Settings):
    key = settings.pseudonym_key.get_secret_value().encode()

    async def submit_referral(ctx: HandlerContext) -> None:
        command: SubmitReferral = ctx.payload
        party = domain.party_from_routing_key(ctx.routing_key)
        if party is None:
            raise PoisonMessage("unknown_party", "routing key does not name a party")
        now = datetime.now(timezone.utc)
        gender, band, person = Gender.UNKNOWN, AgeBand.UNKNOWN, None
        if command.personnummer and not command.protected_identity:
            try:
                pnr = domain.parse_personnummer(command.personnummer)
            except domain.InvalidPersonnummer as exc:
                raise PoisonMessage("invalid_referral", exc.code) from None
            gender, band = pnr.gender, domain.age_band(domain.age_on(pnr.birth_date, now.date()))
            person = domain.pseudonym(key, pnr)
        elif not command.protected_identity:
            raise PoisonMessage("invalid_referral", "personnummer_missing")
        case_ref = domain.new_case_ref()
        consented = sorted({c.party.value for c in command.consents})
        created = await store.insert_referral(
            ctx.conn, case_ref=case_ref, referring_party=party.value,
            agency_ref=command.agency_ref, team_id=command.team_id, person_pseudonym=person,
            gender=gender.value, age_band=band.value, income_source=command.income_source.value,
            consented_parties=consented, referred_at=now)
        if not created:
            return  # resubmission of the same agency reference: nothing new
        await ctx.emit(CaseReferred(
            case_ref=case_ref, team_id=command.team_id, referring_party=party, gender=gender,
            age_band=band, income_source=command.income_source,
            consented_parties=tuple(consented), wishes_to_attend=command.wishes_to_attend,
            violence_question_asked=command.violence_question_asked,
            reason_codes=command.reason_codes, referred_at=now), ordering_key=case_ref)

    return {SubmitReferral.name: submit_referral}
