"""Pure rules of the skeleton: personnummer, age band, suppression, outbox backoff."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.referral import domain
from shared.contracts.vocabulary import AgeBand, Gender
from shared.platform.outbox import backoff_seconds
from tests.support.identities import generated_personnummer


@given(
    st.dates(min_value=date(1940, 1, 1), max_value=date(2010, 12, 31)), st.booleans(), st.booleans(), st.integers(0, 4)
)
def test_generated_numbers_parse_with_their_birth_date_and_gender(born, woman, coord, serial):
    pnr = domain.parse_personnummer(generated_personnummer(born, woman=woman, coordination=coord, serial=serial))
    assert pnr.birth_date == born
    assert pnr.coordination_number == coord
    assert pnr.gender == (Gender.WOMAN if woman else Gender.MAN)


@given(st.dates(min_value=date(1940, 1, 1), max_value=date(2010, 12, 31)), st.integers(1, 9))
def test_a_wrong_check_digit_is_refused(born, delta):
    good = generated_personnummer(born)
    bad = good[:-1] + str((int(good[-1]) + delta) % 10)
    with pytest.raises(domain.InvalidPersonnummer) as caught:
        domain.parse_personnummer(bad)
    assert caught.value.code == "personnummer_check_digit"


@pytest.mark.parametrize(
    "text, code",
    [
        ("19800230-9810", "personnummer_birth_date"),
        ("1980-05-17", "personnummer_format"),
        ("abc", "personnummer_format"),
    ],
)
def test_malformed_numbers_get_stable_codes(text, code):
    with pytest.raises(domain.InvalidPersonnummer) as caught:
        domain.parse_personnummer(text)
    assert caught.value.code == code
    assert text not in str(caught.value) or text == code


def test_a_personnummer_never_shows_in_its_repr():
    pnr = domain.parse_personnummer(generated_personnummer(date(1985, 3, 9)))
    assert pnr.digits not in repr(pnr) and pnr.digits not in str(pnr)


@pytest.mark.parametrize(
    "age, band",
    [(16, AgeBand.A16_24), (24, AgeBand.A16_24), (25, AgeBand.A25_34), (65, AgeBand.A55_65), (None, AgeBand.UNKNOWN)],
)
def test_age_bands(age, band):
    assert domain.age_band(age) == band


def test_age_on_a_birthday():
    assert domain.age_on(date(2000, 6, 15), date(2016, 6, 14)) == 15
    assert domain.age_on(date(2000, 6, 15), date(2016, 6, 15)) == 16


def test_case_refs_are_random_and_unguessable():
    refs = {domain.new_case_ref() for _ in range(1000)}
    assert len(refs) == 1000 and all(len(r) == 19 and r.startswith("TS-") for r in refs)


def test_pseudonym_is_keyed_and_stable():
    pnr = domain.parse_personnummer(generated_personnummer(date(1990, 1, 2)))
    assert domain.pseudonym(b"k1", pnr) == domain.pseudonym(b"k1", pnr)
    assert domain.pseudonym(b"k1", pnr) != domain.pseudonym(b"k2", pnr)


def test_outbox_backoff_grows_and_is_capped():
    assert [backoff_seconds(n, 5) for n in (1, 2, 3, 4, 5, 6)] == [0.5, 1, 2, 4, 5, 5]


def test_free_text_holding_an_identity_number_is_recognised():
    pnr = generated_personnummer(date(1977, 7, 7))
    assert domain.holds_identity_number(f"läser för {pnr} inför mötet")
    assert domain.holds_identity_number(pnr.replace("-", "")[2:])
    assert not domain.holds_identity_number("förmöte 2026-11-23, team GAVLE-BRYNAS")
