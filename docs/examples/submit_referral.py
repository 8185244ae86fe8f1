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
from datetime import UTC, date, datetime
from pathlib import Path

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support.identities import random_adult  # noqa: E402  (test data generator)


async def main(party: str, count: int) -> None:
    namespace = os.environ.get("TRISAM_NAMESPACE", "trisam")
    user = f"{namespace}-{party.lower()}"  # the agency's own broker user (dev password below)
    host = os.environ.get("TRISAM_AMQP_HOST", "127.0.0.1:5672")
    connection = await aio_pika.connect(f"amqp://{user}:{user}-dev@{host}/")
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        intake = await channel.get_exchange(f"{namespace}.intake")
        rng = random.Random()
        for _ in range(count):
            event_id = str(uuid.uuid4())
            command = {
                "event_id": event_id, "event_type": "SubmitReferral", "version": 1,
                "occurred_at": datetime.now(UTC).isoformat(),
                "producer": f"{party.lower()}-case-system", "correlation_id": event_id,
                "payload": {
                    "agency_ref": f"{party}-{uuid.uuid4().hex[:10]}",
                    "personnummer": random_adult(rng),
                    "team_id": "GAVLE-BRYNAS",
                    "question": "Vilket stöd behövs för att komma närmare arbete?",
                    "consents": [{"party": p, "given_on": str(date.today()), "form_ref": "F-1"}
                                 for p in ("AF", "FK", "KOMMUN", "REGION")],
                    "income_source": "SJUKPENNING",
                    "reason_codes": ["SJUKSKRIVEN_MED_INTYG"],
                    "officer_id": "officer-1",
                },
            }
            await intake.publish(
                aio_pika.Message(json.dumps(command).encode(), content_type="application/json",
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                 message_id=event_id, type="SubmitReferral",
                                 correlation_id=event_id,
                                 user_id=user),  # RabbitMQ checks it is really us
                routing_key=f"{party}.SubmitReferral", mandatory=True)
        print(f"submitted {count} referral(s) as {party}")

        # The answers come to this agency's own queue (no other agency can read it).
        replies = await channel.get_queue(f"{namespace}.agency.{party}", ensure=False)
        received = 0
        async with replies.iterator() as messages:
            try:
                while received < count:
                    message = await asyncio.wait_for(messages.__anext__(), 10)
                    async with message.process():
                        reply = json.loads(message.body)
                        payload = reply["payload"]
                        print(reply["event_type"], payload.get("agency_ref"),
                              payload.get("case_ref") or [r["code"] for r in payload.get("reasons", [])])
                        received += 1
            except TimeoutError:
                print(f"no more replies after {received}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--party", default="AF", choices=["AF", "FK", "KOMMUN", "REGION"])
    parser.add_argument("--count", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.party, args.count))
