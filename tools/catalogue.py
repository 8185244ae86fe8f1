"""The catalogue of services: which exist and how each is built. Used by `make run` and by the
AsyncAPI generator; not imported by any service (services never import each other)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from services.followup import app as followup
from services.meeting import app as meeting
from services.metrics import app as metrics
from services.referral import app as referral
from shared.platform.config import Settings
from shared.platform.topology import SUBSCRIPTIONS_FILE

SPECS = {"referral": referral.spec, "meeting": meeting.spec, "followup": followup.spec, "metrics": metrics.spec}

DOCS = Path(__file__).resolve().parents[1] / "docs" / "asyncapi"


def asyncapi_documents() -> dict[str, str]:
    """AsyncAPI 3.0 JSON per service, for the default (documented) configuration."""
    from shared.platform.runtime import Runtime

    settings = Settings(amqp_url="amqp://guest:guest@127.0.0.1:5672/", namespace="trisam")
    documents = {}
    for name, make_spec in SPECS.items():
        schema = Runtime(make_spec(settings), settings).asyncapi().to_specification()
        documents[name] = json.dumps(json.loads(schema.to_json()), indent=2, sort_keys=True) + "\n"
    return documents


def subscriptions() -> str:
    """What each service consumes, from its handler table: the bindings of its queue
    (``shared/platform/subscriptions.json``, read by every service to declare the topology)."""
    settings = Settings(amqp_url="amqp://guest:guest@127.0.0.1:5672/", namespace="trisam")
    table = {}
    for name, make_spec in SPECS.items():
        handlers = make_spec(settings).handlers
        table[name] = [[b.exchange, b.routing_key] for b in handlers.bindings()] if handlers else []
    return json.dumps(table, indent=2) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Write docs/asyncapi/<service>.json and shared/platform/subscriptions.json"
    )
    parser.add_argument("--out", type=Path, default=DOCS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in asyncapi_documents().items():
        (args.out / f"{name}.json").write_text(text)
        print(f"wrote {args.out / f'{name}.json'}")
    SUBSCRIPTIONS_FILE.write_text(subscriptions())
    print(f"wrote {SUBSCRIPTIONS_FILE}")


if __name__ == "__main__":
    main()
