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

SPECS = {"referral": referral.spec, "meeting": meeting.spec, "followup": followup.spec,
         "metrics": metrics.spec}

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


def main() -> None:
    parser = argparse.ArgumentParser(description="Write docs/asyncapi/<service>.json")
    parser.add_argument("--out", type=Path, default=DOCS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in asyncapi_documents().items():
        (args.out / f"{name}.json").write_text(text)
        print(f"wrote {args.out / f'{name}.json'}")


if __name__ == "__main__":
    main()
