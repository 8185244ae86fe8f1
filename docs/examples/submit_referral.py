"""Submit referrals the way an agency system does: plain aio-pika, no project code on the wire.

    .venv/bin/python docs/examples/submit_referral.py --party AF --count 5

Uses generated test personnummer (tests/support/identities.py), never a real one.
"""

import argparse
import asyncio
import json
import os
import random
import sys
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support.identities import random_adult  # noqa: E402  (test data generator)


async def main(party: str, count: int) -> None:
    url = os.environ.get("TRISAM_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    namespace = os.environ.get("TRISAM_NAMESPACE", "trisam")
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        intake = await channel.get_exchange(f"{namespace}.intake")
        rng = random.Random()
        for _ in range(count):
            event_id = str(uuid.uuid4())
            command = {
                "event_id": event_id, "event_type": "SubmitReferral", "version": 1,
                "occurred_at": datetime.now(timezone.utc).isoformat(),
                "producer": f"{party.lower()}-case-system", "correlation_id": event_id,
                "payload": {
                    "agency_ref": f"{party}-{uuid.uuid4().hex[:10]}",
                    "personnummer": random_adult(rng),
                    "team_id": "GAVLE-HC1",
                    "question": "Vilket stöd behövs för att komma närmare arbete?",
                    "consents": [{"party": p, "given_on": str(date.today()), "form_ref": "F-1"}
                                 for p in ("AF", "FK", "KOMMUN", "REGION")],
                    "income_source": "SJUKPENNING",
                    "officer_id": "officer-1",
                },
            }
            await intake.publish(
                aio_pika.Message(json.dumps(command).encode(), content_type="application/json",
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                 message_id=event_id, type="SubmitReferral",
                                 correlation_id=event_id),
                routing_key=f"{party}.SubmitReferral", mandatory=True)
    print(f"submitted {count} referral(s) as {party}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--party", default="AF", choices=["AF", "FK", "KOMMUN", "REGION"])
    parser.add_argument("--count", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.party, args.count))
