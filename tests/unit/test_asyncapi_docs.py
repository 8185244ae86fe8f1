"""The AsyncAPI documents in docs/asyncapi are generated from the code and must be current."""

from tools.catalogue import DOCS, asyncapi_documents


def test_asyncapi_documents_are_up_to_date():
    stale = [
        name
        for name, text in asyncapi_documents().items()
        if not (DOCS / f"{name}.json").exists() or (DOCS / f"{name}.json").read_text() != text
    ]
    assert not stale, f"docs/asyncapi out of date for {stale}: run `make docs`"


def test_the_subscriptions_file_is_derived_from_the_handler_tables():
    from shared.platform.topology import SUBSCRIPTIONS_FILE
    from tools.catalogue import subscriptions

    assert SUBSCRIPTIONS_FILE.read_text() == subscriptions(), "shared/platform/subscriptions.json: run `make docs`"
